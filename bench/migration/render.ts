// Re-renders the text report of saved benchmark runs (results/<timestamp>.json -> .txt), e.g. after
// a change to the table or the target rules:  node --import tsx bench/migration/render.ts <json>...
import { readFile, writeFile } from 'node:fs/promises';
import { BenchResult, renderReport } from './report.js';

for (const file of process.argv.slice(2)) {
  const parsed = BenchResult.safeParse(JSON.parse(await readFile(file, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    console.error(`${file}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'not a benchmark result'}`);
    process.exitCode = 2;
    continue;
  }
  const text = renderReport(parsed.data);
  await writeFile(file.replace(/\.json$/, '.txt'), text + '\n');
  console.log(text);
}
