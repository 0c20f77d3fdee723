import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../testing/random.js';
import { MinHeap } from './min-heap.js';

describe('MinHeap', () => {
  it('pops by priority, equal priorities in push order, against a sort', () => {
    for (const seed of [1, 2, 3]) {
      const next = mulberry32(seed);
      const heap = new MinHeap<number>();
      const pushed: Array<[number, number]> = [];
      for (let i = 0; i < 2000; i++) {
        // Few distinct priorities, so ties are the rule.
        const priority = Math.floor(next() * 20);
        heap.push(priority, i);
        pushed.push([priority, i]);
        if (next() < 0.3) {
          pushed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
          expect(heap.pop()).toBe(pushed.shift()![1]);
        }
      }
      pushed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const popped: number[] = [];
      while (heap.size > 0) popped.push(heap.pop()!);
      expect(popped).toEqual(pushed.map(([, item]) => item));
    }
  });

  it('peeks without removing, and is empty-safe', () => {
    const heap = new MinHeap<string>();
    expect(heap.pop()).toBeUndefined();
    expect(heap.peek()).toBeUndefined();
    heap.push(5, 'b');
    heap.push(1, 'a');
    expect(heap.peek()).toBe('a');
    expect(heap.peekPriority()).toBe(1);
    expect(heap.size).toBe(2);
  });
});
