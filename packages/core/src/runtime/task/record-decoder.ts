import type { Clock } from '../../clock.js';
import type { Node } from '../../dsl/graph.js';
import { keyUnreadBelow, type Topology } from '../../dsl/topology.js';
import { describeError, EddyError } from '../../errors.js';
import { checkerOf, deserializerOf } from '../../serde.js';
import type { IncomingRecord } from '../../transport/types.js';
import type { Origin, RecordSignal, Signal } from '../signals.js';

export type SourceNode = Extract<Node, { kind: 'source' }>;

export interface SourceDecoders {
  readonly key: (bytes: Uint8Array) => unknown;
  readonly value: (bytes: Uint8Array) => unknown;
  /**
   * Set when no step of the task sees the key a record arrives with (see topology.ts
   * `keyUnreadBelow`) and the key serde can tell bad bytes without decoding them: the key is
   * then only checked (a record whose key does not deserialize is still dead-lettered), and is
   * decoded only if a dead letter needs it.
   */
  readonly checkKey: ((bytes: Uint8Array) => void) | undefined;
}

/**
 * Turns the records a task reads into record signals: key and value deserialized by the source's
 * serdes, the timestamp taken (the extractor's, the record's own, or the clock in processing time).
 * A record that does not decode, or has no usable timestamp, goes to `reject` (a dead letter).
 */
export class RecordDecoder {
  readonly #decoders = new Map<SourceNode, SourceDecoders>();
  /**
   * The record being processed, when its source only checked its key (see SourceDecoders): its
   * origin, the key's bytes and its deserializer, to decode the key if a dead letter needs it.
   */
  #undecodedKeyOrigin: Origin | undefined;
  #undecodedKeyBytes: Uint8Array | undefined;
  #undecodedKeyDeserializer: ((bytes: Uint8Array) => unknown) | undefined;

  constructor(
    private readonly topology: Topology,
    private readonly clock: Clock,
    private readonly reject: (incoming: IncomingRecord, error: EddyError, step: string) => void,
  ) {}

  /** A source's key and value deserializers (see serde.ts `deserializerOf`), made once per source. */
  decodersOf(source: SourceNode): SourceDecoders {
    let decoders = this.#decoders.get(source);
    if (!decoders) {
      const checkKey = keyUnreadBelow(source, this.topology.children) ? checkerOf(source.keySerde) : undefined;
      this.#decoders.set(source, (decoders = { key: deserializerOf(source.keySerde), value: deserializerOf(source.valueSerde), checkKey }));
    }
    return decoders;
  }

  /** The record as a signal, or undefined when it went to `reject`. */
  decode(source: SourceNode, decoders: SourceDecoders, incoming: IncomingRecord, origin: Origin, processingTime: boolean): RecordSignal | undefined {
    let key: unknown;
    let value: unknown;
    try {
      if (incoming.decoded) {
        ({ key, value } = incoming.decoded);
      } else {
        if (incoming.key === null) {
          key = undefined;
        } else if (decoders.checkKey) {
          decoders.checkKey(incoming.key);
          this.#undecodedKeyOrigin = origin;
          this.#undecodedKeyBytes = incoming.key;
          this.#undecodedKeyDeserializer = decoders.key;
        } else {
          key = decoders.key(incoming.key);
        }
        value = incoming.value === null ? null : decoders.value(incoming.value);
      }
    } catch (error) {
      this.reject(incoming, new EddyError('DESERIALIZATION_FAILED', `cannot deserialize a record of ${incoming.topic}: ${describeError(error)}`, { cause: error }), `source ${incoming.topic}`);
      return undefined;
    }
    let timestamp = incoming.timestamp;
    if (processingTime) {
      timestamp = this.clock.now();
    } else if (source.timestamp) {
      try {
        timestamp = source.timestamp(value);
      } catch (error) {
        this.reject(incoming, new EddyError('INVALID_TIMESTAMP', `the timestamp extractor threw: ${describeError(error)}`, { cause: error }), `source ${incoming.topic}`);
        return undefined;
      }
    }
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) {
      this.reject(incoming, new EddyError('INVALID_TIMESTAMP', `the record's timestamp is not a finite number: ${String(timestamp)}`), `source ${incoming.topic}`);
      return undefined;
    }
    return { type: 'record', key, value, timestamp, origin };
  }

  /**
   * A record's event time by its source's extractor, to order a task's inputs by (see InputOrder);
   * the record's own timestamp if its value does not decode or the extractor fails (it is then
   * dead-lettered when processed).
   */
  extractTimestamp(source: SourceNode, incoming: IncomingRecord): number {
    try {
      const value = incoming.decoded ? incoming.decoded.value : incoming.value === null ? null : this.decodersOf(source).value(incoming.value);
      const timestamp = source.timestamp!(value);
      return typeof timestamp === 'number' && Number.isFinite(timestamp) ? timestamp : incoming.timestamp;
    } catch {
      return incoming.timestamp;
    }
  }

  /** A signal's key; for a record whose source left its key undecoded (see SourceDecoders), that key decoded. */
  keyOf(signal: Exclude<Signal, { type: 'tick' }>): unknown {
    if (signal.key !== undefined || signal.origin === undefined || signal.origin !== this.#undecodedKeyOrigin) return signal.key;
    return this.#undecodedKeyDeserializer!(this.#undecodedKeyBytes!);
  }

  /** After a batch: not to hold on to the fetched bytes. */
  forgetUndecodedKey(): void {
    this.#undecodedKeyOrigin = this.#undecodedKeyBytes = this.#undecodedKeyDeserializer = undefined;
  }
}
