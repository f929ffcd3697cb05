export type RunClass = 'light' | 'guest' | 'waiting' | 'timing';

export const LAB_FILES: Readonly<Record<string, { class: RunClass; seconds: number }>>;
export const CORES: number;
export function classOf(run: string): RunClass;
export function fits(next: RunClass, running: RunClass[]): boolean;
export function queueOrder(runs: string[]): string[];
export function startable(queue: string[], running: string[]): string[];
