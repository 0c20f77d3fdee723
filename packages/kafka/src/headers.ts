import type { Buffer } from 'node:buffer';
import type { Headers } from '@eddy/core';

/** A fetched record's headers as kafkajs gives them (its types leave out the values Kafka may omit). */
type FetchedHeaders = Readonly<Record<string, string | Buffer | null | undefined | ReadonlyArray<string | Buffer | null>>>;

/** The headers of every Eddy record that has none. */
export const emptyHeaders: Headers = Object.freeze({});

/**
 * Header values as strings. Kafka allows a header name to repeat (kafkajs then gives an array);
 * like Java's `Headers.lastHeader`, the last value wins.
 */
export function toHeaders(headers: FetchedHeaders | undefined): Headers {
  let result: Record<string, string> | undefined;
  // Most records have no headers: no object (nor entries array) for them.
  if (headers) {
    for (const name in headers) {
      if (!Object.hasOwn(headers, name)) continue;
      const raw = headers[name];
      const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
      // Kafka allows a header without a value; an Eddy header is text, so it is left out.
      if (value === undefined || value === null) continue;
      (result ??= {})[name] = typeof value === 'string' ? value : value.toString('utf8');
    }
  }
  return result ?? emptyHeaders;
}
