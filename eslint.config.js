import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.turbo/**', 'bench/results/**', '**/test-fixtures/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'Inject a Clock; never read the wall clock directly.' }],
    },
  },
  {
    files: ['**/*.test.ts', '**/*.test-d.ts', 'bench/**', 'examples/**', 'scripts/**', 'test/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
