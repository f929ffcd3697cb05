import path from 'node:path';

/**
 * The web console: a static single page (no build step) that talks only to the manager's REST API
 * with the user's token. The manager serves this folder at `/`.
 */
export const WEB_CONSOLE_DIR = path.join(import.meta.dirname, 'static');
