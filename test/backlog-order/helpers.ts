/** Shared helpers of the backlog-order adversarial tests: input generators, brute-force references, a runner. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createApp, memoryTransport, partitionForKey, silentLogger, type App, type MemoryTransport } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';
import { windowReference } from '../window-reference.ts';

export interface Click { seq: number; user: string; ts: number; p?: number }
export interface Win { key: string; start: number; end: number; seqs: number[] }
export type Kind = 'tumbling' | 'hopping' | 'sliding' | 'session';

export const SIZE = 1_000;
export const SLIDE = 400;
export const GAP = 150;
export const BASE = 1_000_000;
export const CLOSER = 100_000_000;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'eddy-backlog-'));
  dirs.push(dir);
  return dir;
}

/**
 * `count` clicks at times BASE + i*stepMs, then shuffled locally: each record moved by at most
 * `maxShift` positions (so its disorder, the largest timestamp before it minus its own, is at most
 * maxShift*stepMs). Returns them in send order.
 */
export function clicks(seed: number, count: number, stepMs: number, maxShift: number, users = 8): Click[] {
  const random = mulberry32(seed);
  const base = Array.from({ length: count }, (_, i) => ({ seq: i, user: `u${Math.floor(random() * users)}`, ts: BASE + i * stepMs }));
  // Sort by (index + jitter): a record lands at most maxShift positions from its place.
  const keyed = base.map((c, i) => ({ c, k: i + random() * maxShift }));
  keyed.sort((a, b) => a.k - b.k);
  return keyed.map(({ c }, seq) => ({ ...c, seq }));
}

/** Keys that the default partitioner sends to each partition (string keys are raw UTF-8). */
export function keysByPartition(partitions: number, perPartition = 64): string[][] {
  const out: string[][] = Array.from({ length: partitions }, () => []);
  const enc = new TextEncoder();
  for (let i = 0; out.some((keys) => keys.length < perPartition); i++) {
    const key = `route-${i}`;
    const p = partitionForKey(enc.encode(key), partitions);
    if (out[p]!.length < perPartition) out[p]!.push(key);
  }
  return out;
}

// ---------------------------------------------------------------- references

export { disorder } from '../window-reference.ts';

export function reference(input: readonly Click[], kind: Kind): Map<string, number[]> {
  return windowReference(input, kind, { size: SIZE, slide: SLIDE, gap: GAP });
}

// ---------------------------------------------------------------- pipeline

export interface PipelineOptions {
  kind: Kind;
  graceMs: number;
  extractor?: boolean;
}

export function windowPipeline(app: App, options: PipelineOptions & { observe?: (c: Click) => void }, topic = 'clicks', out = 'out'): void {
  let keyed = app.from<Click>(topic, options.extractor ? { timestamp: (c) => c.ts } : {}).keyBy((c) => c.user);
  if (options.observe) keyed = keyed.peek(options.observe);
  const grace = { grace: options.graceMs };
  const windowed =
    options.kind === 'tumbling'
      ? keyed.tumbling(SIZE, grace)
      : options.kind === 'hopping'
        ? keyed.hopping(SIZE, SLIDE, grace)
        : options.kind === 'sliding'
          ? keyed.sliding(SIZE, grace)
          : keyed.session(GAP, grace);
  windowed
    .aggregate({ init: () => [] as number[], add: (seqs: number[], c: Click) => [...seqs, c.seq], merge: (a: number[], b: number[]) => [...a, ...b] })
    .onClose(({ key, start, end, value }): Win => ({ key: key as string, start, end, seqs: [...value].sort((a, b) => a - b) }))
    .to(out);
}

export const winId = (w: Win) => `${w.key}@${w.start}@${w.end}`;

/** Every window record of `out` before the closers, in order. */
export function readWindows(transport: { records(topic: string): Array<{ value: Uint8Array | null; decoded?: { value: unknown } }> }, out = 'out'): Win[] {
  const dec = new TextDecoder();
  return (transport.records(out) ?? [])
    .map((r) => (r.decoded ? (r.decoded.value as Win) : (JSON.parse(dec.decode(r.value!)) as Win)))
    .filter((w) => w.start < CLOSER - 10 * SIZE);
}

/** Waits until `done()` or `ms` passed; then `settleMs` more (to see duplicates). */
export async function waitFor(done: () => boolean, ms = 8_000, settleMs = 100): Promise<void> {
  for (let waited = 0; waited < ms && !done(); waited += 20) await sleep(20);
  await sleep(settleMs);
}

export interface Check {
  missing: string[];
  wrong: string[];
  extra: string[];
  duplicates: string[];
}

/** Compares emitted windows to the reference; a window seen twice with the same value counts as duplicate. */
export function check(expected: Map<string, number[]>, got: readonly Win[]): Check {
  const seen = new Map<string, number[]>();
  const duplicates: string[] = [];
  const wrong: string[] = [];
  const extra: string[] = [];
  for (const w of got) {
    const id = winId(w);
    if (seen.has(id)) duplicates.push(id);
    seen.set(id, w.seqs);
    const want = expected.get(id);
    if (!want) extra.push(id);
    else if (JSON.stringify(want) !== JSON.stringify(w.seqs)) wrong.push(`${id}: want ${want.length} got ${w.seqs.length}`);
  }
  const missing = [...expected.keys()].filter((id) => !seen.has(id));
  return { missing: missing.slice(0, 10), wrong: [...new Set(wrong)].slice(0, 10), extra: extra.slice(0, 10), duplicates: duplicates.slice(0, 10) };
}

export const clean: Check = { missing: [], wrong: [], extra: [], duplicates: [] };

export interface RunOptions extends PipelineOptions {
  partitions: number;
  /** The record's key on the input topic (decides its partition). */
  keyOf: (c: Click) => string;
  maxBatchSize?: number;
  id?: string;
  /** Instead of memoryTransport({ defaultPartitions, maxBatchSize }). */
  transport?: MemoryTransport;
  /** Sees each record after the keyBy, in the order the downstream tasks process them. */
  observe?: (c: Click) => void;
}

/** Preloads `input`, starts the app, sends one closer per user, waits for every expected window. */
export async function runBacklog(input: readonly Click[], options: RunOptions) {
  const transport: MemoryTransport = options.transport ?? memoryTransport({ defaultPartitions: options.partitions, ...(options.maxBatchSize ? { maxBatchSize: options.maxBatchSize } : {}) });
  const app = createApp({ id: options.id ?? 'bo', transport, idleTimeout: false, logger: silentLogger });
  windowPipeline(app, options);
  await app.sendBatch('clicks', input.map((c) => ({ value: c, key: options.keyOf(c), timestamp: options.extractor ? 0 : c.ts })));
  await app.start();
  const users = [...new Set(input.map((c) => c.user))];
  await app.sendBatch('clicks', users.map((user) => ({ value: { seq: -1, user, ts: CLOSER }, key: options.keyOf({ seq: -1, user, ts: CLOSER }), timestamp: options.extractor ? 0 : CLOSER })));
  const expected = reference(input, options.kind);
  await waitFor(() => new Set(readWindows(transport).map(winId)).size >= expected.size);
  const got = readWindows(transport);
  const metrics = app.metrics();
  await app.stop();
  return { expected, got, late: metrics.lateRecords, transport, result: check(expected, got) };
}
