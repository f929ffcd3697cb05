import path from 'node:path';
import { test } from 'node:test';
import { RuleTester } from 'eslint';
import { partBoundaries } from './eslint-part-boundaries.js';

const src = path.resolve(import.meta.dirname, '..', 'src');
const tester = new RuleTester({ languageOptions: { ecmaVersion: 2022, sourceType: 'module' } });

test('part-boundaries allows index imports along the arrows and rejects the rest', () => {
  tester.run('part-boundaries', partBoundaries, {
    valid: [
      { filename: path.join(src, 'agent/vm.ts'), code: "import { QmpClient } from '../qmp/index.js';" },
      { filename: path.join(src, 'agent/vm.ts'), code: "import { x } from './inner/thing.js';" },
      {
        filename: path.join(src, 'cli/commands/vm.ts'),
        code: "import { ManagerClient } from '../../api/index.js';",
      },
      {
        filename: path.join(src, 'main.ts'),
        code: "import { registerAgentCommands } from './agent/index.js';",
      },
      { filename: path.join(src, 'manager/db.ts'), code: "import { z } from 'zod';" },
      {
        filename: path.join(src, 'cli/commands/report.ts'),
        code: "const { renderReport } = await import('../../report/index.js');",
      },
      { filename: path.join(src, 'report/html.ts'), code: "import { Vm } from '../api/index.js';" },
      // A part's browser-safe entry (what the web console bundles).
      {
        filename: path.join(src, 'web/app/api.ts'),
        code: "import { managerRoutes } from '../../api/browser.js';",
      },
    ],
    invalid: [
      {
        filename: path.join(src, 'web/app/api.ts'),
        code: "import { managerRoutes } from '../../api/manager-routes.js';",
        errors: [
          { message: 'deep import into api/ (../../api/manager-routes.js): import from api/index.js' },
        ],
      },
      {
        filename: path.join(src, 'agent/vm.ts'),
        code: "import { QmpClient } from '../qmp/client.js';",
        errors: [{ message: 'deep import into qmp/ (../qmp/client.js): import from qmp/index.js' }],
      },
      {
        filename: path.join(src, 'cli/commands/vm.ts'),
        code: "import { startManager } from '../../manager/index.js';",
        errors: [{ message: 'cli/ must not import manager/ (see README: architecture)' }],
      },
      {
        filename: path.join(src, 'qmp/client.ts'),
        code: "export { Vm } from '../api/index.js';",
        errors: [{ message: 'qmp/ must not import api/ (see README: architecture)' }],
      },
      {
        filename: path.join(src, 'agent/server.ts'),
        code: "const m = await import('../manager/index.js');",
        errors: [{ message: 'agent/ must not import manager/ (see README: architecture)' }],
      },
      {
        filename: path.join(src, 'report/html.ts'),
        code: "import { UsageError } from '../cli/index.js';",
        errors: [{ message: 'report/ must not import cli/ (see README: architecture)' }],
      },
      {
        filename: path.join(src, 'web/server.ts'),
        code: "import { renderReport } from '../report/index.js';",
        errors: [{ message: 'web/ must not import report/ (see README: architecture)' }],
      },
    ],
  });
});
