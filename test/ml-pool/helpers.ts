/**
 * Shared pieces of the ml-pool tests: readings, a brute-force reference of tumbling windows, a
 * recording logger, and readers of an embedded broker's topics.
 */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger, MemoryTransport } from '@eddy/core';

export const MODEL = new URL('./model.mjs', import.meta.url);

export interface Reading { k: string; v: number; ts: number; act?: string; sleep?: number; log?: string }
export interface Result { key: string; start: number; end: number; n: number; sum: number; thread?: number; poisoned?: boolean }

/** Every tumbling(size) window of `readings` whose end is at most `closedBy` (grace 0), by brute force. */
export function reference(readings: readonly Reading[], size: number, closedBy: number): Map<string, Result & { readings: Reading[] }> {
  const windows = new Map<string, Result & { readings: Reading[] }>();
  for (const r of readings) {
    const start = Math.floor(r.ts / size) * size;
    if (start + size > closedBy) continue;
    const id = `${r.k}@${start}`;
    const w = windows.get(id) ?? { key: r.k, start, end: start + size, n: 0, sum: 0, readings: [] };
    w.n += 1;
    w.sum += r.v;
    w.readings.push(r);
    windows.set(id, w);
  }
  return windows;
}

export const windowId = (w: { key: string; start: number }) => `${w.key}@${w.start}`;
export const strip = ({ key, start, end, n, sum }: Result) => ({ key, start, end, n, sum });

export type Line = { level: string; message: string; fields: Record<string, unknown> };
export function recording(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as Logger & { lines: Line[] };
}

const decoder = new TextDecoder();
export const decode = (bytes: Uint8Array | null): unknown => (bytes === null ? null : JSON.parse(decoder.decode(bytes)));
export const text = (bytes: Uint8Array | null): string | null => (bytes === null ? null : decoder.decode(bytes));

/** A topic's records on the embedded broker, decoded as JSON. */
export function values<V>(transport: MemoryTransport, topic: string): V[] {
  return transport.records(topic).map((record) => decode(record.value) as V);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `eddy-ml-pool-${prefix}-`));
}

/** The window ids the model was called with, one per call (see model.mjs `log`). */
export function calls(dir: string): string[] {
  const file = join(dir, 'calls');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

export const count = (items: readonly string[]) => items.reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>());

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}
