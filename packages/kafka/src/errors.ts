import { EddyError } from '@eddy/core';
import { kafkaErrorNames } from './protocol-errors.js';

/** Protocol errors that mean this member no longer owns what it tried to commit. */
const membershipErrors = new Set(['UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION', 'REBALANCE_IN_PROGRESS', 'FENCED_INSTANCE_ID']);

interface KafkaJsErrorShape {
  readonly name?: string;
  readonly message?: string;
  readonly type?: string;
  readonly retriable?: boolean;
  readonly cause?: unknown;
  /** @platformatic/kafka's: an error code (`PLT_KFK_…`) and whether a retry may succeed. */
  readonly code?: unknown;
  readonly canRetry?: boolean;
}

/** Whether an error comes from @platformatic/kafka. */
const isPlatformaticError = (error: unknown): boolean => {
  const { code } = shape(error);
  return typeof code === 'string' && code.startsWith('PLT_KFK_');
};

const shape = (error: unknown): KafkaJsErrorShape => (typeof error === 'object' && error !== null ? (error as KafkaJsErrorShape) : {});

/** The innermost cause of a kafkajs error chain (kafkajs wraps the broker's error when it gives up retrying). */
function originalCause(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 10; depth++) {
    const cause = shape(current).cause;
    if (cause === undefined || cause === null || cause === current) return current;
    current = cause;
  }
  return current;
}

/**
 * Whether retrying the failed operation later may succeed. By kafkajs's own rule (the one it uses
 * to restart a crashed consumer): it ran out of retries of a retriable error, or the error at the
 * root of the chain says it is retriable. By @platformatic/kafka's: the error says so, or it
 * carries no Kafka error at all (a connection lost, a request timed out).
 */
export function isRetriable(error: unknown): boolean {
  if (isPlatformaticError(error)) return shape(error).canRetry === true || kafkaErrorNames(error).length === 0;
  if (shape(error).name === 'KafkaJSNumberOfRetriesExceeded') return true;
  return shape(originalCause(error)).retriable === true;
}

/** Whether an error or one of its causes has a broker error type that `matches`. */
function hasType(error: unknown, matches: (type: string) => boolean): boolean {
  for (let current: unknown = error, depth = 0; current !== undefined && current !== null && depth < 10; current = shape(current).cause, depth++) {
    const { type } = shape(current);
    if (type !== undefined && matches(type)) return true;
  }
  return false;
}

/** Whether a failed commit means the partitions were taken away (a rebalance went on without us). */
export function isMembershipError(error: unknown): boolean {
  return hasType(error, (type) => membershipErrors.has(type));
}

/**
 * Broker errors that mean a newer producer took the transactional id over (a zombie's requests).
 * PRODUCER_FENCED (code 90) is newer than kafkajs, which reports it as an unknown error code.
 */
const fencingErrors = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);

/** Whether a transactional request failed because the producer was fenced. */
export function isFenced(error: unknown): boolean {
  if (hasType(error, (type) => fencingErrors.has(type))) return true;
  return hasType(error, (type) => type === 'KAFKAJS_UNKNOWN_ERROR_CODE') && /\bcode 90\b/.test(String(shape(originalCause(error)).message));
}

/**
 * Broker errors about the records of a produce request themselves: sending them again would be
 * refused again. CORRUPT_MESSAGE is retriable by the protocol's word (a record damaged on the
 * way), so kafkajs retries it first; once it gives up, the record is refused like the others.
 */
const recordRefusals = new Set(['INVALID_TIMESTAMP', 'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'CORRUPT_MESSAGE', 'INVALID_RECORD', 'TOPIC_AUTHORIZATION_FAILED', 'INVALID_TOPIC_EXCEPTION']);

/** The broker's reason when it refused produced records for themselves (e.g. `INVALID_TIMESTAMP`), or undefined. */
export function recordRefusal(error: unknown): string | undefined {
  for (let current: unknown = error, depth = 0; current !== undefined && current !== null && depth < 10; current = shape(current).cause, depth++) {
    const { type } = shape(current);
    if (type !== undefined && recordRefusals.has(type)) return type;
  }
  return undefined;
}

/** Broker errors that mean the client's view of topics and leaders is out of date. */
const staleMetadataErrors = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'NOT_LEADER_FOR_PARTITION', 'LEADER_NOT_AVAILABLE', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH']);

/** Whether the failure (or a cause) says the client's metadata is stale: a topic gone or not there yet, a leader moved. */
export function isStaleMetadata(error: unknown): boolean {
  return hasType(error, (type) => staleMetadataErrors.has(type));
}

/**
 * Wraps a client's failure as an `EddyError` of code `TRANSPORT_FAILED`, saying what failed (with
 * the Kafka errors it carries) and whether it is retriable. An `EddyError` passes through unchanged.
 */
export function transportError(what: string, error: unknown): EddyError {
  if (error instanceof EddyError) return error;
  if (isPlatformaticError(error)) {
    const names = kafkaErrorNames(error);
    return new EddyError('TRANSPORT_FAILED', `${what}: ${names.length > 0 ? `${names.join(', ')}: ` : ''}${String(error)}`, { cause: error, retriable: isRetriable(error) });
  }
  const { name, message } = shape(error);
  const root = shape(originalCause(error));
  const detail = root.message && root.message !== message ? `${message ?? String(error)} (${root.message})` : (message ?? String(error));
  return new EddyError('TRANSPORT_FAILED', `${what}: ${name ? `${name}: ` : ''}${detail}`, { cause: error, retriable: isRetriable(error) });
}
