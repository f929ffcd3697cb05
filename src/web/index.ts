import path from 'node:path';

/**
 * The web console: a React single-page app (app/, built by Vite into dist/ at set-up, see
 * vite.config.ts) that talks only to the manager's REST API with the user's token. The manager
 * serves the built folder at `/`.
 */
export const WEB_CONSOLE_DIR = path.join(import.meta.dirname, 'dist');
