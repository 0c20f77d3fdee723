import { TestDriver } from '@eddy/core/testing';
import { deadLetterTopic } from '@eddy/core';
import { afterEach, describe, expect, it } from 'vitest';
import { buildSensorsApp, sensorWindow, topics } from './pipeline.js';
import { mulberry32 } from './simulator.js';
import type { LateReadingNotice, Prediction, Reading, SensorInfo } from './types.js';

/**
 * The flagship pipeline in virtual time: two sensors, 30 s of readings every 200 ms, one spike on
 * sensor-02, one reading out of order (inside the grace), one late (after some of its windows
 * closed) and one failed read. sensor-01 has metadata in the `sensors` table and sends raw values
 * that its calibration turns back into the values below; sensor-02 has none, so its raw values are
 * used as they are, at location 'unknown'. Expectations are computed here from what was sent,
 * independently of the engine.
 */
const t0 = Date.UTC(2025, 0, 1, 12);
const spikeAt = t0 + 15_100;
const outOfOrderAt = t0 + 10_400;
const lateAt = t0 + 12_600;
const failedAt = t0 + 22_100;

const sensor01: SensorInfo = { location: 'plant-a/roof', calibration: { offset: 5, scale: 0.5 } };
/** What sensor-01 sends for `value`: calibrated, it is `value` again. */
const raw01 = (value: number) => (value - sensor01.calibration.offset) / sensor01.calibration.scale;

interface Send {
  readonly arrival: number;
  readonly reading: Reading;
}

/** What the sensors send, in arrival order. */
function scenario(): Send[] {
  const random = mulberry32(7);
  const noise = () => Math.round((random() - 0.5) * 400) / 1_000; // ±0.2
  const sends: Send[] = [];
  for (let ts = t0; ts < t0 + 30_000; ts += 200) {
    // sensor-01 rises 0.1 per second; sensor-02 falls 0.05 per second and spikes once.
    sends.push({ arrival: ts, reading: { sensor: 'sensor-01', ts, value: raw01(20 + (ts - t0) / 10_000 + noise()) } });
    const other = ts + 100;
    const value = other === failedAt ? Number.NaN : 35 - (other - t0) / 20_000 + noise() + (other === spikeAt ? 6 : 0);
    sends.push({ arrival: other, reading: { sensor: 'sensor-02', ts: other, value } });
  }
  const delayed = new Map([
    [outOfOrderAt, 1_300],
    [lateAt, 7_500],
  ]);
  return sends
    .map((send) => ({ ...send, arrival: send.arrival + (send.reading.sensor === 'sensor-01' ? (delayed.get(send.reading.ts) ?? 0) : 0) }))
    .sort((a, b) => a.arrival - b.arrival);
}

/**
 * The windows the pipeline must report, per DESIGN.md: per sensor, `[k s, k s + 10 s)` for every
 * window holding a reading; a reading counts in a window unless it arrived once the task's stream
 * time (the largest timestamp it had seen) had reached the window's end + grace.
 */
function expectedWindows(sends: readonly Send[]) {
  const valid = sends.filter((send) => Number.isFinite(send.reading.value));
  const accepted: Array<{ reading: Reading; streamTime: number }> = [];
  let streamTime = -Infinity;
  for (const { reading } of valid) {
    streamTime = Math.max(streamTime, reading.ts);
    accepted.push({ reading, streamTime });
  }
  const windows: Array<{ sensor: string; windowStart: number; windowEnd: number; n: number }> = [];
  const missed: Array<{ sensor: string; ts: number; windowStart: number; windowEnd: number }> = [];
  for (const sensor of ['sensor-01', 'sensor-02']) {
    const mine = accepted.filter(({ reading }) => reading.sensor === sensor);
    const timestamps = mine.map(({ reading }) => reading.ts);
    const first = Math.floor(Math.min(...timestamps) / 1_000) * 1_000 - 9_000;
    const last = Math.floor(Math.max(...timestamps) / 1_000) * 1_000;
    for (let windowStart = first; windowStart <= last; windowStart += 1_000) {
      const windowEnd = windowStart + 10_000;
      let n = 0;
      for (const { reading, streamTime: seen } of mine) {
        if (reading.ts < windowStart || reading.ts >= windowEnd) continue;
        if (windowEnd + 2_000 <= seen) missed.push({ sensor, ts: reading.ts, windowStart, windowEnd });
        else n++;
      }
      if (n > 0) windows.push({ sensor, windowStart, windowEnd, n });
    }
  }
  return { windows, missed };
}

describe('sensors pipeline', () => {
  let driver: TestDriver | undefined;
  afterEach(async () => {
    await driver?.stop();
    driver = undefined;
  });

  it('predicts per sensor and window, flags the spike and reports the late reading', async () => {
    const sends = scenario();
    const app = buildSensorsApp();
    driver = await TestDriver.start(app, { startTime: t0 });
    await driver.send(topics.sensors, sensor01, { key: 'sensor-01' });
    for (const { arrival, reading } of sends) {
      await driver.advanceTime(arrival - driver.now());
      await driver.send(topics.readings, reading, { key: reading.sensor });
    }
    // The sensors go quiet: after the idle timeout (5 s) stream time follows the clock, past the
    // last window's end + grace (12 s after the last reading), so every window closes.
    await driver.advanceTime('20s');

    const records = driver.read<Prediction>(topics.predictions);
    const predictions = records.map((record) => record.value);
    const { windows, missed } = expectedWindows(sends);

    // Windows are 10 s long and 1 s apart, keyed by sensor at timestamp end - 1, and each n
    // matches the count computed from what was sent.
    for (const record of records) {
      expect(record.key).toBe(record.value.sensor);
      expect(record.timestamp).toBe(record.value.windowEnd - 1);
      expect(record.value.windowEnd - record.value.windowStart).toBe(sensorWindow.sizeMs);
    }
    for (const sensor of ['sensor-01', 'sensor-02']) {
      const starts = predictions.filter((prediction) => prediction.sensor === sensor).map((prediction) => prediction.windowStart);
      expect(starts.length).toBeGreaterThan(30);
      // In window order per key, one window per second.
      expect(starts.slice(1).map((start, index) => start - starts[index]!)).toEqual(starts.slice(1).map(() => sensorWindow.slideMs));
    }
    const byWindow = (a: { sensor: string; windowStart: number }, b: { sensor: string; windowStart: number }) =>
      a.sensor.localeCompare(b.sensor) || a.windowStart - b.windowStart;
    expect(predictions.map(({ sensor, windowStart, windowEnd, n }) => ({ sensor, windowStart, windowEnd, n })).sort(byWindow)).toEqual(windows);

    // The spike is flagged once: by the window whose latest second holds it, on sensor-02 only.
    const flagged = predictions.filter((prediction) => prediction.anomaly);
    expect(flagged.map(({ sensor, windowStart, windowEnd, reason }) => ({ sensor, windowStart, windowEnd, reason }))).toEqual([
      { sensor: 'sensor-02', windowStart: t0 + 6_000, windowEnd: t0 + 16_000, reason: 'spike' },
    ]);
    expect(flagged[0]!.score).toBeGreaterThan(20);

    // Predictions carry the location; the calibrated sensor-01 and the raw sensor-02 both
    // follow their trend.
    for (const prediction of predictions) expect(prediction.location).toBe(prediction.sensor === 'sensor-01' ? 'plant-a/roof' : 'unknown');
    for (const prediction of predictions.filter((candidate) => candidate.n >= 40)) {
      const seconds = (prediction.windowEnd + 1_000 - t0) / 1_000;
      const trend = prediction.sensor === 'sensor-01' ? 20 + seconds / 10 : 35 - seconds / 20;
      expect(Math.abs(prediction.forecast - trend)).toBeLessThan(0.5);
    }

    // The late reading is reported once per window it missed; the out-of-order one is not late.
    const notices = driver.read<LateReadingNotice>(topics.lateReadings).map((record) => record.value);
    expect(missed.length).toBeGreaterThan(0);
    expect(missed.every((window) => window.ts === lateAt)).toBe(true);
    expect(notices.map(({ sensor, ts, windowStart, windowEnd }) => ({ sensor, ts, windowStart, windowEnd }))).toEqual(missed);
    expect(app.metrics()).toMatchObject({ lateRecords: 1, deadLetters: 0, windowsOpen: 0, windowsClosed: predictions.length });

    // The failed read was filtered out, not dead-lettered.
    expect(driver.read(deadLetterTopic(app.id))).toEqual([]);
  });
});
