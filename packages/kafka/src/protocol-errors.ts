/**
 * Reading @platformatic/kafka's errors: a response with error codes fails as a `ResponseError`
 * that holds one `ProtocolError` per code (with the Kafka error's name in `apiId`) and the parsed
 * response, so that the partitions that did not fail can still be used.
 */

interface ProtocolErrorLike {
  readonly apiId?: string;
  readonly path?: string;
  readonly canRetry?: boolean;
}

/** The Kafka error names (`NOT_LEADER_OR_FOLLOWER`, …) an error carries, at any depth. */
export function kafkaErrorNames(error: unknown): string[] {
  const names: string[] = [];
  const visit = (candidate: unknown, depth: number): void => {
    if (typeof candidate !== 'object' || candidate === null || depth > 4) return;
    const { apiId, errors, cause } = candidate as ProtocolErrorLike & { errors?: unknown; cause?: unknown };
    if (typeof apiId === 'string') names.push(apiId);
    if (Array.isArray(errors)) for (const inner of errors) visit(inner, depth + 1);
    if (cause) visit(cause, depth + 1);
  };
  visit(error, 0);
  return names;
}

/** Whether an error carries the Kafka error `name`. */
export const hasKafkaError = (error: unknown, ...names: string[]): boolean => kafkaErrorNames(error).some((name) => names.includes(name));

/** The parsed response a `ResponseError` carries (partitions without an error are usable). */
export function responseOf<T>(error: unknown): T | undefined {
  return typeof error === 'object' && error !== null && 'response' in error ? ((error as { response?: T }).response ?? undefined) : undefined;
}

/** Kafka's error code for a fetch from an offset the log no longer (or does not yet) hold. */
export const OFFSET_OUT_OF_RANGE = 1;
