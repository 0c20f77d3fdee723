/**
 * Checks the block checksums of a LevelDB database's table files, which LevelDB itself does not
 * as classic-level opens it: every block of a table file carries a CRC-32C, but reads skip it
 * unless `verify_checksums` is set, and classic-level offers no way to set it. A flipped bit in a
 * block that Snappy still decompresses (a digit in a stored value, a key in the index, a bit of
 * the bloom filter) then reads back as other data, with no error anywhere. This finds such damage
 * before the data is used.
 *
 * Only the table files the current MANIFEST lists are read: a table a crash left half written is
 * not part of the database (LevelDB deletes it), and one a compaction is writing now is not listed
 * until it is complete. A listed file that is gone when read was compacted away meanwhile.
 *
 * The formats, as LevelDB's doc/table_format.md and doc/log_format.md describe them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * CRC-32C (Castagnoli), eight table lookups at a time. The tables are signed: entries above 2^31
 * in a Uint32Array would be doubles to V8, at half the speed.
 */
const CRC_TABLES: Int32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Int32Array(256));
  for (let n = 0; n < 256; n++) {
    let crc = n;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    tables[0]![n] = crc;
  }
  for (let n = 0; n < 256; n++) {
    for (let t = 1; t < 8; t++) tables[t]![n] = tables[0]![tables[t - 1]![n]! & 0xff]! ^ (tables[t - 1]![n]! >>> 8);
  }
  return tables;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7] = CRC_TABLES as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array];

export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = -1;
  let at = start;
  for (; at + 8 <= end; at += 8) {
    const low = crc ^ (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24));
    crc =
      T7[low & 0xff]! ^
      T6[(low >>> 8) & 0xff]! ^
      T5[(low >>> 16) & 0xff]! ^
      T4[low >>> 24]! ^
      T3[bytes[at + 4]!]! ^
      T2[bytes[at + 5]!]! ^
      T1[bytes[at + 6]!]! ^
      T0[bytes[at + 7]!]!;
  }
  for (; at < end; at++) crc = T0[(crc ^ bytes[at]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

/** LevelDB stores a CRC rotated and offset (a CRC of data holding CRCs is otherwise weak); this undoes it. */
function unmask(masked: number): number {
  const rotated = (masked - 0xa282ead8) >>> 0;
  return ((rotated >>> 17) | (rotated << 15)) >>> 0;
}

/** What is wrong with a file: thrown while reading it, caught by {@link tableDamage}. */
class Damage extends Error {}

/** A reader of LevelDB's little-endian fixed ints and varints, failing as damage past its end. */
class Cursor {
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
    readonly end: number,
  ) {}

  get done(): boolean {
    return this.at >= this.end;
  }

  byte(): number {
    if (this.at >= this.end) throw new Damage('a field runs past its end');
    return this.bytes[this.at++]!;
  }

  /** A varint of up to 64 bits, as a number (file numbers, offsets and sizes stay far below 2^53). */
  varint(): number {
    let value = 0;
    for (let scale = 1; scale < 2 ** 63; scale *= 128) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
    }
    throw new Damage('a varint is too long');
  }

  skip(length: number): void {
    if (length > this.end - this.at) throw new Damage('a field runs past its end');
    this.at += length;
  }
}

const fixed32 = (bytes: Uint8Array, at: number): number => (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;

/**
 * The table files of the current version, from the MANIFEST that CURRENT names: file number →
 * size. Read while LevelDB may append to it, so a record cut short at the end ends the read; LevelDB
 * checked the whole MANIFEST when it opened the database.
 */
export async function liveTables(location: string): Promise<Map<number, number>> {
  const current = (await readFile(join(location, 'CURRENT'), 'utf8')).trim();
  if (!/^MANIFEST-\d+$/.test(current)) throw new Damage(`CURRENT names ${JSON.stringify(current.slice(0, 40))}`);
  const tables = new Map<number, number>();
  for (const edit of logRecords(await readFile(join(location, current)))) {
    const cursor = new Cursor(edit, 0, edit.length);
    while (!cursor.done) {
      const tag = cursor.varint();
      if (tag === 1) cursor.skip(cursor.varint()); // comparator name
      else if (tag === 2 || tag === 3 || tag === 4 || tag === 9) cursor.varint(); // log number, next file, last sequence, previous log
      else if (tag === 5) {
        cursor.varint(); // compaction pointer: level, key
        cursor.skip(cursor.varint());
      } else if (tag === 6) {
        cursor.varint(); // deleted file: level, number
        tables.delete(cursor.varint());
      } else if (tag === 7) {
        cursor.varint(); // level
        const number = cursor.varint();
        tables.set(number, cursor.varint());
        cursor.skip(cursor.varint()); // smallest key
        cursor.skip(cursor.varint()); // largest key
      } else throw new Damage(`${current} holds an unknown version edit field (${tag})`);
    }
  }
  return tables;
}

/** The records of a LevelDB log file (32 KiB blocks of checksummed fragments), up to the first that is cut short or does not check. */
function* logRecords(bytes: Uint8Array): Generator<Uint8Array> {
  const BLOCK = 32_768;
  const HEADER = 7;
  let pending: Uint8Array[] = [];
  let at = 0;
  while (at + HEADER <= bytes.length) {
    const left = BLOCK - (at % BLOCK);
    if (left < HEADER) {
      at += left; // the block's zero trailer
      continue;
    }
    const length = bytes[at + 4]! | (bytes[at + 5]! << 8);
    const type = bytes[at + 6]!;
    const start = at + HEADER;
    if (type === 0 || start + length > bytes.length || start + length > at + left) return;
    if (unmask(fixed32(bytes, at)) !== crc32c(bytes, at + 6, start + length)) return;
    const fragment = bytes.subarray(start, start + length);
    at = start + length;
    if (type === 1) yield fragment; // whole
    else if (type === 2) pending = [fragment]; // first
    else if (type === 3) pending.push(fragment); // middle
    else if (type === 4) {
      pending.push(fragment); // last
      yield Buffer.concat(pending);
      pending = [];
    } else return;
  }
}

const FOOTER = 48;
const MAGIC = [0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb];
const NO_COMPRESSION = 0;
const SNAPPY = 1;

/**
 * Checks every block of a table file: the metaindex and index blocks, the blocks they point to
 * (the data and the bloom filter), each against its CRC-32C.
 */
export function checkTable(bytes: Uint8Array): void {
  if (bytes.length < FOOTER) throw new Damage(`it is ${bytes.length} bytes, shorter than a table's footer`);
  const footer = bytes.length - FOOTER;
  if (MAGIC.some((byte, index) => bytes[footer + 40 + index] !== byte)) throw new Damage('its footer has no table magic number');
  const handles = new Cursor(bytes, footer, footer + 40);
  const metaindex = { offset: handles.varint(), size: handles.varint() };
  const index = { offset: handles.varint(), size: handles.varint() };
  for (const handle of [...blockHandles(bytes, metaindex, footer), ...blockHandles(bytes, index, footer)]) checkBlock(bytes, handle, footer);
}

interface BlockHandle {
  readonly offset: number;
  readonly size: number;
}

/** Checks a block (its contents and compression type) against its checksum; returns the type. */
function checkBlock(bytes: Uint8Array, { offset, size }: BlockHandle, limit: number): number {
  if (offset + size + 5 > limit) throw new Damage(`a block (offset ${offset}, ${size} bytes) runs past the table's end`);
  if (unmask(fixed32(bytes, offset + size + 1)) !== crc32c(bytes, offset, offset + size + 1)) throw new Damage(`the block at offset ${offset} (${size} bytes) does not match its checksum`);
  const type = bytes[offset + size]!;
  if (type !== NO_COMPRESSION && type !== SNAPPY) throw new Damage(`the block at offset ${offset} has an unknown compression (${type})`);
  return type;
}

/** The block handles an index or metaindex block holds, as its entries' values. */
function blockHandles(bytes: Uint8Array, handle: BlockHandle, limit: number): BlockHandle[] {
  const type = checkBlock(bytes, handle, limit);
  const stored = new Uint8Array(bytes.buffer, bytes.byteOffset + handle.offset, handle.size);
  const contents = type === SNAPPY ? snappyDecompress(stored) : stored;
  if (contents.length < 4) throw new Damage('an index block is too short');
  const restarts = fixed32(contents, contents.length - 4);
  const entriesEnd = contents.length - 4 - 4 * restarts;
  if (entriesEnd < 0) throw new Damage('an index block has more restart points than bytes');
  const cursor = new Cursor(contents, 0, entriesEnd);
  const handles: BlockHandle[] = [];
  while (!cursor.done) {
    cursor.varint(); // key bytes shared with the previous entry
    const unshared = cursor.varint();
    const valueLength = cursor.varint();
    cursor.skip(unshared);
    const value = new Cursor(contents, cursor.at, cursor.at + valueLength);
    cursor.skip(valueLength);
    handles.push({ offset: value.varint(), size: value.varint() });
  }
  return handles;
}

/** Snappy's raw format: the uncompressed length, then literals and back-references. */
export function snappyDecompress(input: Uint8Array): Uint8Array {
  const cursor = new Cursor(input, 0, input.length);
  const output = new Uint8Array(cursor.varint());
  let written = 0;
  while (!cursor.done) {
    const tag = cursor.byte();
    let length: number;
    if ((tag & 3) === 0) {
      length = (tag >>> 2) + 1;
      if (length > 60) {
        let extra = 0;
        for (let index = 0; index < length - 60; index++) extra += cursor.byte() * 2 ** (8 * index);
        length = extra + 1;
      }
      if (length > output.length - written) throw new Damage('a compressed block decompresses past its stated length');
      cursor.skip(length);
      output.set(input.subarray(cursor.at - length, cursor.at), written);
      written += length;
      continue;
    }
    let distance: number;
    if ((tag & 3) === 1) {
      length = ((tag >>> 2) & 7) + 4;
      distance = ((tag >>> 5) << 8) | cursor.byte();
    } else {
      length = (tag >>> 2) + 1;
      distance = cursor.byte() | (cursor.byte() << 8);
      if ((tag & 3) === 3) distance = (distance | (cursor.byte() << 16) | (cursor.byte() << 24)) >>> 0;
    }
    if (distance === 0 || distance > written || length > output.length - written) throw new Damage('a compressed block refers outside itself');
    // Byte by byte: a copy may overlap what it writes (a run).
    for (let index = 0; index < length; index++, written++) output[written] = output[written - distance]!;
  }
  if (written !== output.length) throw new Damage('a compressed block decompresses short of its stated length');
  return output;
}

/**
 * Why the database at `location` is damaged, or undefined: the first live table file that is
 * missing, of another size than the MANIFEST says, or has a block that fails its checksum.
 */
export async function tableDamage(location: string): Promise<string | undefined> {
  let tables: Map<number, number>;
  try {
    tables = await liveTables(location);
  } catch (error) {
    if (error instanceof Damage) return error.message;
    throw error;
  }
  for (const [number, size] of tables) {
    const name = String(number).padStart(6, '0');
    let bytes: Buffer | undefined;
    let file = '';
    for (const extension of ['ldb', 'sst']) {
      file = `${name}.${extension}`;
      bytes = await readFile(join(location, file)).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      if (bytes) break;
    }
    // Gone: compacted away since the MANIFEST was read, or lost; LevelDB reports the latter.
    if (!bytes) continue;
    if (bytes.length !== size) return `table file ${file} is ${bytes.length} bytes where the MANIFEST says ${size}`;
    try {
      checkTable(bytes);
    } catch (error) {
      if (error instanceof Damage) return `table file ${file}: ${error.message}`;
      throw error;
    }
  }
  return undefined;
}
