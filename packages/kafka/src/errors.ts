import { EddyError } from '@eddy/core';
import { kafkaErrorNames, kafkaErrors } from './protocol-errors.js';

/**
 * How a @platformatic/kafka failure is read. Its errors carry a code (`PLT_KFK_…`), whether a
 * retry may succeed (`canRetry`), and the Kafka errors of a response (see protocol-errors.ts).
 * An `EddyError` in a chain (ours, from a layer below) keeps its own word.
 */
interface ClientErrorShape {
  readonly code?: unknown;
  readonly canRetry?: boolean;
}

const shape = (error: unknown): ClientErrorShape => (typeof error === 'object' && error !== null ? (error as ClientErrorShape) : {});

/** Whether an error comes from @platformatic/kafka. */
const isClientError = (error: unknown): boolean => {
  const { code } = shape(error);
  return typeof code === 'string' && code.startsWith('PLT_KFK_');
};

/**
 * Whether retrying the failed operation later may succeed: the client says so, or every Kafka
 * error it carries may go away on a retry (a leader moving, a coordinator loading), or it carries
 * none at all (a connection lost, a request timed out).
 */
export function isRetriable(error: unknown): boolean {
  if (error instanceof EddyError) return error.retriable;
  if (isUnknownTopic(error)) return true;
  if (!isClientError(error) || shape(error).code === 'PLT_KFK_USER') return false;
  return shape(error).canRetry === true || kafkaErrors(error).every(({ canRetry }) => canRetry);
}

/** Broker errors that mean a newer producer took the transactional id over (a zombie's requests). */
const fencingErrors = ['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED'];

/** Whether a transactional request failed because the producer was fenced. */
export function isFenced(error: unknown): boolean {
  return kafkaErrorNames(error).some((name) => fencingErrors.includes(name));
}

/**
 * Broker errors about the records of a produce request themselves: sending them again would be
 * refused again. CORRUPT_MESSAGE is retriable by the protocol's word (a record damaged on the
 * way), so the client retries it first; once it gives up, the record is refused like the others.
 */
const recordRefusals = ['INVALID_TIMESTAMP', 'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'CORRUPT_MESSAGE', 'INVALID_RECORD', 'TOPIC_AUTHORIZATION_FAILED', 'INVALID_TOPIC_EXCEPTION'];

/** The broker's reason when it refused produced records for themselves (e.g. `INVALID_TIMESTAMP`), or undefined. */
export function recordRefusal(error: unknown): string | undefined {
  return kafkaErrorNames(error).find((name) => recordRefusals.includes(name));
}

/** Broker errors that mean the client's view of topics and leaders is out of date. */
const staleMetadataErrors = ['UNKNOWN_TOPIC_OR_PARTITION', 'NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH'];

/** Whether the failure (or a cause) says the client's metadata is stale: a topic gone or not there yet, a leader moved. */
export function isStaleMetadata(error: unknown): boolean {
  return isUnknownTopic(error) || kafkaErrorNames(error).some((name) => staleMetadataErrors.includes(name));
}

/**
 * The client reports a topic its metadata request did not find as a usage error ("Unknown topic
 * …", no Kafka error code), after retrying. A topic may be missing for a moment (just created
 * elsewhere, metadata not yet everywhere), so it counts as stale metadata, which a retry may mend.
 */
function isUnknownTopic(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; typeof current === 'object' && current !== null && depth < 6; current = (current as { cause?: unknown }).cause, depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (code === 'PLT_KFK_USER' && typeof message === 'string' && message.startsWith('Unknown topic ')) return true;
  }
  return false;
}

/**
 * Wraps a client's failure as an `EddyError` of code `TRANSPORT_FAILED`, saying what failed (with
 * the Kafka errors it carries) and whether it is retriable. An `EddyError` passes through unchanged.
 */
export function transportError(what: string, error: unknown): EddyError {
  if (error instanceof EddyError) return error;
  const names = [...new Set(kafkaErrorNames(error))];
  const detail = error instanceof Error ? error.message : String(error);
  return new EddyError('TRANSPORT_FAILED', `${what}: ${names.length > 0 ? `${names.join(', ')}: ` : ''}${detail}`, { cause: error, retriable: isRetriable(error) });
}
