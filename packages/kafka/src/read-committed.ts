import { kafkajsModule } from './kafkajs-modules.js';

/**
 * A fix for read_committed consumers of kafkajs 2.2.4, installed once for the process when
 * `@eddy/kafka` is loaded (it applies to every consumer of that kafkajs installation).
 *
 * A read_committed fetch returns the records of aborted transactions along with the list of
 * those transactions (producer id, first offset); the client must drop them. kafkajs walks the
 * list assuming it is sorted by first offset and takes at most one entry per record, but the
 * broker does not sort it: with several producers' transactions aborted in one partition (every
 * task of a crashed instance writes to the same output and repartition partitions), kafkajs
 * delivers records of aborted transactions. That breaks exactly-once (outputs of an aborted
 * transaction seen downstream) and any read_committed reader of Eddy's outputs.
 *
 * The fix runs on each decoded fetch response, before kafkajs builds its batches: it finds the
 * aborted records the way the Java consumer does (transactions in first-offset order; a producer
 * is aborted from its transaction's first offset to its abort marker) and marks them as control
 * records, which kafkajs skips while still counting their offsets, then empties the list so
 * kafkajs's own filter has nothing to do.
 */

/** The parts of a kafkajs fetched record this fix reads and marks. */
export interface FetchedRecord {
  readonly offset: string;
  readonly key: Buffer | null;
  isControlRecord: boolean;
  readonly batchContext?: { readonly producerId?: string; readonly inTransaction?: boolean };
}

/** One partition of a decoded fetch response (Fetch v4 and later). */
export interface FetchedPartition {
  abortedTransactions?: ReadonlyArray<{ readonly producerId: string; readonly firstOffset: string }>;
  readonly messages: readonly FetchedRecord[];
}

/** A control record's key: version (int16), then type (int16): 0 abort, 1 commit. */
const isAbortMarker = (key: Buffer | null) => key !== null && key.length >= 4 && key.readInt16BE(2) === 0;

/**
 * Marks the records of aborted transactions in a fetched partition as control records (which
 * kafkajs does not deliver) and clears its aborted-transaction list. Records are in offset order.
 */
export function dropAbortedRecords(partition: FetchedPartition): void {
  const aborted = partition.abortedTransactions;
  if (!aborted || aborted.length === 0) return;
  const queue = aborted.map(({ producerId, firstOffset }) => ({ producerId, firstOffset: BigInt(firstOffset) })).sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  const abortedProducers = new Set<string>();
  let next = 0;
  for (const record of partition.messages) {
    const offset = BigInt(record.offset);
    while (next < queue.length && queue[next]!.firstOffset <= offset) abortedProducers.add(queue[next++]!.producerId);
    const producerId = record.batchContext?.producerId;
    if (producerId === undefined) continue;
    if (record.isControlRecord) {
      if (isAbortMarker(record.key)) abortedProducers.delete(producerId);
    } else if (record.batchContext?.inTransaction && abortedProducers.has(producerId)) {
      record.isControlRecord = true;
    }
  }
  partition.abortedTransactions = [];
}

interface FetchResponseModule {
  decode(rawData: Buffer): Promise<{ responses: Array<{ partitions: FetchedPartition[] }> }>;
}

/** Fetch response versions that carry aborted transactions (kafkajs 2.2.4 speaks up to v11). */
const fetchVersions = [4, 5, 6, 7, 8, 9, 10, 11];
const patched = Symbol.for('eddy.kafkajs.readCommitted');

/** Wraps kafkajs's fetch response decoders (once per kafkajs installation) with {@link dropAbortedRecords}. */
export function installReadCommittedFix(): void {
  for (const version of fetchVersions) {
    const module = kafkajsModule<FetchResponseModule & { [patched]?: true }>(`protocol/requests/fetch/v${version}/response.js`);
    if (module[patched]) continue;
    const decode = module.decode.bind(module);
    module.decode = async (rawData) => {
      const response = await decode(rawData);
      for (const topic of response.responses) for (const partition of topic.partitions) dropAbortedRecords(partition);
      return response;
    };
    module[patched] = true;
  }
}
