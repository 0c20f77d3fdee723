import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from './murmur2.js';

const utf8 = (text: string) => new TextEncoder().encode(text);

describe('murmur2', () => {
  // Reference values published with Kafka's Java client tests (UtilsTest#testMurmur2).
  it.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ])('hashes %s like the Java client', (input, expected) => {
    expect(murmur2(utf8(input))).toBe(expected);
  });

  it('hashes the bytes abc like the Java client', () => {
    expect(murmur2(new Uint8Array([97, 98, 99]))).toBe(479470107);
  });

  it('maps keys to a partition in range, stably', () => {
    for (let i = 0; i < 1000; i++) {
      const partition = partitionForKey(utf8(`key-${i}`), 6);
      expect(partition).toBeGreaterThanOrEqual(0);
      expect(partition).toBeLessThan(6);
      expect(partitionForKey(utf8(`key-${i}`), 6)).toBe(partition);
    }
  });
});
