/**
 * Helpers for test files that need a real Kafka broker. The broker is started (or taken from
 * `KAFKA_BROKERS`) once per run by the global setup in `test/setup/kafka.ts`, which hands its
 * address over with vitest's `provide`.
 */
import { randomBytes } from 'node:crypto';
import { describe, inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Bootstrap servers of the run's Kafka broker, or null when none could be had. */
    kafkaBrokers: string[] | null;
  }
}

/**
 * The broker list for this run, or null when no broker is available (no Java or Maven, the
 * download failed, or the global setup is not registered).
 */
export function kafkaBrokers(): string[] | null {
  // inject() gives undefined when the global setup never ran; treat that like "no broker".
  return inject('kafkaBrokers') ?? null;
}

/**
 * `describe` for suites that need Kafka: runs them when the run has a broker and skips them,
 * with a warning, when it has none. The suite callback receives the broker list (empty when
 * skipped, in which case its tests never run).
 *
 * With `EDDY_REQUIRE_KAFKA=1` a missing broker fails the file instead, so CI cannot go green by
 * skipping every Kafka test.
 */
export function describeKafka(name: string, fn: (brokers: string[]) => void): void {
  const brokers = kafkaBrokers();
  if (brokers) {
    describe(name, () => fn(brokers));
    return;
  }
  const why =
    inject('kafkaBrokers') === undefined
      ? "the Kafka global setup did not run (add './test/setup/kafka.ts' to test.globalSetup)"
      : 'no Kafka broker is available in this run (see the warning at the start of the run)';
  if (process.env.EDDY_REQUIRE_KAFKA === '1') {
    throw new Error(`EDDY_REQUIRE_KAFKA=1 but ${why}: cannot run "${name}"`);
  }
  console.warn(`[kafka] skipping "${name}": ${why}`);
  describe.skip(name, () => fn([]));
}

/**
 * A name no other test or earlier run has used, for topics, groups and transactional ids: tests
 * share one broker (and possibly a developer's long-lived one via KAFKA_BROKERS).
 */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
