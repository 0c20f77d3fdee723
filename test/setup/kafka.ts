/**
 * Vitest global setup: gives the run one real Kafka broker and tells test files where it is
 * (`inject('kafkaBrokers')`, see test/kafka/broker.ts).
 *
 * - `KAFKA_BROKERS=host:port,...` uses that cluster and starts nothing.
 * - Otherwise starts a single-node broker on free ports with a fresh temp data dir and stops it
 *   in teardown. It is skipped when none of the run's test files use Kafka.
 * - If no broker can be had, Kafka suites are skipped with a loud warning, unless
 *   `EDDY_REQUIRE_KAFKA=1` (CI), where the run fails instead.
 */
import { readFile } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import { KAFKA_VERSION, startKafka, waitForKafka, type KafkaBroker } from '../../scripts/src/kafka.ts';
// For the ProvidedContext declaration only.
import type {} from '../kafka/broker.ts';

const required = process.env.EDDY_REQUIRE_KAFKA === '1';

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const fromEnv = (process.env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((broker) => broker.trim())
    .filter(Boolean);
  if (fromEnv.length > 0) {
    try {
      await waitForKafka(fromEnv, 10_000);
    } catch (error) {
      return unavailable(project, `KAFKA_BROKERS=${fromEnv.join(',')} does not answer: ${message(error)}`);
    }
    console.log(`[kafka] using KAFKA_BROKERS=${fromEnv.join(',')}`);
    project.provide('kafkaBrokers', fromEnv);
    return undefined;
  }

  if (!required && !(await runUsesKafka(project))) {
    project.provide('kafkaBrokers', null);
    return undefined;
  }

  const started = Date.now();
  let broker: KafkaBroker;
  try {
    broker = await startKafka({ log: (line) => console.log(`[kafka] ${line}`) });
  } catch (error) {
    return unavailable(project, message(error));
  }
  console.log(`[kafka] Kafka ${KAFKA_VERSION} ready on ${broker.brokers.join(',')} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  project.provide('kafkaBrokers', broker.brokers);
  // Bounded below vitest's 10 s teardownTimeout, after which it exits and the broker is killed anyway.
  return () => broker.stop(7_000);
}

function unavailable(project: TestProject, reason: string): undefined {
  if (required) {
    throw new Error(`EDDY_REQUIRE_KAFKA=1 but no Kafka broker is available:\n${reason}`);
  }
  const rule = '!'.repeat(78);
  console.warn(
    [
      '',
      rule,
      '!!  NO KAFKA BROKER: every test that needs Kafka is SKIPPED in this run.',
      '!!',
      ...reason.split('\n').slice(0, 25).map((line) => `!!  ${line}`),
      '!!',
      '!!  Fix: install Java 17+ and Maven (the broker jars come from Maven Central),',
      '!!  or point KAFKA_BROKERS at a running broker (e.g. `npm run kafka`, then',
      '!!  KAFKA_BROKERS=127.0.0.1:9092). EDDY_REQUIRE_KAFKA=1 turns this into a failure.',
      rule,
      '',
    ].join('\n'),
  );
  project.provide('kafkaBrokers', null);
  return undefined;
}

/**
 * Whether any test file this run will execute asks for Kafka, so that `vitest run some/file`
 * does not pay for a JVM. Kafka test files go through test/kafka/broker.ts, so the names of its
 * exports (or the injected key) mark them. When unsure, answer yes: a needless broker costs
 * seconds, a missing one skips tests.
 */
async function runUsesKafka(project: TestProject): Promise<boolean> {
  try {
    // vitest keeps the command line's file filters here; not public API, hence the fallback.
    const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
    const { testFiles } = await project.globTestFiles(filters);
    for (const file of testFiles) {
      if (/\b(?:describeKafka|kafkaBrokers)\b/.test(await readFile(file, 'utf8'))) return true;
    }
    return false;
  } catch {
    return true;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
