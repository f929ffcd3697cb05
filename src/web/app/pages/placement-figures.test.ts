import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  durationText,
  fastOccupancy,
  iopsBudget,
  occupancyText,
  settingOfField,
  settingRows,
  settingsPatch,
  type DatastoreFacts,
} from './placement-figures.js';

const GiB = 2 ** 30;
const S = { fastClass: 'fast', maxIopsUtilisation: 0.8, minFreeSpacePercent: 15 };
const beast: DatastoreFacts = {
  host: 'h3',
  name: 'local',
  class: 'fast',
  capacityBytes: 100 * GiB,
  freeBytes: 60 * GiB,
  probe: { iops: 5000 },
};
const slow: DatastoreFacts = {
  host: 'h1',
  name: 'local',
  class: 'standard',
  capacityBytes: 50 * GiB,
  freeBytes: 10 * GiB,
  limits: { iops: 400 },
};

test("the budget is the datastore's limit, else its probed capability, else unknown", () => {
  assert.deepEqual(iopsBudget(slow), { budget: 400, source: 'limit' });
  assert.deepEqual(iopsBudget({ ...slow, probe: { iops: 9000 } }), { budget: 400, source: 'limit' });
  assert.deepEqual(iopsBudget(beast), { budget: 5000, source: 'probe' });
  assert.deepEqual(iopsBudget({ ...beast, probe: undefined }), { budget: null, source: null });
});

test('fast occupancy sums the IOPS of the VMs on each fast datastore against its budget', () => {
  const vms = [
    { vm: 'web2', host: 'h3', datastore: 'local', iops: 1500 },
    { vm: 'web1', host: 'h3', datastore: 'local', iops: 500 },
    { vm: 'db', host: 'h3', datastore: 'other', iops: 9999 },
    { vm: 'idle', host: 'h3', datastore: 'local', iops: null },
    { vm: 'slow', host: 'h1', datastore: 'local', iops: 390 },
  ];
  const [o, ...rest] = fastOccupancy([slow, beast], vms, S);
  assert.equal(rest.length, 0, 'only the fast class');
  assert.ok(o);
  assert.equal(o.iops, 2000);
  assert.equal(o.iopsBudget, 5000);
  assert.equal(o.iopsUsable, 4000);
  assert.equal(o.iopsPercent, 40);
  assert.equal(o.usedBytes, 40 * GiB);
  assert.equal(o.reservedBytes, 15 * GiB);
  assert.deepEqual(o.vms, ['idle', 'web1', 'web2']);
  assert.equal(occupancyText(o), '2,000 of 5,000 IOPS (40 %); placement fills up to 4,000');
  const full = fastOccupancy([beast], [{ vm: 'a', host: 'h3', datastore: 'local', iops: 4500 }], S)[0];
  assert.ok(full);
  assert.match(occupancyText(full), /above what placement fills$/);
  const unknown = fastOccupancy([{ ...beast, probe: undefined }], vms, S)[0];
  assert.ok(unknown);
  assert.equal(unknown.iopsPercent, null);
  assert.match(occupancyText(unknown), /no budget known/);
  assert.deepEqual(fastOccupancy([beast], vms, { ...S, fastClass: 'gold' }), []);
});

test('settings rows follow the defaults, marking the overridden ones', () => {
  const rows = settingRows({
    defaults: { hotIops: 200, holdSeconds: 300, fastClass: 'fast' },
    settings: { hotIops: 200, holdSeconds: 600, fastClass: 'fast' },
    overrides: { holdSeconds: 600 },
  });
  assert.deepEqual(rows, [
    { key: 'hotIops', effective: 200, default: 200, overridden: false },
    { key: 'holdSeconds', effective: 600, default: 300, overridden: true },
    { key: 'fastClass', effective: 'fast', default: 'fast', overridden: false },
  ]);
});

test('the settings patch holds only changed fields, numbers as numbers, bad text as it is', () => {
  const rows = settingRows({
    defaults: { hotIops: 200, holdSeconds: 300, fastClass: 'fast', hotLatencyMs: 15 },
    settings: { hotIops: 200, holdSeconds: 600, fastClass: 'fast', hotLatencyMs: 15 },
    overrides: { holdSeconds: 600 },
  });
  assert.deepEqual(
    settingsPatch(rows, { hotIops: ' 250 ', holdSeconds: '600', fastClass: 'beast', hotLatencyMs: 'x' }),
    { hotIops: 250, fastClass: 'beast', hotLatencyMs: 'x' },
  );
  assert.deepEqual(settingsPatch(rows, { hotIops: '' }), { hotIops: '' });
  assert.deepEqual(settingsPatch(rows, {}), {});
});

test("an API error's field maps onto the setting it names", () => {
  assert.equal(settingOfField('coolIops'), 'coolIops');
  assert.equal(settingOfField('body.holdSeconds'), 'holdSeconds');
  assert.equal(settingOfField(undefined), undefined);
});

test('a window length reads in the unit the API takes', () => {
  assert.equal(durationText(4 * 3600), '4h');
  assert.equal(durationText(90 * 60), '90m');
  assert.equal(durationText(86_400), '1d');
  assert.equal(durationText(61), '61s');
});
