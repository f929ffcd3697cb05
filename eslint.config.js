import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { partBoundaries } from './tools/eslint-part-boundaries.js';

export default tseslint.config(
  { ignores: ['node_modules/**', '.cache/**', 'dist/**', 'src/web/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    plugins: { silobreak: { rules: { 'part-boundaries': partBoundaries } } },
    rules: {
      'silobreak/part-boundaries': 'error',
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportDefaultDeclaration', message: 'Use named exports only.' },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Vite reads its configuration from a default export.
    files: ['src/web/vite.config.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
