import type { Rule } from 'eslint';

export const allowedArrows: Record<string, string[]>;
export const partBoundaries: Rule.RuleModule;
