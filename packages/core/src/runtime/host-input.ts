import type { SendOptions } from '../app-options.js';
import type { Clock } from '../clock.js';
import type { Node } from '../dsl/graph.js';
import { checkTopic } from '../dsl/stage-checks.js';
import { ConfigError, describeError, EddyError } from '../errors.js';
import { partitionForKey } from '../murmur2.js';
import { defaultKeySerde, json, type Serde } from '../serde.js';
import type { Headers, OutgoingRecord, TransportProducer } from '../transport/types.js';
import { HostSends } from './host-sends.js';
import type { TopicProvisioner } from './topic-provisioner.js';

/** How the host's records reach one topic. */
interface HostRoute {
  readonly topic: string;
  readonly partitions: number;
  readonly keySerde: Serde<unknown>;
  readonly valueSerde: Serde<unknown>;
  readonly sends: HostSends;
  /** Keys sent lately, serialized and hashed to their partition. */
  readonly keys: Map<unknown, { readonly bytes: Uint8Array; readonly partition: number }>;
}

const emptyHeaders: Headers = Object.freeze({});

/** What the input path needs of the app; the clock and producer may change until the app starts. */
export interface HostInputDeps {
  readonly clock: () => Clock;
  /** The app's producer, opened on the first send if the app has not started yet. */
  readonly producer: () => Promise<TransportProducer>;
  readonly nodes: () => readonly Node[];
  readonly topics: TopicProvisioner;
}

/**
 * The host's way in (`app.send`, `app.sendBatch`): records serialized with their topic's source
 * serdes and partitioned as a sink would, then written through the app's producer — a turn's
 * sends in one write (see HostSends).
 */
export class HostInput {
  /** Per topic the host writes, how (see `#route`). */
  readonly #routes = new Map<string, HostRoute>();
  /** The host's sends of a turn, together (see HostSends), for the producer they go through. */
  #sends: { readonly producer: TransportProducer; readonly sends: HostSends } | undefined;
  #roundRobin = 0;

  constructor(private readonly deps: HostInputDeps) {}

  /** One record; once a topic has been written to, with no await before the producer's own. */
  send(topic: string, value: unknown, options: SendOptions): Promise<void> {
    const route = this.#routes.get(topic);
    if (route) {
      try {
        return route.sends.sendOne(this.#outgoing(route, value, options, 0, 'send'));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.sendAll(topic, [{ ...options, value }], 'send');
  }

  async sendAll(topic: string, records: ReadonlyArray<SendOptions & { value: unknown }>, what: string): Promise<void> {
    const route = this.#routes.get(topic) ?? (await this.#route(topic, what));
    if (records.length === 0) return;
    // Every record is checked and serialized before any is written: a bad one fails the call whole.
    await route.sends.send(records.map((record, index) => this.#outgoing(route, (record as { value?: unknown } | null)?.value, record, index, what)));
  }

  /** How the host's records for `topic` are written: its source's serdes, its partitions, the producer. */
  async #route(topic: string, what: string): Promise<HostRoute> {
    checkTopic(topic, what);
    const source = this.deps.nodes().find((node) => node.kind === 'source' && node.topic === topic);
    const partitions = await this.deps.topics.partitionCount(topic);
    const producer = await this.deps.producer();
    if (this.#sends?.producer !== producer) this.#sends = { producer, sends: new HostSends(producer) };
    const route: HostRoute = {
      topic,
      partitions,
      keySerde: source?.kind === 'source' ? source.keySerde : defaultKeySerde,
      valueSerde: source?.kind === 'source' ? source.valueSerde : json(),
      sends: this.#sends.sends,
      keys: new Map(),
    };
    this.#routes.set(topic, route);
    return route;
  }

  #outgoing(route: HostRoute, value: unknown, options: SendOptions, index: number, what: string): OutgoingRecord {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      const got = options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options;
      throw new ConfigError(what === 'send' ? `send: options must be an object { key?, timestamp?, headers? }, got ${got}` : `${what}: record ${index} must be an object { value, key?, timestamp?, headers? }, got ${got}`);
    }
    const timestamp = options.timestamp ?? this.deps.clock().now();
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) throw new ConfigError(`${what}: timestamp must be a finite number, got ${String(timestamp)}`);
    const headers = checkedHeaders(options.headers, what);
    const bytes = value === null || value === undefined ? null : value instanceof Uint8Array ? value : serialized(route.valueSerde, value, `${what}: cannot serialize the value of record ${index} for ${route.topic}`);
    const key = options.key;
    if (key === undefined || key === null) return { topic: route.topic, partition: this.#roundRobin++ % route.partitions, key: null, value: bytes, timestamp, headers };
    if (key instanceof Uint8Array) return { topic: route.topic, partition: partitionForKey(key, route.partitions), key, value: bytes, timestamp, headers };
    // Keys repeat: serialize and hash each one once (as sinks do).
    let keyed = typeof key === 'object' ? undefined : route.keys.get(key);
    if (!keyed) {
      const keyBytes = serialized(route.keySerde, key, `${what}: cannot serialize the key of record ${index} for ${route.topic}`);
      keyed = { bytes: keyBytes, partition: partitionForKey(keyBytes, route.partitions) };
      if (typeof key !== 'object') {
        if (route.keys.size >= 10_000) route.keys.clear();
        route.keys.set(key, keyed);
      }
    }
    return { topic: route.topic, partition: keyed.partition, key: keyed.bytes, value: bytes, timestamp, headers };
  }
}

/** A serde's bytes, or an EddyError saying what could not be serialized. */
function serialized(serde: Serde<unknown>, value: unknown, what: string): Uint8Array {
  try {
    return serde.serialize(value);
  } catch (error) {
    throw new EddyError('SERIALIZATION_FAILED', `${what}: ${describeError(error)}`, { cause: error });
  }
}

/** Headers as the host gave them: a plain object of string values, or none. */
function checkedHeaders(headers: unknown, what: string): Headers {
  if (headers === undefined || headers === null) return emptyHeaders;
  if (typeof headers !== 'object' || Array.isArray(headers)) throw new ConfigError(`${what}: headers must be an object of string values, got ${Array.isArray(headers) ? 'an array' : typeof headers}`);
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') throw new ConfigError(`${what}: header ${JSON.stringify(name)} must be a string, got ${value === null ? 'null' : typeof value}`);
  }
  return headers as Headers;
}
