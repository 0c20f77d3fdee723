/**
 * A binary min-heap of (priority, item) pairs; used for window close deadlines. Equal priorities
 * leave in the order they were pushed, so that windows closing together come out in a stable order.
 */
export class MinHeap<T> {
  readonly #priorities: number[] = [];
  readonly #items: T[] = [];
  /** Push order, the tie-breaker of equal priorities. */
  readonly #orders: number[] = [];
  #pushed = 0;

  /** Whether the entry at `a` comes before the one at `b`. */
  #before(priorityA: number, orderA: number, priorityB: number, orderB: number): boolean {
    return priorityA < priorityB || (priorityA === priorityB && orderA < orderB);
  }

  get size(): number {
    return this.#items.length;
  }

  peekPriority(): number | undefined {
    return this.#priorities[0];
  }

  /** The item with the lowest priority, left in place. */
  peek(): T | undefined {
    return this.#items[0];
  }

  push(priority: number, item: T): void {
    const priorities = this.#priorities;
    const items = this.#items;
    const orders = this.#orders;
    const order = this.#pushed++;
    let index = items.length;
    priorities.push(priority);
    items.push(item);
    orders.push(order);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.#before(priority, order, priorities[parent]!, orders[parent]!)) break;
      priorities[index] = priorities[parent]!;
      items[index] = items[parent]!;
      orders[index] = orders[parent]!;
      index = parent;
    }
    priorities[index] = priority;
    items[index] = item;
    orders[index] = order;
  }

  pop(): T | undefined {
    const priorities = this.#priorities;
    const items = this.#items;
    if (items.length === 0) return undefined;
    const orders = this.#orders;
    const top = items[0];
    const lastPriority = priorities.pop()!;
    const lastItem = items.pop()!;
    const lastOrder = orders.pop()!;
    const length = items.length;
    if (length > 0) {
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        if (left >= length) break;
        const right = left + 1;
        const child = right < length && this.#before(priorities[right]!, orders[right]!, priorities[left]!, orders[left]!) ? right : left;
        if (!this.#before(priorities[child]!, orders[child]!, lastPriority, lastOrder)) break;
        priorities[index] = priorities[child]!;
        items[index] = items[child]!;
        orders[index] = orders[child]!;
        index = child;
      }
      priorities[index] = lastPriority;
      items[index] = lastItem;
      orders[index] = lastOrder;
    }
    return top;
  }
}
