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

/** The Kafka errors (`NOT_LEADER_OR_FOLLOWER`, …) an error carries, at any depth, and whether each may go away on a retry. */
export function kafkaErrors(error: unknown): Array<{ readonly name: string; readonly canRetry: boolean }> {
  const found: Array<{ name: string; canRetry: boolean }> = [];
  const visit = (candidate: unknown, depth: number): void => {
    if (typeof candidate !== 'object' || candidate === null || depth > 6) return;
    const { apiId, canRetry, errors, cause } = candidate as ProtocolErrorLike & { errors?: unknown; cause?: unknown };
    if (typeof apiId === 'string') found.push({ name: apiId, canRetry: canRetry === true });
    if (Array.isArray(errors)) for (const inner of errors) visit(inner, depth + 1);
    if (cause) visit(cause, depth + 1);
  };
  visit(error, 0);
  return found;
}

/** The Kafka error names an error carries, at any depth. */
export const kafkaErrorNames = (error: unknown): string[] => kafkaErrors(error).map(({ name }) => name);

/** Whether an error carries the Kafka error `name`. */
export const hasKafkaError = (error: unknown, ...names: string[]): boolean => kafkaErrorNames(error).some((name) => names.includes(name));

/** The parsed response a `ResponseError` carries (partitions without an error are usable). */
export function responseOf<T>(error: unknown): T | undefined {
  return typeof error === 'object' && error !== null && 'response' in error ? ((error as { response?: T }).response ?? undefined) : undefined;
}

/** Kafka's error code for a fetch from an offset the log no longer (or does not yet) hold. */
export const OFFSET_OUT_OF_RANGE = 1;
