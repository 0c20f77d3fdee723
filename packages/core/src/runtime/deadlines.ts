import { MinHeap } from './min-heap.js';

/**
 * The deadlines of a stateful operator's keys: when each key next has work (a window closing,
 * buffered records leaving). A key's deadline moves and keys leave, so the heap keeps stale
 * entries and skips them when they come up: an entry is live while its priority is still the
 * key's `due` and the operator still holds the key.
 */
export class KeyDeadlines<State extends { due: number | undefined }> {
  readonly #heap = new MinHeap<State>();

  constructor(private readonly holds: (state: State) => boolean) {}

  push(due: number, state: State): void {
    this.#heap.push(due, state);
  }

  /** Whether something may be due by `streamTime` (cheap, per record; a stale entry may say yes). */
  hasDue(streamTime: number): boolean {
    const priority = this.#heap.peekPriority();
    return priority !== undefined && priority <= streamTime;
  }

  /** The earliest live deadline; stale entries on top are dropped, a live top stays. */
  next(): number | undefined {
    for (;;) {
      const priority = this.#heap.peekPriority();
      if (priority === undefined) return undefined;
      const state = this.#heap.peek()!;
      if (state.due === priority && this.holds(state)) return priority;
      this.#heap.pop();
    }
  }

  /** Takes the next key whose live deadline is at or before `streamTime`, if any. */
  popDue(streamTime: number): State | undefined {
    for (;;) {
      const priority = this.#heap.peekPriority();
      if (priority === undefined || priority > streamTime) return undefined;
      const state = this.#heap.pop()!;
      if (state.due === priority && this.holds(state)) return state;
    }
  }
}
