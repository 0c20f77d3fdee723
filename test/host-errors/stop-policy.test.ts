/**
 * onError 'stop' for each kind of bad record (a NaN timestamp, a key function that throws, a sink
 * serializer that throws, a filter that throws): the app fails once with an EddyError and its
 * code, the records before the bad one are in the output, nothing is dead-lettered, and the
 * prometheus text reports the app unhealthy. The prometheus text also counts dead letters.
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError, type Serde } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { recording, r, type Reading } from './helpers.ts';

const throwing: Serde<Reading> = { serialize: (v) => { if (v.sensor === 'bad') throw new Error('cannot encode'); return new TextEncoder().encode(JSON.stringify(v)); }, deserialize: (b) => JSON.parse(new TextDecoder().decode(b)) };

const cases: Array<[string, (app: ReturnType<typeof createApp>) => void, string]> = [
  ['NaN timestamp', (a) => a.from<Reading>('in', { timestamp: (v) => (v.sensor === 'bad' ? Number.NaN : v.ts) }).to('out'), 'INVALID_TIMESTAMP'],
  ['key function', (a) => a.from<Reading>('in').keyBy((v) => { if (v.sensor === 'bad') throw new Error('k'); return v.sensor; }).to('out'), 'KEY_FUNCTION_FAILED'],
  ['sink serializer', (a) => a.from<Reading>('in').to('out', { value: throwing }), ''],
  ['filter', (a) => a.from<Reading>('in').filter((v) => { if (v.sensor === 'bad') throw new Error('f'); return true; }).to('out'), 'HANDLER_FAILED'],
];

describe("onError 'stop' for each kind of bad record", () => {
  for (const [name, build, code] of cases) {
    it(name, async () => {
      const app = createApp({ id: 'sp', idleTimeout: false, onError: 'stop', logger: recording() });
      build(app);
      const errors: EddyError[] = [];
      app.on('error', (e) => errors.push(e));
      const driver = await TestDriver.start(app);
      await driver.send('in', r('a', 1, 1));
      await driver.send('in', r('bad', 1, 2)).catch(() => undefined);
      await driver.send('in', r('b', 1, 3)).catch(() => undefined);
      expect(app.state).toBe('failed');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(EddyError);
      if (code) expect(errors[0]!.code).toBe(code);
      else expect(errors[0]!.code).toBeTruthy();
      if (name !== "NaN timestamp") expect(errors[0]!.cause).toBeDefined();
      expect(driver.read('out').map((o) => (o.value as Reading).sensor)).toEqual(['a']);
      expect(driver.read('sp-dlq')).toHaveLength(0);
      expect(app.metrics('prometheus')).toMatch(/eddy_healthy\{[^}]*\} 0/);
      await app.stop();
    });
  }
});

describe('prometheus', () => {
  it('exposes dead letters', async () => {
    const app = createApp({ id: 'pm', idleTimeout: false, logger: recording() });
    app.from<Reading>('in').to('out');
    const driver = await TestDriver.start(app);
    await driver.send('in', new TextEncoder().encode('{'));
    const text = app.metrics('prometheus') as string;
    expect(text).toMatch(/dead_letters\S*\s+1/);
    expect(text).toMatch(/eddy_healthy\{[^}]*\} 1/);
    await driver.stop();
  });
});
