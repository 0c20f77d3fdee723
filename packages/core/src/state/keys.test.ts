import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { compareBytes, decodeWindowKey, encodeWindowKey, keyPrefix, prefixSuccessor } from './keys.js';
import { mulberry32 } from '../testing/random.js';

const random = mulberry32;

function randomBytes(next: () => number, maxLength: number): Uint8Array {
  const length = Math.floor(next() * (maxLength + 1));
  // A narrow alphabet that includes 0x00 and 0xff makes shared prefixes and edge bytes common.
  const alphabet = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
  return Uint8Array.from({ length }, () =>
    next() < 0.5 ? alphabet[Math.floor(next() * alphabet.length)] : Math.floor(next() * 256),
  );
}

const specialStarts = [
  0, -0, 1, -1, 0.5, -0.5, Number.MIN_VALUE, -Number.MIN_VALUE, Number.MAX_VALUE, -Number.MAX_VALUE,
  Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 32), 1_700_000_000_000, -86_400_000,
];

function randomStart(next: () => number): number {
  const roll = next();
  if (roll < 0.2) return specialStarts[Math.floor(next() * specialStarts.length)];
  if (roll < 0.6) return Math.round((next() - 0.5) * 2 * 4_000_000_000_000);
  if (roll < 0.8) return Math.round((next() - 0.5) * 200) * 1000;
  return (next() - 0.5) * 10 ** Math.floor(next() * 300) * (next() < 0.5 ? 1 : -1);
}

/** The order the encoding promises: key length, then key bytes, then numeric start. */
function referenceOrder(
  a: { keyBytes: Uint8Array; start: number },
  b: { keyBytes: Uint8Array; start: number },
): number {
  if (a.keyBytes.length !== b.keyBytes.length) return a.keyBytes.length - b.keyBytes.length;
  for (let i = 0; i < a.keyBytes.length; i++) {
    if (a.keyBytes[i] !== b.keyBytes[i]) return a.keyBytes[i] - b.keyBytes[i];
  }
  return a.start < b.start ? -1 : a.start > b.start ? 1 : 0;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

describe('compareBytes', () => {
  it('orders by unsigned bytes, a prefix first', () => {
    expect(compareBytes(Uint8Array.of(), Uint8Array.of())).toBe(0);
    expect(compareBytes(Uint8Array.of(), Uint8Array.of(0))).toBeLessThan(0);
    expect(compareBytes(Uint8Array.of(1), Uint8Array.of(1, 0))).toBeLessThan(0);
    expect(compareBytes(Uint8Array.of(0x7f), Uint8Array.of(0x80))).toBeLessThan(0);
    expect(compareBytes(Uint8Array.of(0xff), Uint8Array.of(0x00, 0xff))).toBeGreaterThan(0);
    expect(compareBytes(Uint8Array.of(2, 3), Uint8Array.of(2, 3))).toBe(0);
  });

  it('agrees with a byte-by-byte reference on random input', () => {
    const next = random(1);
    for (let i = 0; i < 2000; i++) {
      // Shared prefixes of up to 60 bytes exercise both the short and the long-key path.
      const prefix = new Uint8Array(Math.floor(next() * 61)).fill(0x42);
      const a = Uint8Array.from([...prefix, ...randomBytes(next, 6)]);
      const b = next() < 0.3 ? Uint8Array.from([...a, ...randomBytes(next, 2)]) : Uint8Array.from([...prefix, ...randomBytes(next, 6)]);
      const sign = Math.sign(compareBytes(a, b));
      const length = Math.min(a.length, b.length);
      let expected = Math.sign(a.length - b.length);
      for (let j = 0; j < length; j++) {
        if (a[j] !== b[j]) {
          expected = Math.sign(a[j] - b[j]);
          break;
        }
      }
      expect(sign, `${hex(a)} vs ${hex(b)}`).toBe(expected);
    }
  });

  it('respects the view of a subarray', () => {
    const backing = Uint8Array.of(9, 1, 2, 9);
    expect(compareBytes(backing.subarray(1, 3), Uint8Array.of(1, 2))).toBe(0);
  });
});

describe('encodeWindowKey / decodeWindowKey', () => {
  it('round-trips random keys and starts', () => {
    const next = random(2);
    for (let i = 0; i < 2000; i++) {
      const keyBytes = randomBytes(next, 12);
      const start = randomStart(next);
      const decoded = decodeWindowKey(encodeWindowKey(keyBytes, start));
      expect(Array.from(decoded.keyBytes)).toEqual(Array.from(keyBytes));
      expect(decoded.start).toBe(start === 0 ? 0 : start);
    }
  });

  it('sorts like the reference order: windows of a key together, by start', () => {
    const next = random(3);
    const keys = Array.from({ length: 40 }, () => randomBytes(next, 4));
    const windows = Array.from({ length: 3000 }, () => ({
      keyBytes: keys[Math.floor(next() * keys.length)],
      start: randomStart(next),
    }));
    const byEncoding = windows
      .map((window) => ({ window, bytes: encodeWindowKey(window.keyBytes, window.start) }))
      .sort((a, b) => compareBytes(a.bytes, b.bytes))
      .map(({ window }) => `${hex(window.keyBytes)}@${window.start}`);
    const byReference = [...windows].sort(referenceOrder).map((w) => `${hex(w.keyBytes)}@${w.start}`);
    expect(byEncoding).toEqual(byReference);
  });

  it('orders negative, fractional and extreme starts numerically', () => {
    const key = Uint8Array.of(7);
    const starts = [...specialStarts].sort((a, b) => a - b);
    const encoded = starts.map((start) => encodeWindowKey(key, start));
    for (let i = 1; i < encoded.length; i++) {
      const expected = starts[i - 1] === starts[i] ? 0 : -1;
      expect(Math.sign(compareBytes(encoded[i - 1], encoded[i])), `${starts[i - 1]} vs ${starts[i]}`).toBe(expected);
    }
  });

  it('gives -0 and 0 the same key', () => {
    expect(hex(encodeWindowKey(Uint8Array.of(1), -0))).toBe(hex(encodeWindowKey(Uint8Array.of(1), 0)));
    expect(Object.is(decodeWindowKey(encodeWindowKey(Uint8Array.of(1), -0)).start, 0)).toBe(true);
  });

  it('accepts an empty record key', () => {
    const decoded = decodeWindowKey(encodeWindowKey(Uint8Array.of(), -5));
    expect(decoded.keyBytes.length).toBe(0);
    expect(decoded.start).toBe(-5);
  });

  it('decodes keys that are views into a larger buffer', () => {
    const encoded = encodeWindowKey(Uint8Array.of(4, 5), 1234);
    const backing = new Uint8Array(encoded.length + 6);
    backing.set(encoded, 3);
    const decoded = decodeWindowKey(backing.subarray(3, 3 + encoded.length));
    expect(Array.from(decoded.keyBytes)).toEqual([4, 5]);
    expect(decoded.start).toBe(1234);
  });

  it('rejects starts that are not finite', () => {
    for (const start of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => encodeWindowKey(Uint8Array.of(1), start)).toThrow(RangeError);
    }
  });

  it('rejects bytes that are not a window key', () => {
    expect(() => decodeWindowKey(Uint8Array.of(0, 0, 0))).toThrow(RangeError);
    const encoded = encodeWindowKey(Uint8Array.of(1, 2), 0);
    expect(() => decodeWindowKey(encoded.subarray(0, encoded.length - 1))).toThrow(/length prefix/);
    expect(() => decodeWindowKey(Uint8Array.from([...encoded, 0]))).toThrow(/length prefix/);
  });
});

describe('keyPrefix', () => {
  it('covers exactly the windows of one key', () => {
    const next = random(4);
    const keys = Array.from({ length: 60 }, () => randomBytes(next, 3));
    for (let i = 0; i < 1500; i++) {
      const own = keys[Math.floor(next() * keys.length)];
      const other = keys[Math.floor(next() * keys.length)];
      const range = keyPrefix(own);
      const encoded = encodeWindowKey(other, randomStart(next));
      const inside =
        compareBytes(encoded, range.gte) >= 0 && (range.lt === undefined || compareBytes(encoded, range.lt) < 0);
      expect(inside, `${hex(own)} range vs window of ${hex(other)}`).toBe(hex(own) === hex(other));
    }
  });

  it('handles keys of 0xff bytes', () => {
    const key = Uint8Array.of(0xff, 0xff);
    const range = keyPrefix(key);
    expect(range.lt).toBeDefined();
    expect(compareBytes(encodeWindowKey(key, Number.MAX_VALUE), range.lt!)).toBeLessThan(0);
    expect(compareBytes(encodeWindowKey(Uint8Array.of(0, 0, 0), -Number.MAX_VALUE), range.lt!)).toBeGreaterThanOrEqual(0);
  });
});

describe('prefixSuccessor', () => {
  it('increments the last byte that can be incremented', () => {
    expect(Array.from(prefixSuccessor(Uint8Array.of(1, 2))!)).toEqual([1, 3]);
    expect(Array.from(prefixSuccessor(Uint8Array.of(1, 0xff, 0xff))!)).toEqual([2]);
    expect(prefixSuccessor(Uint8Array.of(0xff, 0xff))).toBeUndefined();
    expect(prefixSuccessor(Uint8Array.of())).toBeUndefined();
  });

  it('does not modify its input', () => {
    const prefix = Uint8Array.of(1, 2);
    prefixSuccessor(prefix);
    expect(Array.from(prefix)).toEqual([1, 2]);
  });
});
