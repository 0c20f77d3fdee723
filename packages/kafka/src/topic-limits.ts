import { Buffer } from 'node:buffer';
import type { OutgoingRecord } from '@eddy/core';
import { varintSize } from './produce-request.js';
import { ConfigResourceTypes, type Admin } from '@platformatic/kafka';

/** What a topic accepts, from its configuration (the topic's own values, else the broker's). */
export interface TopicLimits {
  /** `max.message.bytes`: the largest record batch the broker takes for this topic. */
  readonly maxMessageBytes: number | undefined;
  /** `message.timestamp.type`: with `LogAppendTime` the broker sets timestamps and checks none. */
  readonly logAppendTime: boolean;
  /** `message.timestamp.after.max.ms` / `message.timestamp.before.max.ms`: how far from the broker's clock a record's timestamp may be. */
  readonly timestampAfterMaxMs: number | undefined;
  readonly timestampBeforeMaxMs: number | undefined;
}

/** Nothing known: nothing is refused before the broker says so. */
export const unknownLimits: TopicLimits = { maxMessageBytes: undefined, logAppendTime: false, timestampAfterMaxMs: undefined, timestampBeforeMaxMs: undefined };

/** Below the limit by more than this, a record's key and value are taken to fit with its headers. */
const HEADROOM_BYTES = 64 * 1024;

const names = ['max.message.bytes', 'message.timestamp.type', 'message.timestamp.after.max.ms', 'message.timestamp.before.max.ms'];

/** Reads the limits of a topic (DescribeConfigs). */
export async function readTopicLimits(admin: Admin, topic: string): Promise<TopicLimits> {
  const [description] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: names }], includeSynonyms: false });
  const values = new Map((description?.configs ?? []).map((entry) => [entry.name, entry.value ?? undefined]));
  const number = (name: string) => {
    const value = Number(values.get(name));
    // Long.MAX_VALUE (the default of before.max.ms) means no limit.
    return Number.isFinite(value) && value >= 0 && value < Number.MAX_SAFE_INTEGER ? value : undefined;
  };
  return {
    maxMessageBytes: number('max.message.bytes'),
    logAppendTime: values.get('message.timestamp.type') === 'LogAppendTime',
    timestampAfterMaxMs: number('message.timestamp.after.max.ms'),
    timestampBeforeMaxMs: number('message.timestamp.before.max.ms'),
  };
}

/** Why the broker would refuse this record for itself, by the topic's limits; undefined if it would not. */
export function refusalOf(record: OutgoingRecord, limits: TopicLimits, now: number): { reason: string; message: string } | undefined {
  // Counting a record's bytes exactly is only worth it near the limit (headers are small).
  if (limits.maxMessageBytes !== undefined && (record.key?.byteLength ?? 0) + (record.value?.byteLength ?? 0) + HEADROOM_BYTES > limits.maxMessageBytes) {
    const size = singleRecordBatchSize(record);
    if (size > limits.maxMessageBytes) {
      return { reason: 'MESSAGE_TOO_LARGE', message: `a batch of this record alone is ${size} bytes; ${record.topic} takes at most ${limits.maxMessageBytes} (max.message.bytes)` };
    }
  }
  if (!limits.logAppendTime) {
    const ahead = record.timestamp - now;
    if (limits.timestampAfterMaxMs !== undefined && ahead > limits.timestampAfterMaxMs) {
      return { reason: 'INVALID_TIMESTAMP', message: `its timestamp ${record.timestamp} is ${ahead} ms ahead of the clock; ${record.topic} takes at most ${limits.timestampAfterMaxMs} ms (message.timestamp.after.max.ms)` };
    }
    if (limits.timestampBeforeMaxMs !== undefined && -ahead > limits.timestampBeforeMaxMs) {
      return { reason: 'INVALID_TIMESTAMP', message: `its timestamp ${record.timestamp} is ${-ahead} ms behind the clock; ${record.topic} takes at most ${limits.timestampBeforeMaxMs} ms (message.timestamp.before.max.ms)` };
    }
  }
  return undefined;
}

/** Bytes of a record batch (magic 2, uncompressed) holding this record alone, as the broker measures it. */
export function singleRecordBatchSize(record: OutgoingRecord): number {
  let body = 1 + 1 + 1; // attributes, timestamp delta 0, offset delta 0
  body += bytesField(record.key?.byteLength);
  body += bytesField(record.value?.byteLength);
  const headers = record.headers ? Object.entries(record.headers) : [];
  body += varintSize(headers.length);
  for (const [name, value] of headers) {
    body += bytesField(Buffer.byteLength(name));
    body += bytesField(Buffer.byteLength(value));
  }
  return 61 + varintSize(body) + body;
}

/** A length-prefixed field: the zigzag varint of its length (-1 for null) and its bytes. */
function bytesField(length: number | undefined): number {
  return length === undefined ? varintSize(-1) : varintSize(length) + length;
}

