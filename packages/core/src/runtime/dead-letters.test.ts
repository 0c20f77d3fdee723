import { describe, expect, it } from 'vitest';
import { createApp, silentLogger, type App } from '../index.js';
import { TestDriver } from '../testing/index.js';

interface Reading {
  sensor: string;
  value: number;
  ts: number;
}

const reading = (sensor: string, value: number, ts: number): Reading => ({ sensor, value, ts });

function windowedApp(options: { onError?: 'dead-letter' | 'stop'; keyFn?: (r: Reading) => string; handler?: (w: { key: string; value: number }) => unknown } = {}): App {
  const app = createApp({ id: 'bad', onError: options.onError ?? 'dead-letter', idleTimeout: false, logger: silentLogger });
  app
    .from<Reading>('readings', { timestamp: (r) => r.ts })
    .keyBy(options.keyFn ?? ((r) => r.sensor))
    .tumbling('10s')
    .sum((r) => r.value)
    .onClose(options.handler ?? ((w) => ({ sensor: w.key, total: w.value })))
    .to('totals');
  return app;
}

const flush = (driver: TestDriver) => driver.send('readings', reading('zz-flush', 0, 1_000_000));

describe('dead letters', () => {
  it('dead-letters bytes that do not deserialize, with the error and origin in headers, and goes on', async () => {
    const app = windowedApp();
    const driver = await TestDriver.start(app);
    await driver.send('readings', reading('a', 1, 1000));
    const garbage = new TextEncoder().encode('{not json');
    await driver.send('readings', garbage, { key: 'a' });
    await driver.send('readings', reading('a', 2, 2000));
    await flush(driver);

    const dead = driver.read('bad-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value).toEqual(garbage);
    expect(dead[0]!.headers).toMatchObject({ 'error.code': 'DESERIALIZATION_FAILED', 'topic': 'readings', 'partition': '0', 'offset': '1' });
    expect(dead[0]!.headers['error']).toMatch(/JSON/);
    expect(driver.read('totals').map((r) => r.value)).toContainEqual({ sensor: 'a', total: 3 });
    expect(app.metrics().deadLetters).toBe(1);
    await driver.stop();
  });

  it('dead-letters a key function that throws', async () => {
    const app = windowedApp({
      keyFn: (r) => {
        if (r.sensor === 'boom') throw new Error('no key for boom');
        return r.sensor;
      },
    });
    const driver = await TestDriver.start(app);
    await driver.send('readings', reading('boom', 5, 1000));
    await driver.send('readings', reading('a', 1, 1500));
    await flush(driver);
    const dead = driver.read('bad-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value).toEqual(reading('boom', 5, 1000));
    expect(dead[0]!.headers).toMatchObject({ 'error.code': 'KEY_FUNCTION_FAILED', 'step': 'keyBy', 'offset': '0' });
    expect(dead[0]!.headers['error']).toContain('no key for boom');
    expect(driver.read('totals').map((r) => r.value)).toContainEqual({ sensor: 'a', total: 1 });
    await driver.stop();
  });

  // keyBy(r => r.sensor) cannot see the key a record arrives with: the source checks that key
  // instead of decoding it. Nothing about dead letters may change with that.
  it('dead-letters a record whose key is not UTF-8, also when no step reads that key', async () => {
    for (const keyFn of [(r: Reading) => r.sensor, (r: Reading, key?: unknown) => (key === 'never' ? 'x' : r.sensor)]) {
      const app = windowedApp({ keyFn: keyFn as (r: Reading) => string });
      const driver = await TestDriver.start(app);
      await driver.send('readings', reading('a', 1, 1000), { key: Uint8Array.of(0x61, 0xff, 0x62) });
      // Keys that are UTF-8 but not ASCII, short and long, are fine.
      await driver.send('readings', reading('a', 2, 2000), { key: 'é' });
      await driver.send('readings', reading('a', 4, 3000), { key: 'ü'.repeat(40) });
      await flush(driver);
      const dead = driver.read('bad-dlq');
      expect(dead, String(keyFn)).toHaveLength(1);
      expect(dead[0]!.headers).toMatchObject({ 'error.code': 'DESERIALIZATION_FAILED', 'offset': '0' });
      expect(driver.read('totals').map((r) => r.value)).toContainEqual({ sensor: 'a', total: 6 });
      await driver.stop();
    }
  });

  it("dead-letters a key function that throws with the record's key, whether or not it could see the key", async () => {
    const keys: unknown[] = [];
    for (const keyFn of [
      (r: Reading) => (r.sensor === 'boom' ? JSON.parse('{') : r.sensor) as string,
      (r: Reading, key?: unknown) => (r.sensor === 'boom' ? JSON.parse(String(key)) : r.sensor) as string,
    ]) {
      const app = windowedApp({ keyFn: keyFn as (r: Reading) => string });
      const driver = await TestDriver.start(app);
      await driver.send('readings', reading('boom', 5, 1000), { key: 'sensor-ü' });
      await flush(driver);
      const dead = driver.read('bad-dlq');
      expect(dead, String(keyFn)).toHaveLength(1);
      expect(dead[0]!.headers['error.code']).toBe('KEY_FUNCTION_FAILED');
      keys.push(dead[0]!.key);
      await driver.stop();
    }
    expect(keys[0]).not.toBeNull();
    expect(keys[0]).toEqual(keys[1]);
    // A record without a key after one with a key: its dead letter has no key.
    const app = windowedApp({ keyFn: (r) => (r.sensor === 'boom' ? (JSON.parse('{') as string) : r.sensor) });
    const driver = await TestDriver.start(app);
    await driver.send('readings', reading('a', 1, 1000), { key: 'a' });
    await driver.send('readings', reading('boom', 5, 1000));
    expect(driver.read('bad-dlq').map((dead) => dead.key)).toEqual([undefined]);
    await driver.stop();
  });

  it('decodes the key when any reader of the topic may see it (a topic read twice)', async () => {
    const app = createApp({ id: 'twice', idleTimeout: false, logger: silentLogger });
    const blind = app.from<{ id: string }>('r').keyBy((v) => v.id);
    const seeing = app.from<{ id: string }>('r').map((_v, k) => ({ id: `key=${String(k)}` })).keyBy((v) => v.id);
    blind.merge(seeing).to('out');
    const driver = await TestDriver.start(app);
    await driver.send('r', { id: 'x' }, { key: 'the-key' });
    expect(driver.read('out').map((r) => r.value)).toEqual(expect.arrayContaining([{ id: 'x' }, { id: 'key=the-key' }]));
    await driver.stop();
  });

  it.each([
    ['NaN', Number.NaN],
    ['a string', '12:00' as unknown as number],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('dead-letters a timestamp that is %s', async (_name, ts) => {
    const app = windowedApp();
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'a', value: 1, ts });
    await driver.send('readings', reading('a', 1, 1000));
    await flush(driver);
    const dead = driver.read('bad-dlq');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers['error.code']).toBe('INVALID_TIMESTAMP');
    expect(driver.read('totals').map((r) => r.value)).toContainEqual({ sensor: 'a', total: 1 });
    await driver.stop();
  });

  it('dead-letters a value an aggregation cannot use', async () => {
    const app = windowedApp();
    const driver = await TestDriver.start(app);
    await driver.send('readings', { sensor: 'a', value: 'high', ts: 1000 });
    await driver.send('readings', reading('a', 4, 1000));
    await flush(driver);
    expect(driver.read('bad-dlq')[0]!.headers['error']).toMatch(/finite number/);
    expect(driver.read('totals').map((r) => r.value)).toContainEqual({ sensor: 'a', total: 4 });
    await driver.stop();
  });

  it('dead-letters a close handler that throws, sync or async, and keeps the other windows', async () => {
    for (const handler of [
      (w: { key: string; value: number }) => {
        if (w.key === 'b') throw new Error('model failed');
        return w.value;
      },
      async (w: { key: string; value: number }) => {
        if (w.key === 'b') throw new Error('model failed');
        return w.value;
      },
    ]) {
      const app = windowedApp({ handler });
      const driver = await TestDriver.start(app);
      await driver.send('readings', reading('a', 1, 1000));
      await driver.send('readings', reading('b', 2, 1000));
      await driver.send('readings', reading('c', 3, 1000));
      await flush(driver);
      expect(driver.read('totals').map((r) => [r.key, r.value])).toEqual([
        ['a', 1],
        ['c', 3],
      ]);
      const dead = driver.read('bad-dlq');
      expect(dead).toHaveLength(1);
      expect(dead[0]!.headers['error.code']).toBe('HANDLER_FAILED');
      expect(dead[0]!.headers['error']).toContain('model failed');
      expect(dead[0]!.value).toEqual({ start: 0, end: 10_000, value: 2 });
      await driver.stop();
    }
  });
});

describe("onError: 'stop'", () => {
  it('stops on the first bad record, produces nothing after it, and does not commit past it', async () => {
    const app = windowedApp({ onError: 'stop' });
    const driver = await TestDriver.start(app);
    await driver.send('readings', reading('a', 1, 1000));
    await driver.send('readings', new TextEncoder().encode('garbage'));
    expect(app.failure?.code).toBe('DESERIALIZATION_FAILED');
    await expect(driver.send('readings', reading('a', 1, 50_000))).rejects.toMatchObject({ code: 'DESERIALIZATION_FAILED' });
    expect(driver.read('bad-dlq')).toHaveLength(0);
    expect(driver.read('totals')).toHaveLength(0);
    await driver.stop();
  });
});
