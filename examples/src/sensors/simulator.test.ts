import { describe, expect, it } from 'vitest';
import { scoreDetections } from './scoring.js';
import { enrich } from './pipeline.js';
import { locations, simulate } from './simulator.js';
import type { Prediction } from './types.js';

describe('sensor simulator', () => {
  const simulation = simulate({ sensors: 5, durationMs: 3 * 60_000, seed: 3 });

  it('is deterministic for a seed', () => {
    expect(simulate({ sensors: 5, durationMs: 3 * 60_000, seed: 3 })).toEqual(simulation);
    expect(simulate({ sensors: 5, durationMs: 3 * 60_000, seed: 4 }).deliveries).not.toEqual(simulation.deliveries);
  });

  it('delivers in arrival order, never before a reading is measured, every 100–250 ms per sensor', () => {
    const { deliveries } = simulation;
    expect(deliveries.length).toBe(simulation.counts.readings);
    for (let index = 1; index < deliveries.length; index++) expect(deliveries[index]!.arrival).toBeGreaterThanOrEqual(deliveries[index - 1]!.arrival);
    for (const delivery of deliveries) {
      const delay = delivery.arrival - delivery.reading.ts;
      if (delivery.delivery === 'on-time') expect(delay).toBe(0);
      if (delivery.delivery === 'out-of-order') {
        expect(delay).toBeGreaterThan(0);
        expect(delay).toBeLessThanOrEqual(1_500);
      }
      if (delivery.delivery === 'late') expect(delay).toBeGreaterThanOrEqual(4_000);
    }
    for (const sensor of simulation.sensors) {
      const times = deliveries.filter((delivery) => delivery.reading.sensor === sensor).map((delivery) => delivery.reading.ts).sort((a, b) => a - b);
      const gaps = times.slice(1).map((ts, index) => ts - times[index]!);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(100);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(250);
    }
    expect(simulation.counts.late).toBe(12);
    expect(deliveries.filter((delivery) => delivery.delivery === 'late')).toHaveLength(12);
  });

  it('records every injected fault over the faulty readings', () => {
    expect(simulation.anomalies.length).toBeGreaterThanOrEqual(simulation.sensors.length);
    for (const fault of simulation.anomalies) {
      const faulty = simulation.deliveries.filter((delivery) => delivery.reading.sensor === fault.sensor && delivery.reading.ts >= fault.start && delivery.reading.ts < fault.end);
      expect(faulty.length).toBeGreaterThan(0);
      // Faulty readings arrive on time, so a real-time detector can see them.
      expect(faulty.every((delivery) => delivery.delivery === 'on-time' && Number.isFinite(delivery.reading.value))).toBe(true);
      if (fault.kind === 'stuck') expect(new Set(faulty.map((delivery) => delivery.reading.value)).size).toBe(1);
    }
  });

  it('gives every sensor a calibration and a location, and sends raw values that calibrate to the simulated ones', () => {
    expect(Object.keys(simulation.metadata)).toEqual(simulation.sensors);
    const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
    let largestCorrection = 0;
    for (const sensor of simulation.sensors) {
      const info = simulation.metadata[sensor]!;
      expect(locations).toContain(info.location);
      const readings = simulation.deliveries.filter((delivery) => delivery.reading.sensor === sensor && Number.isFinite(delivery.reading.value)).map((delivery) => delivery.reading);
      // Simulated values have a level of 15–25 and a daily cycle of at most ±4.5 (plus drift):
      // calibrated, their mean lands there; raw, only if offset and scale happen to cancel out.
      const calibrated = mean(readings.map((reading) => enrich(reading, info).value));
      expect(calibrated).toBeGreaterThan(10);
      expect(calibrated).toBeLessThan(30);
      largestCorrection = Math.max(largestCorrection, Math.abs(calibrated - mean(readings.map((reading) => reading.value))));
    }
    expect(largestCorrection).toBeGreaterThan(1);
  });
});

describe('detection scoring', () => {
  const prediction = (sensor: string, windowEnd: number, anomaly: boolean): Prediction => ({
    sensor,
    location: 'lab',
    windowStart: windowEnd - 10_000,
    windowEnd,
    n: 50,
    mean: 0,
    forecast: 0,
    anomaly,
    score: anomaly ? 10 : 0,
    reason: anomaly ? 'spike' : null,
  });

  it('counts flagged windows whose latest second meets a fault of their sensor, and faults found', () => {
    const anomalies = [
      { sensor: 'a', kind: 'spike', start: 15_100, end: 15_101 },
      { sensor: 'a', kind: 'stuck', start: 30_000, end: 40_000 },
      { sensor: 'b', kind: 'dropout', start: 20_000, end: 22_000 },
    ] as const;
    const score = scoreDetections(
      [
        prediction('a', 16_000, true), // latest second [15 s, 16 s) holds the spike
        prediction('a', 17_000, false),
        prediction('a', 40_500, true), // within a second after the stuck stretch
        prediction('b', 16_000, true), // nothing on b then: a false alarm
      ],
      anomalies,
    );
    expect(score).toMatchObject({ flagged: 3, truePositives: 2, precision: 2 / 3, injected: 3, detected: 2, recall: 2 / 3 });
    expect(score.missed).toEqual([anomalies[2]]);
    expect(score.byKind).toEqual({ spike: { injected: 1, detected: 1 }, stuck: { injected: 1, detected: 1 }, dropout: { injected: 1, detected: 0 } });
    expect(score.medianDelayMs).toBe(10_500);
  });
});
