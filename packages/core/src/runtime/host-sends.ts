import { RecordsRejectedError } from '../errors.js';
import type { OutgoingRecord, TransportProducer } from '../transport/types.js';

/** A send waiting for its turn's write: its records are `count` records from `from` in the turn's list. */
interface Waiting {
  readonly from: number;
  readonly count: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The host's sends (`app.send`, `app.sendBatch`) that arrive in one turn of the event loop go to
 * the producer together, in the order they came: one call, one write (on `levelTransport`, one
 * disk write), however many sends. Each send still learns its own outcome: records the log
 * refused reject only the sends they came with.
 */
export class HostSends {
  readonly #producer: TransportProducer;
  /** The turn's records, in order, and the sends they came with. */
  #records: OutgoingRecord[] = [];
  #waiting: Waiting[] = [];

  constructor(producer: TransportProducer) {
    this.#producer = producer;
  }

  /** One record: no array of its own (the common `app.send`). */
  sendOne(record: OutgoingRecord): Promise<void> {
    return this.#enqueue(1, () => this.#records.push(record));
  }

  send(records: readonly OutgoingRecord[]): Promise<void> {
    return this.#enqueue(records.length, () => {
      for (const record of records) this.#records.push(record);
    });
  }

  #enqueue(count: number, add: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const from = this.#records.length;
      add();
      if (this.#waiting.push({ from, count, resolve, reject }) === 1) queueMicrotask(() => this.#flush());
    });
  }

  #flush(): void {
    const waiting = this.#waiting;
    const records = this.#records;
    this.#waiting = [];
    this.#records = [];
    this.#producer.send(records).then(
      () => {
        for (const each of waiting) each.resolve();
      },
      (error: unknown) => {
        if (!(error instanceof RecordsRejectedError)) {
          for (const each of waiting) each.reject(error);
          return;
        }
        const refused = new Map(error.refused.map((rejected) => [rejected.record, rejected]));
        for (const each of waiting) {
          const own = records.slice(each.from, each.from + each.count).flatMap((record) => refused.get(record) ?? []);
          if (own.length === 0) each.resolve();
          else each.reject(new RecordsRejectedError(own, []));
        }
      },
    );
  }
}
