import type { Command } from 'commander';

export function registerGuestCommands(_program: Command): void {}
