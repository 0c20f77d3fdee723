/** Stable error codes; tests and users may switch on them. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'DESERIALIZATION_FAILED'
  | 'SERIALIZATION_FAILED'
  | 'KEY_FUNCTION_FAILED'
  | 'HANDLER_FAILED'
  | 'INVALID_TIMESTAMP'
  | 'TRANSPORT_FAILED'
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
