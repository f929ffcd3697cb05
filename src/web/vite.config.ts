import path from 'node:path';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built at set-up (`npm run build:web`, scripts/setup.sh) into dist/, which the manager serves.
// Everything is bundled: the page loads nothing from any other origin at run time.
export default defineConfig({
  root: path.join(import.meta.dirname, 'app'),
  base: '/',
  plugins: [react()],
  build: {
    outDir: path.join(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    // ECharts is one large chunk; splitting it buys nothing for an admin console on a LAN.
    chunkSizeWarningLimit: 2000,
    // No inline module-preload polyfill script: the CSP allows no inline script.
    modulePreload: { polyfill: false },
  },
});
