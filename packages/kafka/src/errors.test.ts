import { EddyError } from '@eddy/core';
import { GenericError, MultipleErrors, NetworkError, ProtocolError, ResponseError, UserError } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { isFenced, isRetriable, isStaleMetadata, recordRefusal, transportError } from './errors.js';

/** A broker's answer with one error per partition, as the client raises it. */
const response = (...codes: number[]) => new ResponseError(0, 11, Object.fromEntries(codes.map((code, index) => [`/responses/0/partition_responses/${index}`, [code, null]])), {});

describe('transport errors', () => {
  it('say whether retrying may help, by the errors the broker gave', () => {
    expect(isRetriable(new NetworkError('socket hang up'))).toBe(true);
    // NOT_LEADER_OR_FOLLOWER (6) may go away; MESSAGE_TOO_LARGE (10) will not.
    expect(isRetriable(response(6))).toBe(true);
    expect(isRetriable(response(10))).toBe(false);
    expect(isRetriable(response(6, 10))).toBe(false);
    expect(isRetriable(new MultipleErrors('attempts failed', [response(6), response(6)]))).toBe(true);
    expect(isRetriable(new TypeError('bug'))).toBe(false);
    expect(isRetriable('a string')).toBe(false);
    expect(isRetriable(new EddyError('TRANSPORT_FAILED', 'ours', { retriable: true }))).toBe(true);
  });

  it('wrap failures as TRANSPORT_FAILED with what failed, the Kafka errors and the cause', () => {
    const cause = response(6);
    const error = transportError('producing to readings', cause);
    expect(error).toBeInstanceOf(EddyError);
    expect(error).toMatchObject({ code: 'TRANSPORT_FAILED', retriable: true, cause });
    expect(error.message).toMatch(/^producing to readings: NOT_LEADER_OR_FOLLOWER: /);
    const own = new EddyError('CONFIG_INVALID', 'x');
    expect(transportError('anything', own)).toBe(own);
  });

  it('recognize broker errors anywhere in the chain', () => {
    const wrapped = new MultipleErrors('Producing messages failed.', [response(10)]);
    expect(recordRefusal(wrapped)).toBe('MESSAGE_TOO_LARGE');
    expect(recordRefusal(response(6))).toBeUndefined();
    expect(isStaleMetadata(transportError('end offset', response(6)))).toBe(true);
    expect(isStaleMetadata(new ProtocolError('UNKNOWN_TOPIC_OR_PARTITION'))).toBe(true);
    expect(isStaleMetadata(new GenericError('PLT_KFK_USER', 'other'))).toBe(false);
    // The client's own word for a topic its metadata lacks.
    expect(isStaleMetadata(new UserError('Unknown topic readings.'))).toBe(true);
    expect(isRetriable(new UserError('Unknown topic readings.'))).toBe(true);
    expect(isRetriable(new UserError('Cannot produce to an already completed transaction.'))).toBe(false);
    expect(isFenced(response(90))).toBe(true);
    expect(isFenced(new ProtocolError('INVALID_PRODUCER_EPOCH'))).toBe(true);
    expect(isFenced(response(6))).toBe(false);
  });
});
