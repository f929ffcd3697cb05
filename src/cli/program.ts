// The frame every CLI command runs in: nouns and verbs on commander, common flags, input
// validation with zod, and the single catch that turns errors into messages and exit codes.
//
// A command file, e.g. commands/vm-move.ts, listed in index.ts:
//
//   export function registerVmMoveCommand(program: Command): void {
//     withDetach(verb(noun(program, 'vm'), 'move <vm>', 'Move a running VM to another host (a job)'))
//       .requiredOption('--to <host>', 'target host')
//       .action(
//         act(z.object({ vm: input.ref, to: input.ref, detach: z.boolean().default(false) }), async (o, ctx) => {
//           const accepted = await ctx.client().moveVm(o.vm, { to: o.to });
//           await followJob(ctx, accepted.job, o.detach); // bar/lines/JSON, exit 1 if the job fails
//         }),
//       );
//   }
import type { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { ManagerClient } from '../api/index.js';
import { configFilePaths, readConfigFile, resolveConnection, type Connection } from './config.js';
import { describeFailure, ExitCode, formatFailure, usageErrorFromZod } from './errors.js';
import { decideStyle, terminalSafe, type OutputStyle } from './output.js';
import { renderTable, type Column } from './table.js';

export interface CliContext {
  style: OutputStyle;
  /** The manager client; resolving URL and token only when a command needs them. */
  client(): ManagerClient;
  /** A line for people on stdout. */
  print(text: string): void;
  /** An API object for scripts on stdout. */
  printJson(value: unknown): void;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

interface CommonFlags {
  url?: string;
  token?: string;
  lab?: string;
  json?: boolean;
}

/**
 * The noun command (`host`, `vm`, ...) under the program, created on first use. Command files
 * that add verbs to the same noun (e.g. `vm move`) get the same command back.
 */
export function noun(program: Command, name: string, description?: string): Command {
  const existing = program.commands.find((c) => c.name() === name);
  if (existing) return existing;
  const command = program.command(name).description(description ?? '');
  // Commander's own usage errors (unknown flag, missing argument, no verb) exit 2, help exits 0.
  // Set here, before the verbs are added, so every verb inherits it.
  command.exitOverride((error: CommanderError) => {
    process.exit(error.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
  });
  command.showHelpAfterError('(add --help for usage)');
  return command;
}

/**
 * A verb under a noun, with the flags every verb takes. `isDefault`: the verb the noun runs when
 * no verb is given (`silobreak changes --risk high`).
 */
export function verb(
  parent: Command,
  nameAndArgs: string,
  description: string,
  options: { isDefault?: boolean } = {},
): Command {
  return parent
    .command(nameAndArgs, options)
    .description(description)
    .option('--url <url>', 'manager URL (default: $SILOBREAK_URL, then the config files)')
    .option('--token <token>', 'manager API token (default: $SILOBREAK_TOKEN, then the config files)')
    .option(
      '--lab <lab>',
      'the lab whose manager to use (default: $SILOBREAK_LAB, then the current lab: silobreak lab use)',
    )
    .option('--json', 'print API objects as JSON for scripts');
}

/** `--detach` for verbs that start a job. */
export function withDetach(command: Command): Command {
  return command.option('--detach', 'return at once with the job id instead of following the job');
}

/** Collects a repeatable option's values (`--disk 1G --disk 2G`). */
export function repeatable(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The action of a verb: validates positional arguments and flags (by name) with `input`, then
 * runs `handler`. Anything thrown ends here: a message on stderr and the exit code.
 */
export function act<S extends z.ZodType>(
  input: S,
  handler: (values: z.output<S>, ctx: CliContext) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const flags = command.opts<CommonFlags & Record<string, unknown>>();
    const names = command.registeredArguments.map((a) => a.name());
    const raw: Record<string, unknown> = { ...flags };
    names.forEach((name, i) => (raw[name] = args[i]));
    const style = decideStyle(Boolean(flags.json), Boolean(process.stdout.isTTY), process.env);
    let connection: Connection | undefined;
    const ctx: CliContext = {
      style,
      client: () => {
        if (!connection) {
          connection = resolveConnection({
            flags: { url: flags.url, token: flags.token, lab: flags.lab },
            env: process.env,
            files: configFilePaths(process.env).map((path) => ({ path, content: readConfigFile(path) })),
          });
          if (connection.notice) process.stderr.write(`${terminalSafe(connection.notice)}\n`);
        }
        return new ManagerClient(connection.url, connection.token);
      },
      print: (text) => process.stdout.write(`${terminalSafe(text)}\n`),
      printJson: (value) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
      stdout: process.stdout,
      stderr: process.stderr,
    };
    // `silobreak vm list | head -1` closes our stdout early: that is the reader's choice, not an error.
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(process.exitCode ?? ExitCode.ok);
    });
    try {
      const parsed = input.safeParse(raw);
      if (!parsed.success) throw usageErrorFromZod(parsed.error, names, commandPath(command));
      await handler(parsed.data, ctx);
    } catch (error) {
      const failure = describeFailure(error, connection?.url, command.parent?.name());
      process.stderr.write(terminalSafe(formatFailure(failure)));
      process.exitCode = failure.exitCode;
    }
  };
}

/** `silobreak vm create`: the words that run `command`. */
function commandPath(command: Command): string {
  const words: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) words.unshift(c.name());
  return words.join(' ');
}

/** Every page of a paginated list, up to `limit` items. */
export async function allPages<T>(
  fetchPage: (query: {
    limit: number;
    cursor?: string;
  }) => Promise<{ items: T[]; nextCursor: string | null }>,
  limit = Number.POSITIVE_INFINITY,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage({
      limit: Math.min(1000, limit - items.length),
      ...(cursor ? { cursor } : {}),
    });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && items.length < limit);
  return items.slice(0, limit);
}

/** A list as JSON (the API's objects) or as a table; `empty` when there is nothing to show. */
export function printList<T>(ctx: CliContext, items: T[], columns: Column<T>[], empty: string): void {
  if (ctx.style.json) ctx.printJson(items);
  else ctx.print(items.length ? renderTable(columns, items) : empty);
}

/** Prints an API object as JSON, or `human` for people. */
export function printObject(ctx: CliContext, value: unknown, human: string): void {
  if (ctx.style.json) ctx.printJson(value);
  else ctx.print(human);
}
