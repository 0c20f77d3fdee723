import type { OutgoingRecord, TopicPartitionOffset } from './transport/types.js';

/** Stable error codes; tests and users may switch on them. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'DESERIALIZATION_FAILED'
  | 'SERIALIZATION_FAILED'
  | 'KEY_FUNCTION_FAILED'
  | 'HANDLER_FAILED'
  | 'INVALID_TIMESTAMP'
  | 'TRANSPORT_FAILED'
  | 'TRANSPORT_LOCKED'
  | 'RECORD_REJECTED'
  | 'STATE_FAILED'
  | 'STATE_LOCKED'
  | 'WORKER_TIMEOUT'
  | 'WORKER_CRASHED'
  | 'WORKER_INIT_FAILED'
  | 'POOL_CLOSED'
  | 'APP_STOPPED'
  | 'APP_STATE';

/**
 * The base of every error Eddy raises: a stable `code`, the underlying `cause`, and whether
 * retrying the same operation may succeed.
 */
export class EddyError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** A record the log refused for itself, with the log's reason (e.g. `INVALID_TIMESTAMP`, `MESSAGE_TOO_LARGE`). */
export interface RejectedRecord {
  readonly record: OutgoingRecord;
  /** Code `RECORD_REJECTED`; its message says why, its cause is the log's own error. */
  readonly error: EddyError;
  /** The log's name for the reason, e.g. `INVALID_TIMESTAMP`, `MESSAGE_TOO_LARGE`, `TOPIC_AUTHORIZATION_FAILED`. */
  readonly reason: string;
}

/**
 * A send of which the log refused some records for themselves (a timestamp out of its range, a
 * record too large, an invalid record, a topic it may not write): sending them again would be
 * refused again, so it is not retriable. Every other record of the send was written.
 */
export class RecordsRejectedError extends EddyError {
  readonly refused: readonly RejectedRecord[];
  /** For the records written: the offset of the last one per partition, as `send` resolves with. */
  readonly written: readonly TopicPartitionOffset[];

  constructor(refused: readonly RejectedRecord[], written: readonly TopicPartitionOffset[]) {
    const first = refused[0];
    super('RECORD_REJECTED', `the log refused ${refused.length} record(s)${first ? `, e.g. for ${first.record.topic}[${first.record.partition}]: ${first.error.message}` : ''}`, {
      cause: first?.error,
    });
    this.refused = refused;
    this.written = written;
  }
}

/** A bad option or an invalid chain, raised at build time. */
export class ConfigError extends EddyError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** Describes any thrown value in one line, for logs and dead-letter headers. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
