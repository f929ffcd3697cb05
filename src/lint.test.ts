// Lint, format and type checks run as part of the tests, so CI enforces them.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(import.meta.dirname, '..');
// On failure the tool's own report becomes the test's error, so CI output says what to fix.
const run = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`${path.basename(cmd)} failed:\n${stdout}${stderr}`);
  }
};

test('typescript compiles in strict mode', { timeout: 180_000 }, () => {
  run(path.join(root, 'node_modules/.bin/tsc'), ['--noEmit', '-p', 'tsconfig.json']);
  // The web console's app (DOM, JSX) has its own project.
  run(path.join(root, 'node_modules/.bin/tsc'), ['--noEmit', '-p', 'src/web/tsconfig.json']);
});

test('eslint passes, including the part-boundary rule', { timeout: 180_000 }, () => {
  run(path.join(root, 'node_modules/.bin/eslint'), ['.']);
});

test('prettier formatting is applied', { timeout: 60_000 }, () => {
  run(path.join(root, 'node_modules/.bin/prettier'), ['--check', '.']);
});
