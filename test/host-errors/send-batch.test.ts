/**
 * sendBatch and send given input they cannot take: not an array, null, undefined, a timestamp that
 * is NaN, Infinity or a string, a bad topic name. Each rejects with an EddyError and writes
 * nothing, and the app goes on taking valid input.
 */
import { describe, expect, it } from 'vitest';
import { createApp, EddyError } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { recording, r, type Reading } from './helpers.ts';

async function setup() {
  const app = createApp({ id: 'sb', idleTimeout: false, logger: recording() });
  app.from<Reading>('in').to('out');
  const driver = await TestDriver.start(app);
  return { app, driver };
}

const bads: Array<[string, unknown]> = [
  ['not an array (string)', 'nope'],
  ['not an array (object)', { value: 1 }],
  ['null', null],
  ['undefined', undefined],
  ['timestamp NaN', [{ value: r('a', 1, 1) }, { value: r('b', 1, 1), timestamp: Number.NaN }]],
  ['timestamp Infinity', [{ value: r('a', 1, 1) }, { value: r('b', 1, 1), timestamp: Infinity }]],
  ['timestamp string', [{ value: r('a', 1, 1) }, { value: r('b', 1, 1), timestamp: '5' }]],
];

describe('sendBatch with invalid input', () => {
  for (const [name, input] of bads) {
    it(`${name}: rejects with a clear EddyError and writes nothing`, async () => {
      const { app, driver } = await setup();
      let err: unknown;
      try { await app.sendBatch('in', input as never); } catch (e) { err = e; }
      await driver.advanceTime(0);
      expect(err, name).toBeInstanceOf(Error);
      expect(err, `${name}: ${String(err)}`).toBeInstanceOf(EddyError);
      expect(driver.transport.records('in'), name).toHaveLength(0);
      expect(app.state).toBe('running');
      // still works afterwards
      await app.sendBatch('in', [{ value: r('ok', 1, 1) }]);
      await driver.advanceTime(0);
      expect(driver.read('out')).toHaveLength(1);
      await driver.stop();
    });
  }

  it('bad topic names', async () => {
    const { app, driver } = await setup();
    for (const topic of ['', undefined, 5, 'a b', 'x'.repeat(300)]) {
      let err: unknown;
      try { await app.sendBatch(topic as never, [{ value: r('a', 1, 1) }]); } catch (e) { err = e; }
      expect(err, `topic ${String(topic)}`).toBeInstanceOf(EddyError);
    }
    await driver.stop();
  });

  it('send() with a bad timestamp rejects clearly', async () => {
    const { app, driver } = await setup();
    for (const ts of [Number.NaN, Infinity, '5']) {
      let err: unknown;
      try { await app.send('in', r('a', 1, 1), { timestamp: ts as never }); } catch (e) { err = e; }
      expect(err, `ts ${String(ts)}`).toBeInstanceOf(EddyError);
    }
    expect(driver.transport.records('in')).toHaveLength(0);
    await driver.stop();
  });
});
