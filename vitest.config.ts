import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources; `npm run build` checks the published output.
    alias: [
      { find: /^@eddy\/core\/testing$/, replacement: src('./packages/core/src/testing/index.ts') },
      { find: /^@eddy\/core\/store-contract$/, replacement: src('./packages/core/src/testing/store-contract.ts') },
      { find: /^@eddy\/core$/, replacement: src('./packages/core/src/index.ts') },
      { find: /^@eddy\/state$/, replacement: src('./packages/state/src/index.ts') },
      { find: /^@eddy\/ml$/, replacement: src('./packages/ml/src/index.ts') },
      { find: /^@eddy\/kafka$/, replacement: src('./packages/kafka/src/index.ts') },
    ],
  },
  test: {
    globalSetup: ['./test/setup/kafka.ts'],
    include: ['packages/*/src/**/*.test.ts', 'examples/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    typecheck: { enabled: true, include: ['packages/*/src/**/*.test-d.ts'], tsconfig: './tsconfig.typetest.json' },
    testTimeout: 30_000,
  },
});
