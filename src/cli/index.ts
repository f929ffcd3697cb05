import type { Command } from 'commander';

export function registerCliCommands(_program: Command): void {}
