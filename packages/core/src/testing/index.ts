import type { App } from '../app.js';
import { toMs, type Duration } from '../duration.js';
import type { Headers } from '../transport/types.js';
import { defaultKeySerde, json, type Serde } from '../serde.js';
import { MemoryTransport } from '../transport/memory.js';
import { testHooks } from '../runtime/test-hooks.js';
import { VirtualClock } from './virtual-clock.js';

export { VirtualClock } from './virtual-clock.js';
export { mulberry32 } from './random.js';

/** Options of {@link TestDriver.start}. */
export interface TestDriverOptions {
  /** The virtual clock's start, epoch ms. Default 0. */
  startTime?: number;
  /** Partitions of topics the driver's broker creates. Default 1 (one task per step, like one ordered log). */
  partitions?: number;
  /**
   * The embedded broker to run on, instead of a private one: for tests of failure paths, a
   * subclass of `MemoryTransport` that refuses records or answers otherwise. `partitions` then
   * does not apply (give the broker its `defaultPartitions`).
   */
  transport?: MemoryTransport;
}

/** A record read back with {@link TestDriver.read}. */
export interface DriverRecord<V = unknown> {
  key: string | undefined;
  value: V;
  timestamp: number;
  partition: number;
  headers: Headers;
}

/**
 * Runs an app in virtual time on a private embedded broker: no real timers, no sleeps. Every call
 * returns once the app has processed everything it can, including async handlers.
 *
 * @example
 * const driver = await TestDriver.start(app, { startTime: 0 });
 * await driver.send('readings', { sensor: 's1', value: 1 }, { key: 's1', timestamp: 500 });
 * await driver.advanceTime('10s');
 * expect(driver.read('counts')).toEqual([...]);
 * await driver.stop();
 */
export class TestDriver {
  readonly #app: App;
  readonly #clock: VirtualClock;
  readonly #transport: MemoryTransport;

  private constructor(app: App, clock: VirtualClock, transport: MemoryTransport) {
    this.#app = app;
    this.#clock = clock;
    this.#transport = transport;
  }

  /** Starts `app` on the driver's clock and broker. The app must not have been started. */
  static async start(app: App, options: TestDriverOptions = {}): Promise<TestDriver> {
    const clock = new VirtualClock(options.startTime ?? 0);
    const transport = options.transport ?? new MemoryTransport({ defaultPartitions: options.partitions ?? 1, clock });
    app[testHooks]().configure({ clock, transport });
    await app.start();
    const driver = new TestDriver(app, clock, transport);
    await driver.#settle();
    return driver;
  }

  /** The embedded broker behind the driver (for tests that inspect topics directly). */
  get transport(): MemoryTransport {
    return this.#transport;
  }

  /**
   * Produces a record (timestamp defaults to `now()`; a Uint8Array value travels as raw bytes)
   * and processes everything that follows from it.
   */
  async send(topic: string, value: unknown, options: { key?: unknown; timestamp?: number; headers?: Record<string, string> } = {}): Promise<void> {
    this.#throwIfFailed();
    await this.#app[testHooks]().send(topic, value, { ...options, timestamp: options.timestamp ?? this.#clock.now() });
    await this.#settle();
  }

  /** Moves the virtual clock forward, running every timer and handler due on the way. */
  async advanceTime(duration: Duration): Promise<void> {
    this.#throwIfFailed();
    const target = this.#clock.now() + toMs(duration, 'advanceTime', { allowZero: true });
    for (;;) {
      const due = this.#clock.nextDue(target);
      if (due === undefined) break;
      this.#clock.runUntil(due);
      await this.#settle();
    }
    this.#clock.runUntil(target);
    await this.#settle();
  }

  /** The virtual clock's time. */
  now(): number {
    return this.#clock.now();
  }

  /** Every record of a topic so far, decoded with the serdes the app writes it with. */
  read<V = unknown>(topic: string): DriverRecord<V>[] {
    const { key: keySerde, value: valueSerde } = this.#serdesFor(topic);
    return this.#transport.records(topic).map((record) => {
      const read = {
        key: record.key === null ? undefined : (decodeOr(keySerde, record.key) as string),
        value: (record.decoded ? record.decoded.value : record.value === null ? null : decodeOr(valueSerde, record.value)) as V,
        timestamp: record.timestamp,
      } as DriverRecord<V>;
      // Partition and headers are there to look at, but not enumerable: `toEqual` against
      // `{ key, value, timestamp }` compares what DESIGN.md promises.
      Object.defineProperties(read, { partition: { value: record.partition }, headers: { value: record.headers } });
      return read;
    });
  }

  /** Stops the app (draining and committing). */
  async stop(): Promise<void> {
    await this.#app.stop();
  }

  #serdesFor(topic: string): { key: Serde<unknown>; value: Serde<unknown> } {
    const { sinks, sources } = this.#app[testHooks]().topologyNodes();
    const sink = sinks.find((node) => node.topic === topic);
    if (sink) return { key: sink.keySerde, value: sink.valueSerde };
    const source = sources.find((node) => node.topic === topic);
    if (source) return { key: source.keySerde, value: source.valueSerde };
    return { key: defaultKeySerde, value: json() };
  }

  #throwIfFailed(): void {
    const failure = this.#app.failure;
    if (failure) throw failure;
  }

  #settle(): Promise<void> {
    return settleApp(this.#app, () => this.#transport.idle());
  }
}

/** Decodes with the serde, or hands back the raw bytes (dead letters hold undecodable input). */
function decodeOr(serde: Serde<unknown>, bytes: Uint8Array): unknown {
  try {
    return serde.deserialize(bytes);
  } catch {
    return bytes;
  }
}

/**
 * @internal Runs an app until no record, timer or handler work is left, once `idle` (its embedded
 * broker's) resolves: what the TestDriver does after each step, for the benchmark harness.
 */
export function settleApp(app: App, idle: () => Promise<void>): Promise<void> {
  return app[testHooks]().settle(idle);
}
