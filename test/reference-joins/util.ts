/** Helpers for the acceptance tests of joins (public API only). */
import { partitionForKey, type MemoryTransport } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';

/** The project's seeded PRNG in [0, 1). */
export const rng = mulberry32;

const encoder = new TextEncoder();

/** Writes records straight to the broker, partitioned by key bytes as a producer would. */
export function preload(transport: MemoryTransport, topic: string, partitions: number, records: ReadonlyArray<{ key: string; value: unknown; timestamp: number }>): void {
  transport.append(
    records.map(({ key, value, timestamp }) => {
      const keyBytes = encoder.encode(key);
      return { topic, partition: partitionForKey(keyBytes, partitions), key: keyBytes, value: value === null ? null : encoder.encode(JSON.stringify(value)), timestamp, headers: {} };
    }),
  );
}

export const partitionOf = (key: string, partitions: number) => partitionForKey(encoder.encode(key), partitions);

export const canon = (x: unknown) => JSON.stringify(x);

/** Multiset difference description: what is in a but not b, and vice versa. */
export function diff(actual: string[], expected: string[]): { missing: string[]; extra: string[] } {
  const count = new Map<string, number>();
  for (const e of expected) count.set(e, (count.get(e) ?? 0) + 1);
  const extra: string[] = [];
  for (const a of actual) {
    const n = count.get(a) ?? 0;
    if (n === 0) extra.push(a);
    else count.set(a, n - 1);
  }
  const missing: string[] = [];
  for (const [k, n] of count) for (let i = 0; i < n; i++) missing.push(k);
  return { missing, extra };
}
