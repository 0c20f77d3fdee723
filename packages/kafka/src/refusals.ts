import { EddyError, partitionKey, type OutgoingRecord } from '@eddy/core';
import { assignOffsets, type RequestEntry } from './coalescing.js';
import { recordRefusal, transportError } from './errors.js';

/** What sending a request needs of its producer. */
export interface RequestSender {
  /** Writes records and resolves with the base offset of each partition's batch, by partition key. */
  readonly produce: (records: readonly OutgoingRecord[]) => Promise<Map<string, number>>;
  /** Whether a record the broker refuses can be told from the others by sending again (not inside a transaction). */
  readonly isolatesRefusals: boolean;
}

/**
 * One produce request. When the broker refuses records for themselves, the partitions of the
 * request go again one by one, and a partition's batch that is refused again is halved until
 * each refused record stands alone; everything else is written. The broker takes a batch of a
 * partition whole or not at all, and the client counts a failed request's sequence numbers as
 * unused: a partition's batch the broker had written goes again as it was, with the same
 * sequence numbers, and the broker answers it as the duplicate it is, with its offsets (the
 * idempotent producer's promise).
 */
export async function sendIsolatingRefusals(entries: readonly RequestEntry[], sender: RequestSender): Promise<void> {
  try {
    assignOffsets(entries, await sender.produce(entries.map((entry) => entry.record)));
  } catch (error) {
    const reason = recordRefusal(error);
    if (reason === undefined || !sender.isolatesRefusals) throw error;
    if (entries.length === 1) {
      const { record, owner } = entries[0]!;
      owner.refused.push({ record, reason, error: new EddyError('RECORD_REJECTED', `the broker refused it (${reason}): ${transportError('producing', error).message}`, { cause: error }) });
      return;
    }
    const byPartition = groupByPartition(entries);
    if (byPartition.length > 1) {
      for (const batch of byPartition) await sendIsolatingRefusals(batch, sender);
      return;
    }
    const middle = entries.length >> 1;
    await sendIsolatingRefusals(entries.slice(0, middle), sender);
    await sendIsolatingRefusals(entries.slice(middle), sender);
  }
}

/** A request's entries by topic partition, in their order within each. */
function groupByPartition(entries: readonly RequestEntry[]): RequestEntry[][] {
  const groups = new Map<string, RequestEntry[]>();
  for (const entry of entries) {
    const key = partitionKey(entry.record.topic, entry.record.partition);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(entry);
  }
  return [...groups.values()];
}
