// ESLint flat config (run as `eslint --config .eslint.config.js`: the
// repository keeps its top level to package.json, tsconfig.json, src/, test/,
// bin/ and dotfiles). typescript-eslint's recommended type-checked rules over
// src/ and test/, typed by the two tsconfigs.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'node_modules/', 'node_modules.*/', 'bin/', '.eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['src/**/*.ts', 'test/**/*.ts'],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // The underscore convention for deliberately unused parameters, which tsc's noUnusedParameters already honours.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // node:test's test()/describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
    },
  },
);
