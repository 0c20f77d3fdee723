import { RecordsRejectedError } from '../errors.js';
import type { OutgoingRecord, TransportProducer } from '../transport/types.js';

interface Waiting {
  readonly records: readonly OutgoingRecord[];
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
  #waiting: Waiting[] = [];

  constructor(producer: TransportProducer) {
    this.#producer = producer;
  }

  send(records: readonly OutgoingRecord[]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#waiting.push({ records, resolve, reject }) === 1) queueMicrotask(() => this.#flush());
    });
  }

  #flush(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    const records = waiting.length === 1 ? waiting[0]!.records : waiting.flatMap((each) => each.records);
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
          const own = each.records.flatMap((record) => refused.get(record) ?? []);
          if (own.length === 0) each.resolve();
          else each.reject(new RecordsRejectedError(own, []));
        }
      },
    );
  }
}
