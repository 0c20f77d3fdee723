/**
 * The default state backend: every store partition lives in process memory. It is what an app
 * without a `state` option runs on and what `TestDriver` uses, so it must behave exactly like the
 * LevelDB backend (both pass `describeStoreContract`), only without durability: after a process
 * restart, state comes back from the changelog alone.
 */
import { EddyError } from '../errors.js';
import { latin1Text } from '../serde.js';
import type { KeyRange, PartitionStore, StateBackend, StoreEntry, StoreSpec } from './backend.js';

/**
 * Creates an in-memory {@link StateBackend} (kind `memory`).
 *
 * Each store partition is an ordered map of byte keys. Closing a partition or the backend keeps
 * the data for as long as the backend object lives, so an app stopped and started again on the
 * same backend finds its state (and checkpoint) where it left it; a new `memoryState()` starts
 * empty. Bytes returned by `get` and `entries` are the store's own copies: treat them as
 * read-only.
 *
 * @example
 * ```ts
 * const state = memoryState();
 * const store = await state.open({ appId: 'sensors', storeName: 'count', partition: 0, changelogTopic: 'sensors-count-changelog' });
 * await store.write([{ key: Uint8Array.of(1), value: Uint8Array.of(42) }], 17);
 * await store.get(Uint8Array.of(1)); // Uint8Array [42]
 * await store.checkpoint();          // 17
 * ```
 */
export function memoryState(): StateBackend {
  const partitions = new Map<string, PartitionData>();
  const handles = new Set<MemoryPartitionStore>();

  return {
    kind: 'memory',
    async open(spec: StoreSpec): Promise<PartitionStore> {
      assertSpec(spec);
      const id = JSON.stringify([spec.appId, spec.storeName, spec.partition]);
      let data = partitions.get(id);
      if (data === undefined) {
        data = { map: new OrderedBytesMap(), checkpoint: undefined };
        partitions.set(id, data);
      }
      const handle = new MemoryPartitionStore(spec, data, () => handles.delete(handle));
      handles.add(handle);
      return handle;
    },
    async close(appId?: string): Promise<void> {
      for (const handle of [...handles]) if (appId === undefined || handle.appId === appId) await handle.close();
    },
  };
}

/** One partition's data, shared by every handle opened on it. */
interface PartitionData {
  map: OrderedBytesMap;
  checkpoint: number | undefined;
}

class MemoryPartitionStore implements PartitionStore {
  readonly #spec: StoreSpec;
  readonly #data: PartitionData;
  readonly #onClose: () => void;
  #closed = false;

  constructor(spec: StoreSpec, data: PartitionData, onClose: () => void) {
    this.#spec = spec;
    this.#data = data;
    this.#onClose = onClose;
  }

  get appId(): string {
    return this.#spec.appId;
  }

  async *entries(range: KeyRange = {}): AsyncIterable<readonly [Uint8Array, Uint8Array]> {
    this.#assertOpen();
    assertRange(range);
    yield* this.#data.map.scan(range);
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.#assertOpen();
    assertKey(key, 'key');
    return this.#data.map.get(key);
  }

  async write(batch: readonly StoreEntry[], changelogOffset?: number): Promise<void> {
    this.#assertOpen();
    // Validate everything before touching the map, so that a bad entry cannot leave half a batch.
    assertBatch(batch);
    if (changelogOffset !== undefined) assertOffset(changelogOffset);
    const { map } = this.#data;
    for (const { key, value } of batch) {
      if (value === null) map.delete(key);
      else map.set(key, value);
    }
    const current = this.#data.checkpoint;
    if (changelogOffset !== undefined && (current === undefined || changelogOffset > current)) {
      this.#data.checkpoint = changelogOffset;
    }
  }

  async checkpoint(): Promise<number | undefined> {
    this.#assertOpen();
    return this.#data.checkpoint;
  }

  async clear(): Promise<void> {
    this.#assertOpen();
    this.#data.map.clear();
    this.#data.checkpoint = undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
  }

  #assertOpen(): void {
    if (this.#closed) {
      const { appId, storeName, partition } = this.#spec;
      throw new EddyError('STATE_FAILED', `store ${appId}/${storeName} partition ${partition} is closed`);
    }
  }
}

/** One key. `value` is undefined once deleted; the slot may still sit in a sorted index. */
interface Slot {
  /** The key as a latin1 string: one char per byte, so string order is unsigned byte order. */
  readonly id: string;
  readonly key: Uint8Array;
  value: Uint8Array | undefined;
  /** Whether the slot is in the sorted index yet (else it waits in the pending list). */
  indexed: boolean;
}

/**
 * A byte-keyed map that iterates in key order.
 *
 * Writes are O(1): a hash map finds the slot, and a new key joins an unsorted `pending` list. The
 * sorted index is rebuilt only when someone scans after new keys arrived — sort the pending keys
 * (k log k) and merge them into the index (n + k) — so a commit of k new keys never costs
 * n log n, and a scan without new keys costs only the binary search for its start. Deleted keys
 * stay in the index as dead slots until the next rebuild drops them, because splicing an array
 * per delete would cost O(n). A rebuild makes a new array instead of editing the old one, so scans
 * already running keep a stable list to walk.
 *
 * Keys are ordered as latin1 strings, which is exactly `compareBytes` order (the contract suite
 * checks it against `compareBytes`): V8 compares strings natively, while a sort comparator that
 * calls `compareBytes` is several times slower on 10⁵ keys.
 */
class OrderedBytesMap {
  #slots = new Map<string, Slot>();
  #sorted: readonly Slot[] = [];
  #pending: Slot[] = [];
  /** Dead slots in `#sorted` (they are still in `#slots` so that a re-insert can revive them). */
  #deadSorted = 0;
  /** Dead slots in `#pending` (already gone from `#slots`). */
  #deadPending = 0;

  get(key: Uint8Array): Uint8Array | undefined {
    return this.#slots.get(idOf(key))?.value;
  }

  set(key: Uint8Array, value: Uint8Array): void {
    const id = idOf(key);
    // Copies: the caller's buffers may be pooled and reused after the write resolves. (Not with
    // slice(): on a Node Buffer, such as a record fetched from Kafka, that is a view.)
    const stored = new Uint8Array(value);
    const slot = this.#slots.get(id);
    if (slot !== undefined) {
      if (slot.value === undefined) this.#deadSorted--;
      slot.value = stored;
      return;
    }
    const fresh: Slot = { id, key: new Uint8Array(key), value: stored, indexed: false };
    this.#slots.set(id, fresh);
    this.#pending.push(fresh);
  }

  delete(key: Uint8Array): void {
    const id = idOf(key);
    const slot = this.#slots.get(id);
    if (slot === undefined || slot.value === undefined) return;
    slot.value = undefined;
    if (slot.indexed) {
      this.#deadSorted++;
      return;
    }
    this.#slots.delete(id);
    this.#deadPending++;
    // Churn of short-lived keys with no scan in between would otherwise grow `#pending` forever.
    if (this.#deadPending > 1024 && this.#deadPending * 2 > this.#pending.length) {
      this.#pending = this.#pending.filter((pending) => pending.value !== undefined);
      this.#deadPending = 0;
    }
  }

  clear(): void {
    // Kill every slot so that scans already in progress stop yielding the old entries.
    for (const slot of this.#slots.values()) slot.value = undefined;
    this.#slots = new Map();
    this.#sorted = [];
    this.#pending = [];
    this.#deadSorted = 0;
    this.#deadPending = 0;
  }

  /** Live entries in key order within `range`; sees updates and deletes made while it runs. */
  *scan(range: KeyRange): Generator<readonly [Uint8Array, Uint8Array]> {
    const sorted = this.#index();
    const endId = range.lt === undefined ? undefined : idOf(range.lt);
    for (let index = range.gte === undefined ? 0 : lowerBound(sorted, idOf(range.gte)); index < sorted.length; index++) {
      const slot = sorted[index];
      if (endId !== undefined && slot.id >= endId) return;
      const value = slot.value;
      if (value !== undefined) yield [slot.key, value];
    }
  }

  #index(): readonly Slot[] {
    const tooManyDead = this.#deadSorted > 64 && this.#deadSorted * 2 > this.#sorted.length;
    if (this.#pending.length === 0 && !tooManyDead) return this.#sorted;

    const fresh = this.#pending.filter((slot) => slot.value !== undefined).sort(bySlotId);
    for (const slot of fresh) slot.indexed = true;
    const old = this.#sorted;
    const merged: Slot[] = [];
    let i = 0;
    let j = 0;
    while (i < old.length || j < fresh.length) {
      const takeOld = j >= fresh.length || (i < old.length && old[i].id < fresh[j].id);
      const slot = takeOld ? old[i++] : fresh[j++];
      if (slot.value !== undefined) merged.push(slot);
      else this.#slots.delete(slot.id);
    }
    this.#sorted = merged;
    this.#pending = [];
    this.#deadSorted = 0;
    this.#deadPending = 0;
    return merged;
  }
}

/** A key as a string of the same order (one char per byte), for the map and the sorted index. */
const idOf = latin1Text;

function bySlotId(a: Slot, b: Slot): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The first index whose slot id is not below `id`. */
function lowerBound(sorted: readonly Slot[], id: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle].id < id) low = middle + 1;
    else high = middle;
  }
  return low;
}

function assertSpec(spec: StoreSpec): void {
  if (typeof spec.appId !== 'string' || spec.appId === '') {
    throw new TypeError(`store spec appId must be a non-empty string, got ${JSON.stringify(spec.appId)}`);
  }
  if (typeof spec.storeName !== 'string' || spec.storeName === '') {
    throw new TypeError(`store spec storeName must be a non-empty string, got ${JSON.stringify(spec.storeName)}`);
  }
  if (!Number.isInteger(spec.partition) || spec.partition < 0 || spec.partition > 0xffff_ffff) {
    throw new RangeError(`store spec partition must be an integer in [0, 2^32), got ${String(spec.partition)}`);
  }
}

function assertKey(key: unknown, what: string): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array, got ${typeof key}`);
}

function assertRange(range: KeyRange): void {
  if (range.gte !== undefined) assertKey(range.gte, 'range.gte');
  if (range.lt !== undefined) assertKey(range.lt, 'range.lt');
}

function assertBatch(batch: readonly StoreEntry[]): void {
  if (!Array.isArray(batch)) throw new TypeError(`a write batch must be an array, got ${typeof batch}`);
  // Labels are built only for an entry that fails: this runs for every entry of every commit.
  for (let index = 0; index < batch.length; index++) {
    const entry = batch[index];
    if (!(entry?.key instanceof Uint8Array)) assertKey(entry?.key, `batch[${index}].key`);
    if (entry.value !== null && !(entry.value instanceof Uint8Array)) {
      throw new TypeError(`batch[${index}].value must be a Uint8Array or null, got ${typeof entry.value}`);
    }
  }
}

function assertOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`changelog offset must be a non-negative safe integer, got ${String(offset)}`);
  }
}
