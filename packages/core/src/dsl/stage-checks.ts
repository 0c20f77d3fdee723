import { ConfigError } from '../errors.js';
import { isBatchHandler, type WindowHandler } from '../handler.js';
import type { RecordCallback } from './graph.js';

// Every DSL call checks its arguments when the pipeline is built, so a bad one fails there with the value in the message.

export function checkFunction(fn: unknown, what: string): RecordCallback {
  if (typeof fn !== 'function') throw new ConfigError(`${what}: expected a function, got ${fn === null ? 'null' : typeof fn}`);
  return fn as RecordCallback;
}

export function checkTopic(topic: unknown, what: string): string {
  if (typeof topic !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(topic)) {
    throw new ConfigError(`${what}: invalid topic name ${JSON.stringify(topic)} (letters, digits, '.', '_' and '-', at most 249)`);
  }
  return topic;
}

const namePattern = /^[A-Za-z0-9._-]+$/;

/** Store and topic names must be valid Kafka topic name parts. */
export function checkName(name: string | undefined, what: string): string | undefined {
  if (name === undefined) return undefined;
  if (typeof name !== 'string' || !namePattern.test(name) || name.length > 200) {
    throw new ConfigError(`${what}: invalid name ${JSON.stringify(name)} (letters, digits, '.', '_' and '-' only)`);
  }
  return name;
}

export function checkHandler(handler: unknown, what: string, optional = false): WindowHandler<unknown, unknown> | undefined {
  if (handler === undefined && optional) return undefined;
  if (typeof handler === 'function' || isBatchHandler(handler)) return handler as WindowHandler<unknown, unknown>;
  throw new ConfigError(`${what}: expected a function or a worker pool, got ${handler === null ? 'null' : typeof handler}`);
}
