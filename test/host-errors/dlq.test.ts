/**
 * Bad records at run time under onError: 'dead-letter': a value that does not decode, a timestamp
 * extractor that returns NaN, Infinity, a string, undefined or null or that throws, a map, filter,
 * flatMap or peek that throws, a value or key the sink cannot encode, and window handlers
 * (onClose, onUpdate, onLate) that fail. Each bad record goes to <id>-dlq with its headers, is
 * counted and logged once, and the records around it go through.
 */
import { describe, expect, it } from 'vitest';
import { createApp, type Serde } from '@eddy/core';
import { TestDriver } from '@eddy/core/testing';
import { recording, r, HEADERS, type Reading } from './helpers.ts';

function check(dead: { headers: Record<string, string> }, code: string) {
  for (const h of HEADERS) expect(dead.headers[h], `header ${h} of ${JSON.stringify(dead.headers)}`).toBeDefined();
  expect(dead.headers['error.code']).toBe(code);
}

async function stateless(build: (app: ReturnType<typeof createApp>) => void, inputs: Array<[unknown, { key?: unknown; timestamp?: number }?]>) {
  const logger = recording();
  const app = createApp({ id: 'x', idleTimeout: false, logger });
  build(app);
  const driver = await TestDriver.start(app);
  for (const [v, o] of inputs) await driver.send('in', v, o ?? {});
  await driver.advanceTime('1s');
  return { app, driver, logger, dead: driver.read('x-dlq'), out: driver.read('out') };
}

describe('run-time bad records, stateless', () => {
  it('undecodable JSON: DLQ with all headers, metric, warn log, goes on', async () => {
    const bad = new TextEncoder().encode('{nope');
    const { app, driver, logger, dead, out } = await stateless((a) => a.from('in').map((v) => v).to('out'), [[r('a', 1, 1)], [bad], [r('b', 2, 2)]]);
    expect(dead).toHaveLength(1);
    check(dead[0]!, 'DESERIALIZATION_FAILED');
    expect(dead[0]!.value).toEqual(bad);
    expect(out.map((o) => o.value)).toEqual([r('a', 1, 1), r('b', 2, 2)]);
    expect(app.metrics().deadLetters).toBe(1);
    expect(logger.lines.filter((l) => l.level === 'warn' && l.message === 'record dead-lettered')).toHaveLength(1);
    await driver.stop();
  });

  for (const [name, ts] of [['NaN', Number.NaN], ['Infinity', Infinity], ['string', '5'], ['undefined', undefined], ['null', null]] as const) {
    it(`timestamp extractor returning ${name}: INVALID_TIMESTAMP`, async () => {
      const { app, driver, dead, out } = await stateless(
        (a) => a.from<Reading>('in', { timestamp: (v) => (v.sensor === 'bad' ? (ts as unknown as number) : v.ts) }).to('out'),
        [[r('a', 1, 1)], [r('bad', 1, 1)], [r('b', 2, 2)]],
      );
      expect(dead).toHaveLength(1);
      check(dead[0]!, 'INVALID_TIMESTAMP');
      expect(out).toHaveLength(2);
      expect(app.metrics().deadLetters).toBe(1);
      await driver.stop();
    });
  }

  it('timestamp extractor that throws', async () => {
    const { app, driver, dead, out } = await stateless(
      (a) => a.from<Reading>('in', { timestamp: (v) => { if (v.sensor === 'bad') throw new Error('ts boom'); return v.ts; } }).to('out'),
      [[r('a', 1, 1)], [r('bad', 1, 1)], [r('b', 2, 2)]],
    );
    expect(dead).toHaveLength(1);
    for (const h of HEADERS) expect(dead[0]!.headers[h], h).toBeDefined();
    expect(dead[0]!.headers['error']).toContain('ts boom');
    expect(out).toHaveLength(2);
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });

  for (const step of ['map', 'filter', 'flatMap', 'peek'] as const) {
    for (const mode of ['sync'] as const) {
      it(`${step} that throws (${mode})`, async () => {
        const fail = (v: Reading) => {
          if (v.sensor === 'bad') {
            if (mode === 'sync') throw new Error(`${step} boom`);
            return Promise.reject(new Error(`${step} boom`));
          }
          return undefined;
        };
        const { app, driver, dead, out } = await stateless((a) => {
          const s = a.from<Reading>('in');
          const t =
            step === 'map' ? s.map((v) => (fail(v), v))
            : step === 'filter' ? s.filter((v) => (fail(v), true))
            : step === 'flatMap' ? s.flatMap((v) => (fail(v), [v]))
            : s.peek((v) => void fail(v));
          t.to('out');
        }, [[r('a', 1, 1)], [r('bad', 1, 1)], [r('b', 2, 2)]]);
        if (mode === 'sync') {
          expect(dead).toHaveLength(1);
          check(dead[0]!, 'HANDLER_FAILED');
          expect(dead[0]!.headers['error']).toContain(`${step} boom`);
          expect(dead[0]!.value).toEqual(r('bad', 1, 1));
          expect(out.map((o) => (o.value as Reading).sensor)).toEqual(['a', 'b']);
          expect(app.metrics().deadLetters).toBe(1);
        } else {
          // async callbacks for map/filter are not documented; just: never silent, never a crash
          expect(dead.length + out.length).toBeGreaterThanOrEqual(2);
        }
        await driver.stop();
      });
    }
  }

  it('a value the sink serializer cannot encode (BigInt / circular / throwing serde)', async () => {
    const throwing: Serde<Reading> = { serialize: (v) => { if (v.sensor === 'bad') throw new Error('cannot encode'); return new TextEncoder().encode(JSON.stringify(v)); }, deserialize: (b) => JSON.parse(new TextDecoder().decode(b)) };
    const { app, driver, dead, out, logger } = await stateless(
      (a) => a.from<Reading>('in').to('out', { value: throwing }),
      [[r('a', 1, 1)], [r('bad', 1, 1)], [r('b', 2, 2)]],
    );
    expect(dead, JSON.stringify(logger.lines)).toHaveLength(1);
    for (const h of HEADERS) expect(dead[0]!.headers[h], h).toBeDefined();
    expect(dead[0]!.headers['error']).toContain('cannot encode');
    expect(out).toHaveLength(2);
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });

  it('a value JSON cannot encode (BigInt) with the default serde', async () => {
    const { app, driver, dead, out, logger } = await stateless(
      (a) => a.from<Reading>('in').map((v) => (v.sensor === 'bad' ? { big: 1n } : v)).to('out'),
      [[r('a', 1, 1)], [r('bad', 1, 1)], [r('b', 2, 2)]],
    );
    expect(dead, JSON.stringify(logger.lines.map((l) => l.message))).toHaveLength(1);
    expect(out).toHaveLength(2);
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });

  it('a key the sink key serde cannot encode', async () => {
    const keySerde: Serde<string> = { serialize: (k) => { if (k === 'bad') throw new Error('key enc'); return new TextEncoder().encode(k); }, deserialize: (b) => new TextDecoder().decode(b) };
    const { app, driver, dead, out, logger } = await stateless(
      (a) => a.from<Reading>('in').keyBy((v) => v.sensor).to('out', { key: keySerde }),
      [[r('a', 1, 1)], [r('bad', 1, 1)], [r('b', 2, 2)]],
    );
    expect(dead, JSON.stringify(logger.lines.map((l) => l.message))).toHaveLength(1);
    expect(out).toHaveLength(2);
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });
});

describe('run-time bad records, windowed', () => {
  function windowed(handler: (w: { key: string; start: number; value: number }) => unknown, extra: { onUpdate?: boolean } = {}) {
    const app = createApp({ id: 'w', idleTimeout: false, logger: recording() });
    const t = app.from<Reading>('in', { timestamp: (v) => v.ts }).keyBy((v) => v.sensor).tumbling('10s').sum((v) => v.value);
    (extra.onUpdate ? t.onUpdate(handler as never) : t.onClose(handler as never)).to('out');
    return app;
  }

  for (const mode of ['sync', 'async', 'reject-non-error', 'throw-string'] as const) {
    it(`onClose that fails (${mode})`, async () => {
      const app = windowed((w) => {
        if (w.key === 'bad') {
          if (mode === 'sync') throw new Error('close boom');
          if (mode === 'async') return Promise.reject(new Error('close boom'));
          if (mode === 'reject-non-error') return Promise.reject('close boom');
          throw 'close boom';
        }
        return { k: w.key, v: w.value };
      });
      const driver = await TestDriver.start(app);
      await driver.send('in', r('a', 1, 1000));
      await driver.send('in', r('bad', 1, 1000));
      await driver.send('in', r('b', 2, 1000));
      await driver.send('in', r('z', 0, 100_000));
      const dead = driver.read('w-dlq');
      expect(dead).toHaveLength(1);
      // a window handler's dead letter has no topic, partition or offset: see regressions.test.ts
      expect(dead[0]!.headers).toMatchObject({ 'error.code': 'HANDLER_FAILED', step: 'onClose' });
      expect(dead[0]!.headers['task']).toBeDefined();
      expect(dead[0]!.headers['error']).toContain('close boom');
      expect(driver.read('out').map((o) => o.value)).toEqual([{ k: 'a', v: 1 }, { k: 'b', v: 2 }]);
      expect(app.metrics().deadLetters).toBe(1);
      await driver.stop();
    });
  }

  it('onUpdate that throws', async () => {
    const app = windowed((w) => { if (w.key === 'bad') throw new Error('upd boom'); return { k: w.key, v: w.value }; }, { onUpdate: true });
    const driver = await TestDriver.start(app);
    await driver.send('in', r('a', 1, 1000));
    await driver.send('in', r('bad', 1, 1000));
    await driver.send('in', r('b', 2, 1000));
    const dead = driver.read('w-dlq');
    expect(dead).toHaveLength(1);
    check(dead[0]!, 'HANDLER_FAILED');
    expect(driver.read('out').map((o) => o.value)).toEqual([{ k: 'a', v: 1 }, { k: 'b', v: 2 }]);
    await driver.stop();
  });

  it('onLate that throws', async () => {
    const app = createApp({ id: 'w', idleTimeout: false, logger: recording() });
    const t = app.from<Reading>('in', { timestamp: (v) => v.ts }).keyBy((v) => v.sensor).tumbling('10s').sum((v) => v.value);
    t.onClose((w) => ({ k: w.key, v: w.value })).to('out');
    t.onLate(() => { throw new Error('late boom'); }).to('late');
    const driver = await TestDriver.start(app);
    await driver.send('in', r('a', 1, 1000));
    await driver.send('in', r('a', 1, 25_000));
    await driver.send('in', r('a', 1, 2000)); // late
    await driver.send('in', r('a', 1, 26_000));
    expect(app.metrics().lateRecords).toBe(1);
    const dead = driver.read('w-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers['error']).toContain('late boom');
    await driver.stop();
  });

  it('window result the sink cannot serialize', async () => {
    const app = windowed((w) => (w.key === 'bad' ? { big: 10n } : { k: w.key, v: w.value }));
    const driver = await TestDriver.start(app);
    await driver.send('in', r('a', 1, 1000));
    await driver.send('in', r('bad', 1, 1000));
    await driver.send('in', r('b', 2, 1000));
    await driver.send('in', r('z', 0, 100_000));
    expect(driver.read('w-dlq')).toHaveLength(1);
    expect(driver.read('out').map((o) => o.value)).toEqual([{ k: 'a', v: 1 }, { k: 'b', v: 2 }]);
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });
});
