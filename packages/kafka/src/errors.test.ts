import { EddyError } from '@eddy/core';
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { isMembershipError, isRetriable, isStaleMetadata, transportError } from './errors.js';

const { KafkaJSError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } = kafkajs;

describe('transport errors', () => {
  it('say whether retrying may help, by kafkajs rules', () => {
    expect(isRetriable(new KafkaJSError('socket hang up'))).toBe(true);
    expect(isRetriable(new KafkaJSNonRetriableError('bad request'))).toBe(false);
    expect(isRetriable(new KafkaJSNumberOfRetriesExceeded(new KafkaJSError('still down'), { retryCount: 5, retryTime: 1000 }))).toBe(true);
    expect(isRetriable(new TypeError('bug'))).toBe(false);
    expect(isRetriable('a string')).toBe(false);
  });

  it('wrap failures as TRANSPORT_FAILED with what failed and the cause', () => {
    const cause = new KafkaJSError('Connection timeout');
    const error = transportError('producing to readings', cause);
    expect(error).toBeInstanceOf(EddyError);
    expect(error).toMatchObject({ code: 'TRANSPORT_FAILED', retriable: true, cause });
    expect(error.message).toBe('producing to readings: KafkaJSError: Connection timeout');
    const own = new EddyError('CONFIG_INVALID', 'x');
    expect(transportError('anything', own)).toBe(own);
  });

  it('recognize broker error types anywhere in the cause chain', () => {
    const protocol = (type: string) => Object.assign(new KafkaJSProtocolError('broker says no'), { type });
    expect(isMembershipError(protocol('ILLEGAL_GENERATION'))).toBe(true);
    expect(isMembershipError(new KafkaJSNumberOfRetriesExceeded(protocol('REBALANCE_IN_PROGRESS'), { retryCount: 1, retryTime: 1 }))).toBe(true);
    expect(isMembershipError(protocol('NOT_LEADER_FOR_PARTITION'))).toBe(false);
    expect(isStaleMetadata(transportError('end offset', protocol('NOT_LEADER_FOR_PARTITION')))).toBe(true);
    expect(isStaleMetadata(protocol('UNKNOWN_TOPIC_OR_PARTITION'))).toBe(true);
    expect(isStaleMetadata(new Error('other'))).toBe(false);
  });
});
