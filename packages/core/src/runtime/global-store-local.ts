import type { PartitionStore, StateBackend, StoreEntry } from '../state/backend.js';
import { keyId } from '../state/caching-store.js';

/**
 * A global table's local copy in the app's state backend, like Kafka Streams' global state
 * store: no changelog (the table's topic is its changelog), and a checkpoint of the next offset
 * to read per partition of the topic, written atomically with the last rows it covers. A restart
 * loads the rows and reads only the topic's tail after the checkpoint.
 *
 * One store partition holds it, `global/<storeName>` partition 0 ('/' never occurs in a step's
 * name, so no task store shares it):
 *
 * ```
 * 0x00 ‖ serialized key → value bytes
 * 0x01                  → value bytes of the record without a key
 * 0xff                  → checkpoint: {"topic":…,"next":[offset per partition]}
 * ```
 */

const KEYED = 0x00;
const KEYLESS = Uint8Array.of(0x01);
const CHECKPOINT_KEY = Uint8Array.of(0xff);
/**
 * Bytes of staged rows that make a write even while the table is still behind the log: large
 * enough that a topic with many updates per key is written down about once per key, not once per
 * record; small enough to bound one LevelDB batch.
 */
export const BULK_BYTES = 16 * 1024 * 1024;
/** Rows per store write. */
const WRITE_CHUNK_ROWS = 4096;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A row as the table holds it in memory. */
export interface GlobalRow {
  readonly key: unknown;
  readonly value: unknown;
}

/** What the local copy held: its rows and, per partition, the next offset to read. */
export interface LoadedTable {
  readonly rows: GlobalRow[];
  readonly next: number[];
}

/** Turns stored bytes back into a row (the table's serdes); throws when they do not read. */
export type RowDecoder = (key: Uint8Array | undefined, value: Uint8Array) => GlobalRow;

/** One global table's store partition, with the rows changed since the last write. */
export class GlobalStoreLocal {
  /** Changed rows by key identity, the latest change of each (key bytes as the serde wrote them; `value: null` deletes). */
  #staged = new Map<unknown, StagedRow>();
  #stagedBytes = 0;
  /** Whether positions moved since the last write (records that changed nothing, skipped offsets). */
  #moved = false;
  /** Writes go down one after another, so a later checkpoint never lands before an earlier one. */
  #writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly store: PartitionStore,
    private readonly topic: string,
  ) {}

  /** Opens the store partition of `storeName` for `topic` in `state`. */
  static async open(state: StateBackend, appId: string, storeName: string, topic: string): Promise<GlobalStoreLocal> {
    const store = await state.open({ appId, storeName: `global/${storeName}`, partition: 0, changelogTopic: topic });
    return new GlobalStoreLocal(store, topic);
  }

  /**
   * Reads every row and the checkpoint. Undefined when the store is empty (a first start); a
   * string saying why when what it holds cannot be used, and the table must be read again whole.
   */
  async load(decode: RowDecoder): Promise<LoadedTable | string | undefined> {
    const rows: GlobalRow[] = [];
    let checkpoint: Uint8Array | undefined;
    for await (const [key, value] of this.store.entries()) {
      if (key.length === 1 && key[0] === CHECKPOINT_KEY[0]) checkpoint = value;
      else if (key[0] === KEYED) rows.push(decode(key.subarray(1), value));
      else if (key.length === 1 && key[0] === KEYLESS[0]) rows.push(decode(undefined, value));
      else return `an unknown key ${Array.from(key.subarray(0, 8), (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
    }
    if (checkpoint === undefined) return rows.length === 0 ? undefined : 'rows without a checkpoint';
    const next = parseCheckpoint(checkpoint, this.topic);
    return typeof next === 'string' ? next : { rows, next };
  }

  /** Stages a row's change (`value: null` deletes it) for the next {@link write}. */
  stage(key: unknown, keyBytes: Uint8Array | undefined, value: Uint8Array | null): void {
    const id = keyId(key);
    const replaced = this.#staged.get(id);
    if (replaced) this.#stagedBytes -= sizeOf(replaced);
    const row = { keyBytes, value };
    this.#staged.set(id, row);
    this.#stagedBytes += sizeOf(row);
  }

  /** Positions moved without a row changing; the next {@link write} records them. */
  moved(): void {
    this.#moved = true;
  }

  /** Bytes of the rows staged for the next write. */
  get stagedBytes(): number {
    return this.#stagedBytes;
  }

  /** Writes the staged rows, then the checkpoint `next` (per partition) in the same batch as the last of them. */
  write(next: readonly number[]): Promise<void> {
    if (this.#staged.size === 0 && !this.#moved) return this.#writing;
    const rows = [...this.#staged.values()];
    const checkpoint: StoreEntry = { key: CHECKPOINT_KEY, value: encoder.encode(JSON.stringify({ topic: this.topic, next })) };
    this.#staged = new Map();
    this.#stagedBytes = 0;
    this.#moved = false;
    const written = this.#writing.then(async () => {
      // In chunks, so that a large write does not hold the event loop; only the last carries the
      // checkpoint. Rows ahead of the checkpoint are safe: a replay from it rewrites each of them.
      for (let start = 0; ; start += WRITE_CHUNK_ROWS) {
        const chunk: StoreEntry[] = rows.slice(start, start + WRITE_CHUNK_ROWS).map(({ keyBytes, value }) => ({ key: keyBytes === undefined ? KEYLESS : withTag(keyBytes), value }));
        const last = start + WRITE_CHUNK_ROWS >= rows.length;
        if (last) chunk.push(checkpoint);
        await this.store.write(chunk);
        if (last) return;
      }
    });
    this.#writing = written.catch(() => undefined);
    return written;
  }

  /** Deletes every row and the checkpoint. */
  async clear(): Promise<void> {
    this.#staged = new Map();
    this.#stagedBytes = 0;
    this.#moved = false;
    await this.#writing;
    await this.store.clear();
  }

  async close(): Promise<void> {
    await this.#writing;
    await this.store.close();
  }
}

interface StagedRow {
  readonly keyBytes: Uint8Array | undefined;
  readonly value: Uint8Array | null;
}

const sizeOf = (row: StagedRow) => (row.keyBytes?.length ?? 0) + (row.value?.length ?? 0);

function withTag(keyBytes: Uint8Array): Uint8Array {
  const stored = new Uint8Array(keyBytes.length + 1);
  stored[0] = KEYED;
  stored.set(keyBytes, 1);
  return stored;
}

/** The next offset per partition, or why the stored checkpoint cannot be used. */
function parseCheckpoint(bytes: Uint8Array, topic: string): number[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return 'an unreadable checkpoint';
  }
  const { topic: storedTopic, next } = (parsed ?? {}) as { topic?: unknown; next?: unknown };
  if (typeof storedTopic !== 'string' || !Array.isArray(next) || !next.every((offset) => Number.isSafeInteger(offset) && (offset as number) >= 0)) {
    return 'an unreadable checkpoint';
  }
  // The table's name now reads another topic: what is stored came from the old one.
  if (storedTopic !== topic) return `a checkpoint of topic ${storedTopic}`;
  return next as number[];
}
