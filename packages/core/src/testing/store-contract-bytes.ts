/** Bytes, entries and references shared by the parts of the store contract suite. */
import { Buffer } from 'node:buffer';
import type { KeyRange, PartitionStore, StateBackend, StoreEntry, StoreSpec } from '../state/backend.js';
import { compareBytes } from '../state/keys.js';
import { mulberry32 } from './random.js';

/** What every part of the suite works on: the backend of the running test, and stores in it. */
export interface ContractSuite {
  /** The backend made for the running test (a new one after `reopen`). */
  backend(): StateBackend;
  /** Opens a partition store; `overrides` change the default spec. */
  open(overrides?: Partial<StoreSpec>): Promise<PartitionStore>;
  /** Closes the backend and opens a new one over the same storage (durable backends only). */
  reopen(): Promise<void>;
}

export function spec(overrides: Partial<StoreSpec>): StoreSpec {
  const appId = overrides.appId ?? 'contract-app';
  const storeName = overrides.storeName ?? 'store';
  return {
    appId,
    storeName,
    partition: overrides.partition ?? 0,
    changelogTopic: overrides.changelogTopic ?? `${appId}-${storeName}-changelog`,
  };
}

export function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

export function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

export function put(key: number[] | Uint8Array, value: number[] | Uint8Array): StoreEntry {
  return { key: Uint8Array.from(key), value: Uint8Array.from(value) };
}

export function del(key: number[]): StoreEntry {
  return { key: Uint8Array.from(key), value: null };
}

export function hexOf(value: Uint8Array): string;
export function hexOf(value: Uint8Array | undefined): string | undefined;
export function hexOf(value: Uint8Array | undefined): string | undefined {
  return value === undefined ? undefined : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
}

/** Entries as hex pairs: copies the bytes, so later writes cannot change what was read. */
export async function collect(store: PartitionStore, range?: KeyRange): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [key, value] of store.entries(range)) out.push([hexOf(key), hexOf(value)]);
  return out;
}

export function keysOf(entries: [string, string][]): string[] {
  return entries.map(([key]) => key);
}

export function sortedReference(reference: Map<string, string>): [string, string][] {
  return [...reference.entries()].sort(([a], [b]) => compareBytes(Buffer.from(a, 'hex'), Buffer.from(b, 'hex')));
}

export function inRange(key: Uint8Array, range: KeyRange): boolean {
  return (range.gte === undefined || compareBytes(key, range.gte) >= 0) && (range.lt === undefined || compareBytes(key, range.lt) < 0);
}

export function describeRange(range: KeyRange): string {
  return `[${hexOf(range.gte) ?? '-∞'}, ${hexOf(range.lt) ?? '+∞'})`;
}

export const random = mulberry32;

/** Short keys over a small alphabet with the edge bytes, so prefixes and collisions are common. */
export function randomKey(next: () => number): Uint8Array {
  const alphabet = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff];
  return Uint8Array.from({ length: Math.floor(next() * 4) }, () => alphabet[Math.floor(next() * alphabet.length)]);
}

export function randomRange(next: () => number): KeyRange {
  const roll = next();
  const gte = roll < 0.75 ? randomKey(next) : undefined;
  const lt = roll > 0.25 ? randomKey(next) : undefined;
  return { ...(gte === undefined ? {} : { gte }), ...(lt === undefined ? {} : { lt }) };
}
