#!/usr/bin/env node
// The npm bin: runs the bundle of the sources (bin/bundle.js), made anew when any source changed,
// so there is no build step to forget; where it cannot be made, the sources run through tsx.
import { build, currentEntry } from './bundle.js';

let entry = currentEntry();
if (!entry) {
  try {
    entry = await build();
  } catch {
    // A read-only checkout, or a source esbuild refuses: tsx runs it (and reports the error).
  }
}
if (entry) {
  // Stack traces name the sources' lines, not the bundle's.
  process.setSourceMapsEnabled(true);
  await import(entry);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
