#!/usr/bin/env node
// The npm bin: loads the TypeScript sources through tsx so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
