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

/** Kafka errors by code, for responses read field by field (a partition's `errorCode`). */
export const kafkaErrorCodes = {
  OFFSET_OUT_OF_RANGE: 1,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_OR_FOLLOWER: 6,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  UNKNOWN_MEMBER_ID: 25,
  FENCED_LEADER_EPOCH: 74,
  UNKNOWN_LEADER_EPOCH: 75,
  UNKNOWN_TOPIC_ID: 100,
  FENCED_MEMBER_EPOCH: 110,
  UNRELEASED_INSTANCE_ID: 111,
  STALE_MEMBER_EPOCH: 113,
} as const;
