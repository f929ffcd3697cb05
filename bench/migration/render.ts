// Re-renders the text report of saved benchmark runs (results/<timestamp>.json -> .txt), e.g. after
// a change to the table or the target rules:  node --import tsx bench/migration/render.ts <json>...
// With --combine <out.json>, the files are one matrix measured in parts (report.ts, combineResults):
// written to <out.json> and its report to <out.txt>.
import { readFile, writeFile } from 'node:fs/promises';
import { BenchResult, combineResults, renderReport } from './report.js';

const args = process.argv.slice(2);
const combineInto = args[0] === '--combine' ? args[1] : undefined;
const files = combineInto === undefined ? args : args.slice(2);
if (args[0] === '--combine' && (combineInto === undefined || !combineInto.endsWith('.json'))) {
  console.error('--combine: give the combined file to write (<name>.json), then the result files');
  process.exit(2);
}

const parts: { file: string; result: BenchResult }[] = [];
for (const file of files) {
  const parsed = BenchResult.safeParse(JSON.parse(await readFile(file, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    console.error(`${file}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'not a benchmark result'}`);
    process.exit(2);
  }
  parts.push({ file, result: parsed.data });
}

async function write(jsonFile: string, result: BenchResult): Promise<void> {
  const text = renderReport(result);
  await writeFile(jsonFile.replace(/\.json$/, '.txt'), text + '\n');
  console.log(text);
}

if (combineInto === undefined) {
  for (const { file, result } of parts) await write(file, result);
} else {
  const names = parts.map((p) => ({ ...p, file: p.file.split('/').pop() ?? p.file }));
  let combined: BenchResult;
  try {
    combined = combineResults(names);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  await writeFile(combineInto, JSON.stringify(combined, null, 2) + '\n');
  await write(combineInto, combined);
}
