import type { FaultKind, InjectedAnomaly, Reading, SensorInfo } from './types.js';
import { mulberry32 } from '@eddy/core/testing';

export { mulberry32 };

/**
 * Deterministic simulated sensors: the same options always give the same readings, faults and
 * delivery order, so the demo can score its detections against the faults it injected.
 *
 * Each sensor measures every 100–250 ms of event time a value made of a level, a daily cycle (a
 * "day" is compressed to `dayMs`), a slow linear drift and Gaussian noise. It sends it raw: each
 * sensor has its own calibration and location ({@link Simulation.metadata}, for the `sensors`
 * table), and sends `(value - offset) / scale`, so only a calibrated value is the value simulated.
 * On top of that:
 * - injected faults, recorded in {@link Simulation.anomalies}: spikes (1–3 readings far off),
 *   dropouts (1–3 s of reads near zero once calibrated) and stuck values (8–20 s frozen at the last good value);
 * - out-of-order readings: delivered 0.2–1.5 s after they were measured (inside the 2 s grace);
 * - late readings: delivered 4–9 s after they were measured (after some of their windows closed);
 * - failed reads: `NaN` values, which the pipeline filters out.
 */

/** Options of {@link simulate}. */
export interface SimulationOptions {
  /** Number of sensors. Default 20. */
  readonly sensors?: number;
  /** Event time simulated, ms. Default 10 minutes. */
  readonly durationMs?: number;
  /** Event time of the first reading, epoch ms. Default 2025-01-01T00:00:00Z. */
  readonly startTime?: number;
  /** PRNG seed. Default 42. */
  readonly seed?: number;
  /** Length of one simulated day (the period of the daily cycle), ms. Default 10 minutes. */
  readonly dayMs?: number;
  /** Readings delivered several seconds late, in total. Default 12. */
  readonly lateReadings?: number;
  /** Share of readings delivered slightly out of order. Default 0.001. */
  readonly outOfOrderRate?: number;
  /** Share of failed reads (`NaN`). Default 0.0005. */
  readonly invalidRate?: number;
}

/** One reading and when it reaches the broker (event time, ms). */
export interface Delivery {
  readonly arrival: number;
  readonly reading: Reading;
  readonly delivery: 'on-time' | 'out-of-order' | 'late';
}

/** What {@link simulate} produces. */
export interface Simulation {
  /** Every reading, in arrival order. */
  readonly deliveries: readonly Delivery[];
  /** Each sensor's metadata (calibration and location), by sensor id. */
  readonly metadata: Readonly<Record<string, SensorInfo>>;
  /** The injected faults, by sensor then time; in calibrated values. */
  readonly anomalies: readonly InjectedAnomaly[];
  readonly startTime: number;
  /** Event time after the last measurement. */
  readonly endTime: number;
  readonly sensors: readonly string[];
  readonly counts: { readonly readings: number; readonly outOfOrder: number; readonly late: number; readonly invalid: number };
}

export const defaultStartTime = Date.UTC(2025, 0, 1);

/** Where the simulated sensors are. */
export const locations = ['plant-a/boiler-room', 'plant-a/roof', 'plant-b/cold-store', 'plant-b/loading-bay', 'office/server-room'] as const;

/** Milliseconds kept free of faults and late deliveries at both ends of the stream (warm-up, flush). */
const marginMs = 20_000;

/**
 * Simulates `sensors` sensors over `durationMs` of event time.
 * @example
 * const { deliveries, anomalies } = simulate({ sensors: 20, durationMs: 10 * 60_000, seed: 7 });
 */
export function simulate(options: SimulationOptions = {}): Simulation {
  const {
    sensors: sensorCount = 20,
    durationMs = 10 * 60_000,
    startTime = defaultStartTime,
    seed = 42,
    dayMs = 10 * 60_000,
    lateReadings = 12,
    outOfOrderRate = 0.001,
    invalidRate = 0.0005,
  } = options;
  if (!Number.isInteger(sensorCount) || sensorCount < 1) throw new RangeError(`simulate: sensors must be a positive integer, got ${sensorCount}`);
  if (!(durationMs > 2 * marginMs)) throw new RangeError(`simulate: durationMs must exceed ${2 * marginMs}, got ${durationMs}`);
  const endTime = startTime + durationMs;
  const sensors = Array.from({ length: sensorCount }, (_, index) => `sensor-${String(index + 1).padStart(2, '0')}`);
  const deliveries: Array<Delivery & { order: number }> = [];
  const anomalies: InjectedAnomaly[] = [];
  const counts = { readings: 0, outOfOrder: 0, late: 0, invalid: 0 };
  /** Readings that may be delayed: not faulty, away from the stream's ends. */
  const delayable: number[] = [];
  // Metadata has its own random stream, so the readings' values and faults do not depend on it.
  const metadataRandom = mulberry32(mix(seed, -2));
  const metadata: Record<string, SensorInfo> = {};
  for (const sensor of sensors) {
    const location = pick(metadataRandom, locations);
    const calibration = { offset: round(-5 + metadataRandom() * 10), scale: round(0.8 + metadataRandom() * 0.45) };
    metadata[sensor] = { location, calibration };
  }

  sensors.forEach((sensor, sensorIndex) => {
    const random = mulberry32(mix(seed, sensorIndex));
    const level = 15 + random() * 10;
    const amplitude = 1.5 + random() * 3;
    const phase = random() * 2 * Math.PI;
    const noiseSd = 0.1 + random() * 0.2;
    const driftPerHour = (random() - 0.5) * 4;

    const times: number[] = [];
    for (let ts = startTime + Math.floor(random() * 250); ts < endTime; ts += 100 + Math.floor(random() * 151)) times.push(ts);
    const values = times.map(
      (ts) =>
        level +
        amplitude * Math.sin((2 * Math.PI * (ts - startTime)) / dayMs + phase) +
        (driftPerHour * (ts - startTime)) / 3_600_000 +
        noiseSd * gaussian(random),
    );
    const faulty = new Uint8Array(times.length);

    // One or two faults per sensor, each in its own stretch of the stream.
    const faultCount = random() < 0.5 ? 1 : 2;
    const stretchMs = (durationMs - 2 * marginMs) / faultCount;
    for (let fault = 0; fault < faultCount; fault++) {
      const at = startTime + marginMs + stretchMs * (fault + 0.2 + 0.6 * random());
      const first = times.findIndex((ts) => ts >= at);
      const kind: FaultKind = pick(random, ['spike', 'spike', 'dropout', 'stuck']);
      let last = first;
      if (kind === 'spike') {
        const sign = random() < 0.75 ? 1 : -1;
        last = first + Math.floor(random() * 3);
        for (let index = first; index <= last; index++) values[index]! += sign * (10 + random() * 10) * noiseSd;
      } else if (kind === 'dropout') {
        const until = times[first]! + 1_000 + random() * 2_000;
        while (times[last + 1]! < until) last++;
        for (let index = first; index <= last; index++) values[index] = random() * 0.5;
      } else {
        const until = times[first]! + 8_000 + random() * 12_000;
        while (times[last + 1]! < until) last++;
        const frozen = round(values[first - 1]!);
        for (let index = first; index <= last; index++) values[index] = frozen;
      }
      faulty.fill(1, first, last + 1);
      anomalies.push({ sensor, kind, start: times[first]!, end: times[last]! + 1 });
    }

    const { offset, scale } = metadata[sensor]!.calibration;
    times.forEach((ts, index) => {
      let value = round((values[index]! - offset) / scale);
      let arrival = ts;
      let delivery: Delivery['delivery'] = 'on-time';
      if (!faulty[index]) {
        if (random() < invalidRate) {
          value = Number.NaN;
          counts.invalid++;
        } else if (random() < outOfOrderRate) {
          arrival = ts + 200 + Math.floor(random() * 1_300);
          delivery = 'out-of-order';
          counts.outOfOrder++;
        } else if (ts > startTime + marginMs && ts < endTime - marginMs) {
          delayable.push(deliveries.length);
        }
      }
      deliveries.push({ arrival, reading: { sensor, ts, value }, delivery, order: deliveries.length });
    });
    counts.readings += times.length;
  });

  const random = mulberry32(mix(seed, -1));
  for (let late = 0; late < lateReadings && delayable.length > 0; late++) {
    const [index] = delayable.splice(Math.floor(random() * delayable.length), 1);
    const delivery = deliveries[index!]!;
    deliveries[index!] = { ...delivery, arrival: delivery.reading.ts + 4_000 + Math.floor(random() * 5_000), delivery: 'late' };
    counts.late++;
  }

  deliveries.sort((a, b) => a.arrival - b.arrival || a.order - b.order);
  anomalies.sort((a, b) => (a.sensor < b.sensor ? -1 : a.sensor > b.sensor ? 1 : a.start - b.start));
  return {
    deliveries: deliveries.map(({ arrival, reading, delivery }) => ({ arrival, reading, delivery })),
    metadata,
    anomalies,
    startTime,
    endTime,
    sensors,
    counts,
  };
}


/** Standard normal by Box–Muller. */
function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Derives independent seeds per stream (sensor) from one seed. */
function mix(seed: number, stream: number): number {
  return Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35);
}

function pick<T>(random: () => number, choices: readonly T[]): T {
  return choices[Math.floor(random() * choices.length)]!;
}

/** Sensors report three decimals. */
function round(value: number): number {
  return Math.round(value * 1_000) / 1_000;
}
