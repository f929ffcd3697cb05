// ESLint rule: parts (top-level folders of src/) talk only through each other's index.ts,
// and only along the arrows of the architecture.
import path from 'node:path';

const srcRoot = path.resolve(import.meta.dirname, '..', 'src');

/** Which parts each part may import (through their index only). */
export const allowedArrows = {
  qmp: [],
  api: [],
  guest: [],
  pki: [],
  agent: ['qmp', 'api', 'guest', 'pki'],
  manager: ['api', 'pki'],
  cli: ['api', 'report'],
  report: ['api'],
  web: ['api'],
  lab: ['api', 'guest'],
};

/**
 * A part's entry points: index.ts, and browser.ts where a part has a half that also runs in a
 * browser (api/: what the web console bundles, free of node: modules).
 */
const ENTRY_FILES = ['index.js', 'index.ts', 'index', 'browser.js', 'browser.ts'];

function partOf(file) {
  const rel = path.relative(srcRoot, file);
  if (rel.startsWith('..')) return undefined;
  const segments = rel.split(path.sep);
  return segments.length > 1 ? segments[0] : '(root)';
}

export const partBoundaries = {
  meta: {
    type: 'problem',
    docs: { description: 'imports between parts go through index.ts and follow the architecture' },
    schema: [],
  },
  create(context) {
    const file = context.filename;
    const fromPart = partOf(file);
    if (fromPart === undefined) return {};
    function check(node) {
      const spec = node.source?.value;
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const target = path.resolve(path.dirname(file), spec);
      const toPart = partOf(target);
      if (toPart === undefined || toPart === fromPart || toPart === '(root)') return;
      const rel = path.relative(path.join(srcRoot, toPart), target);
      if (!ENTRY_FILES.includes(rel)) {
        context.report({
          node,
          message: `deep import into ${toPart}/ (${spec}): import from ${toPart}/index.js`,
        });
        return;
      }
      if (fromPart !== '(root)' && !(allowedArrows[fromPart] ?? []).includes(toPart)) {
        context.report({
          node,
          message: `${fromPart}/ must not import ${toPart}/ (see README: architecture)`,
        });
      }
    }
    return {
      ImportDeclaration: check,
      ExportNamedDeclaration: check,
      ExportAllDeclaration: check,
      // import('...') nodes carry their specifier the same way (node.source).
      ImportExpression: check,
    };
  },
};
