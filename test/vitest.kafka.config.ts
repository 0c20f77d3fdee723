// Runs only the Kafka tests, with the Kafka global setup: `npx vitest run --config test/vitest.kafka.config.ts`.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['test/kafka/**/*.test.ts'],
    globalSetup: ['./test/setup/kafka.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
