import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestKernelCommandLine } from './cmdline.js';
import { GuestOptionInvalid } from './errors.js';

test('base command line has the serial console and no sb.* options', () => {
  const line = guestKernelCommandLine();
  assert.match(line, /(^| )console=ttyS0( |$)/);
  assert.match(line, /(^| )quiet( |$)/);
  assert.doesNotMatch(line, /sb\./);
});

test('network options become sb.ip, sb.gw and sb.hostname', () => {
  const words = guestKernelCommandLine({
    ip: '10.77.0.10/24',
    gateway: '10.77.0.1',
    hostname: 'vm-a1-',
  }).split(' ');
  assert.ok(words.includes('sb.ip=10.77.0.10/24'));
  assert.ok(words.includes('sb.gw=10.77.0.1'));
  assert.ok(words.includes('sb.hostname=vm-a1-'));
});

test('bad input names the field and the rule', () => {
  const cases: [Parameters<typeof guestKernelCommandLine>[0], string, RegExp][] = [
    [{ ip: '10.77.0.10' }, 'ip', /prefix length/],
    [{ ip: '10.77.0.300/24' }, 'ip', /IPv4/],
    [{ ip: '10.0.0.2/24', gateway: 'gw' }, 'gateway', /IPv4/],
    [{ hostname: 'bad name' }, 'hostname', /letters, digits/],
    [{ hostname: 'a'.repeat(64) }, 'hostname', /1-63/],
    [{ hostname: '-lead' }, 'hostname', /letters, digits/],
    [{ gateway: '10.0.0.1' }, 'gateway', /needs ip/],
  ];
  for (const [options, field, rule] of cases) {
    assert.throws(
      () => guestKernelCommandLine(options),
      (error: unknown) =>
        error instanceof GuestOptionInvalid && error.field === field && rule.test(error.message),
      JSON.stringify(options),
    );
  }
});

test('unknown options are refused rather than ignored', () => {
  assert.throws(
    () => guestKernelCommandLine({ ip: '10.0.0.2/24', gw: '10.0.0.1' } as never),
    (error: unknown) => error instanceof GuestOptionInvalid,
  );
});
