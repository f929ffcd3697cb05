import type { Command } from 'commander';

export function registerManagerCommands(_program: Command): void {}
