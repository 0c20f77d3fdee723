/** A binary min-heap of (priority, item) pairs; used for window close deadlines. */
export class MinHeap<T> {
  readonly #priorities: number[] = [];
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  peekPriority(): number | undefined {
    return this.#priorities[0];
  }

  push(priority: number, item: T): void {
    const priorities = this.#priorities;
    const items = this.#items;
    let index = items.length;
    priorities.push(priority);
    items.push(item);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (priorities[parent]! <= priority) break;
      priorities[index] = priorities[parent]!;
      items[index] = items[parent]!;
      index = parent;
    }
    priorities[index] = priority;
    items[index] = item;
  }

  pop(): T | undefined {
    const priorities = this.#priorities;
    const items = this.#items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const lastPriority = priorities.pop()!;
    const lastItem = items.pop()!;
    const length = items.length;
    if (length > 0) {
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        if (left >= length) break;
        const right = left + 1;
        const child = right < length && priorities[right]! < priorities[left]! ? right : left;
        if (priorities[child]! >= lastPriority) break;
        priorities[index] = priorities[child]!;
        items[index] = items[child]!;
        index = child;
      }
      priorities[index] = lastPriority;
      items[index] = lastItem;
    }
    return top;
  }

  clear(): void {
    this.#priorities.length = 0;
    this.#items.length = 0;
  }
}
