import { Command, Option } from 'commander';
import { LabError, LabInterrupted, LabInvalidInput } from './errors.js';
import { labDown, labExec, labList, labStatus, labUp, type Lab, type LabStatus } from './lab.js';
import { readCliConfig, useCliContext } from './manager-process.js';

/*
 * `silobreak lab ...`: thin commands over labUp/labDown/labStatus/labExec. Errors are turned into
 * exit codes here and only here: 2 for bad usage, 130 for Ctrl-C, 1 for any other failure.
 */

function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`error: ${message}\n`);
      process.exitCode =
        error instanceof LabInterrupted ? 130 : error instanceof LabError && error.usage ? 2 : 1;
    }
  };
}

/** Left-aligned columns separated by two spaces. */
function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function describeLab(lab: Lab): string {
  const accel = (host: string) => {
    const a = lab.hostAccelerators[host];
    return a ? a.accelerator : '?';
  };
  const warnings = [
    ...new Set(Object.values(lab.hostAccelerators).flatMap((a) => (a.warning ? [a.warning] : []))),
  ];
  let out = `Lab '${lab.name}' is up (index ${lab.index}, state in ${lab.dir}).\n`;
  out += `Fabric ${lab.fabric.subnet} on bridge ${lab.fabric.bridge} (this machine: ${lab.fabric.rootAddress}); `;
  out += `VM segment ${lab.vmNet.subnet} on bridge ${lab.vmNet.bridge}.\n\n`;
  out += table([
    ['HOST', 'NAMESPACE', 'FABRIC ADDRESS', 'AGENT', 'ACCEL'],
    ...lab.hosts.map((h) => [h.name, h.namespace, h.fabricAddress, h.agentUrl, accel(h.name)]),
    ['client', lab.client.namespace, `${lab.client.address} (VM segment)`, '', ''],
  ]);
  for (const warning of warnings) out += `warning: ${warning}\n`;
  out += `\nBreak-glass token (agent.sock in each host's state directory): ${lab.token}\n`;
  if (lab.demoVms.length) {
    out += '\n' + table([['VM', 'HOST', 'ADDRESS'], ...lab.demoVms.map((vm) => [vm.name, vm.host, vm.ip])]);
  }
  if (lab.manager) out += `\nManager: ${lab.manager.url}\nAdmin token: ${lab.manager.token}\n`;
  out += `\nLogs: ${lab.dir}/host*/agent.log${lab.manager ? `, ${lab.manager.logPath}` : ''}\n`;
  const nameFlag = lab.name === 'lab' ? '' : ` --name ${lab.name}`;
  const hints = [
    ...(lab.demoVms[0] ? [`silobreak lab exec client${nameFlag} -- ping -c 3 ${lab.demoVms[0].ip}`] : []),
    ...(lab.manager ? ['silobreak host list', 'silobreak vm list'] : []),
    `silobreak lab down${nameFlag}`,
  ];
  out += `\nTry:\n${hints.map((h) => `  ${h}\n`).join('')}`;
  return out;
}

function describeStatus(status: LabStatus): string {
  const { lab } = status;
  let out = `Lab '${lab.name}' (index ${lab.index}): fabric ${lab.fabric.subnet}, VM segment ${lab.vmNet.subnet}, `;
  out += `client ${lab.client.address}\n\n`;
  const rows = [['HOST', 'AGENT', 'ACCEL', 'FABRIC ADDRESS', 'VM', 'STATE', 'IP']];
  for (const h of status.hosts) {
    const first = [h.name, h.agentUp ? 'up' : 'down', h.accelerator ?? '-', h.fabricAddress];
    if (h.vms.length === 0) rows.push([...first, '-', '', '']);
    h.vms.forEach((vm, i) =>
      rows.push([...(i === 0 ? first : ['', '', '', '']), vm.name, vm.state, vm.ip ?? '-']),
    );
  }
  out += table(rows);
  for (const h of status.hosts) if (h.error) out += `${h.name}: ${h.error}\n`;
  if (lab.manager) out += `\nManager: ${lab.manager.url} (${status.managerUp ? 'up' : 'down'})\n`;
  return out;
}

const nameOption = () => new Option('--name <lab>', 'name of the lab').default('lab');

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('a lab of KVM hosts as network namespaces on this machine');
  // Commander's own usage errors (unknown flag, bad choice, missing argument) exit 2, help 0.
  // Set before the verbs are added, so that each of them inherits it.
  lab.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  lab.showHelpAfterError('(add --help for usage)');

  lab
    .command('up')
    .description('create hosts (namespaces with an agent each), a client namespace and demo VMs')
    .addOption(nameOption())
    .option('--hosts <n>', 'number of hosts', '3')
    .option('--no-demo', 'do not start a demo VM on each host')
    .option('--no-manager', 'do not start a manager for the lab')
    .option(
      '--beast <host>',
      'the host with fast storage (class fast); the others get limited datastores (400 IOPS, 80 MiB/s)',
    )
    .option(
      '--shared-storage',
      'a storage server on the fabric that every host mounts as its shared datastore, with a sanlock daemon per host (for clusters)',
    )
    .addOption(
      new Option('--accelerator <kind>', 'accelerator the agents use')
        .choices(['auto', 'kvm', 'tcg'])
        .default('auto'),
    )
    .option('--json', 'print the lab as JSON')
    .action(
      action(
        async (opts: {
          name: string;
          hosts: string;
          demo: boolean;
          manager: boolean;
          accelerator: string;
          beast?: string;
          sharedStorage?: boolean;
          json?: boolean;
        }) => {
          const started = Date.now();
          // Ctrl-C stops lab up at its next step, which then removes what it created.
          const interrupt = new AbortController();
          process.once('SIGINT', () => {
            process.stderr.write('interrupted: removing the lab (Ctrl-C again to leave it as it is)\n');
            interrupt.abort(new LabInterrupted());
          });
          const result = await labUp({
            signal: interrupt.signal,
            name: opts.name,
            hosts: Number(opts.hosts),
            demo: opts.demo,
            accelerator: opts.accelerator as 'auto' | 'kvm' | 'tcg',
            manager: opts.manager,
            ...(opts.beast === undefined ? {} : { beast: opts.beast }),
            sharedStorage: opts.sharedStorage === true,
            cliConfig: opts.manager,
            log: (line) => process.stderr.write(`${line}\n`),
          });
          if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
          else
            process.stdout.write(
              describeLab(result) + `(up in ${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
            );
        },
      ),
    );

  lab
    .command('down')
    .description('remove a lab: processes, VMs, namespaces, bridges, veths and files (idempotent)')
    .option('--name <lab>', 'name of the lab (default: lab)')
    .option('--all', 'remove every lab')
    .action(
      action(async (opts: { name?: string; all?: boolean }) => {
        const started = Date.now();
        const reports = await labDown({
          all: opts.all ?? false,
          ...(opts.all ? {} : { name: opts.name ?? 'lab' }),
        });
        for (const r of reports) {
          process.stdout.write(
            `lab ${r.name}: stopped ${r.killedPids.length} processes, removed ${r.namespaces.length} namespaces ` +
              `and ${r.links.length} links\n`,
          );
        }
        process.stdout.write(`(down in ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
      }),
    );

  lab
    .command('status')
    .description('hosts, agents, accelerators and VMs of a lab')
    .addOption(nameOption())
    .option('--json', 'print as JSON')
    .action(
      action(async (opts: { name: string; json?: boolean }) => {
        const status = await labStatus(opts.name);
        process.stdout.write(opts.json ? JSON.stringify(status, null, 2) + '\n' : describeStatus(status));
      }),
    );

  lab
    .command('list')
    .description('every lab on this machine, with leftovers of crashed ones')
    .option('--json', 'print as JSON')
    .action(
      action(async (opts: { json?: boolean }) => {
        const labs = await labList();
        if (opts.json) return void process.stdout.write(JSON.stringify(labs, null, 2) + '\n');
        const current = (await readCliConfig())?.current;
        const rows = labs.map((l) => [
          l.name === current ? '*' : '',
          l.name,
          l.index === null ? 'leftover' : String(l.index),
          `${l.agentsRunning}/${l.hosts}`,
          l.managerUrl ?? '-',
        ]);
        process.stdout.write(table([['CLI', 'LAB', 'INDEX', 'AGENTS', 'MANAGER'], ...rows]));
      }),
    );

  lab
    .command('use')
    .description("make a lab's manager the one the CLI talks to (like kubectl config use-context)")
    .argument('<lab>', 'name of the lab')
    .action(
      action(async (name: string) => {
        if (!(await useCliContext(name)))
          throw new LabInvalidInput(
            'lab',
            `no lab '${name}' in the CLI's lab contexts (silobreak lab list shows the labs up)`,
          );
        process.stdout.write(`the CLI now uses lab ${name}'s manager\n`);
      }),
    );

  lab
    .command('exec')
    .description("run a command in a lab namespace: 'client' or a host like 'host1'")
    .argument('<target>', "'client' or a host name")
    .argument('<command...>', 'the command and its arguments (after --)')
    .addOption(nameOption())
    .action(
      action(async (target: string, command: string[], opts: { name: string }) => {
        const result = await labExec({ name: opts.name, target, command, inherit: true });
        process.exitCode = result.exitCode;
      }),
    );
}
