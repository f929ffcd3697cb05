import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stripAnsi } from './output.js';
import { renderDetails, renderTable, type Column } from './table.js';

interface Row {
  name: string;
  size: string;
  note: string;
}
const columns: Column<Row>[] = [
  { header: 'Name', value: (r) => r.name },
  { header: 'Size', value: (r) => r.size, align: 'right' },
  { header: 'Note', value: (r) => r.note },
];

test('renderTable aligns columns, right-aligns numbers and trims trailing blanks', () => {
  const text = renderTable(columns, [
    { name: 'web-1', size: '1.5 GiB', note: '' },
    { name: 'db', size: '512 MiB', note: 'primary' },
    { name: 'cache-server', size: '8 KiB', note: 'x' },
  ]);
  assert.equal(
    text,
    [
      'NAME             SIZE  NOTE',
      'web-1         1.5 GiB',
      'db            512 MiB  primary',
      'cache-server    8 KiB  x',
    ].join('\n'),
  );
});

test('renderTable prints just the headers for no rows and flattens newlines in cells', () => {
  assert.equal(renderTable(columns, []), 'NAME  SIZE  NOTE');
  const text = renderTable(columns, [{ name: 'a', size: '1', note: 'two\nlines' }]);
  assert.equal(text.split('\n').length, 2);
  assert.match(text, /two lines/);
});

test('renderTable counts code points, not UTF-16 units', () => {
  const text = renderTable(columns, [
    { name: 'ñandú', size: '1', note: 'Q' },
    { name: 'x', size: '1', note: 'Z' },
  ]);
  const [, first, second] = text.split('\n');
  assert.equal(first?.indexOf('Q'), second?.indexOf('Z'));
});

test('renderDetails aligns the labels', () => {
  assert.equal(
    renderDetails([
      ['Name', 'web-1'],
      ['Memory', '512 MiB'],
    ]),
    'Name:   web-1\nMemory: 512 MiB',
  );
});

test('renderTable ignores colour codes when aligning', () => {
  const text = renderTable(columns, [
    { name: '\x1b[32mweb\x1b[0m', size: '1', note: 'Q' },
    { name: 'db1', size: '1', note: 'Z' },
  ]);
  const [, first, second] = text.split('\n');
  assert.equal(stripAnsi(first ?? '').indexOf('Q'), second?.indexOf('Z'));
});
