import type { Logger } from '@eddy/core';
import kafkajs from 'kafkajs';
import type { logLevel as KafkaJsLogLevel, logCreator, LogEntry } from 'kafkajs';
import type { KafkaLogLevel } from './options.js';

const { logLevel } = kafkajs;

/** kafkajs's numeric level for each of ours. */
export const kafkaLogLevel: Record<KafkaLogLevel, KafkaJsLogLevel> = {
  nothing: logLevel.NOTHING,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG,
};

/**
 * Messages that say nothing to an Eddy user: Eddy sets every partition itself (so the default
 * partitioner notice is moot), and it bounds the idempotent producer's retries on purpose, so
 * that a broker that stays down fails the commit instead of hanging it; the at-least-once
 * guarantee does not depend on unbounded retries.
 */
const ignored = [/^KafkaJS v2\.0\.0 switched default partitioner/, /^Limiting retries for the idempotent producer/];

/**
 * kafkajs logs as errors what it handles itself: every error response a connection receives
 * (a rebalance answers each heartbeat with one), and a consumer restart (which the transport
 * reports once, as a warning). Those go to debug; a rebalance is routine, so info.
 */
const demoted: ReadonlyArray<{ namespace: string; pattern: RegExp; level: KafkaJsLogLevel }> = [
  { namespace: 'Connection', pattern: /^Response /, level: logLevel.DEBUG },
  { namespace: 'Consumer', pattern: /^(Crash: |Restarting the consumer)/, level: logLevel.DEBUG },
  { namespace: 'Runner', pattern: /^The group is rebalancing, re-joining/, level: logLevel.INFO },
];

/** Routes kafkajs's logs to an Eddy (pino-compatible) logger, tagged `kafkajs` with their namespace. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _name, ...fields } = log;
      if (ignored.some((pattern) => pattern.test(message))) return;
      const demotion = demoted.find((rule) => namespace.endsWith(rule.namespace) && rule.pattern.test(message));
      const effective = demotion && demotion.level > level ? demotion.level : level;
      const entry = { component: 'kafkajs', namespace, ...fields };
      if (effective === logLevel.ERROR) logger.error(entry, message);
      else if (effective === logLevel.WARN) logger.warn(entry, message);
      else if (effective === logLevel.INFO) logger.info(entry, message);
      else logger.debug(entry, message);
    };
}
