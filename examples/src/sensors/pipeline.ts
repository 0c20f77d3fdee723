import { createApp, toMs, type App, type AppOptions, type WindowHandler } from '@eddy/core';
import { predict, type SensorWindow } from './model.js';
import { unknownLocation, type EnrichedReading, type LateReadingNotice, type Prediction, type Reading, type SensorInfo } from './types.js';

/** The topics of the sensors example. */
export const topics = {
  /** Input: {@link Reading} values (raw), keyed by sensor. */
  readings: 'readings',
  /** Input, read as a table: each sensor's {@link SensorInfo}, keyed by sensor. */
  sensors: 'sensors',
  /** Output: one {@link Prediction} per sensor and closed window. */
  predictions: 'predictions',
  /** Output: one {@link LateReadingNotice} per reading and closed window it missed. */
  lateReadings: 'late-readings',
} as const;

const size = '10s';
const slide = '1s';
const grace = '2s';
/** The window of the pipeline: 10 s of readings, every second, stragglers accepted for 2 s. */
export const sensorWindow = {
  size,
  slide,
  grace,
  sizeMs: toMs(size, 'window size'),
  slideMs: toMs(slide, 'window slide'),
  graceMs: toMs(grace, 'window grace'),
} as const;

/** Options of {@link buildSensorsApp}: those of `createApp` (all optional here) and the model. */
export interface SensorsAppOptions extends Partial<AppOptions> {
  /** What runs on each closed window; default the inline {@link predict}. A `workerPool(...)` works too. */
  readonly model?: WindowHandler<SensorWindow, Prediction>;
  /** Other topic names than {@link topics} (for example on a shared cluster). */
  readonly topicNames?: Partial<typeof topics>;
}

/**
 * Calibrates a raw reading with its sensor's metadata and adds the location; a sensor without
 * metadata keeps its raw value and is placed in {@link unknownLocation}.
 * @example
 * enrich({ sensor: 's1', ts: 0, value: 10 }, { location: 'roof', calibration: { offset: 1, scale: 2 } }) // value 21, location 'roof'
 */
export function enrich(reading: Reading, info: SensorInfo | undefined): EnrichedReading {
  if (info === undefined) return { ...reading, location: unknownLocation };
  const { offset, scale } = info.calibration;
  return { ...reading, value: reading.value * scale + offset, location: info.location };
}

/**
 * The flagship pipeline: each reading is calibrated and located with its sensor's metadata (the
 * `sensors` table), then per sensor, 10 s hopping windows every second; when a window closes, the
 * model turns its readings into a prediction. Readings that miss a closed window are reported.
 * Transport, state, clock, logger and the other `createApp` options pass through, so the same
 * pipeline runs in a TestDriver, on the embedded broker and on Kafka.
 *
 * @example
 * const app = buildSensorsApp({ transport: kafkaTransport({ brokers: ['localhost:9092'] }) });
 * await app.start();
 */
export function buildSensorsApp(options: SensorsAppOptions = {}): App {
  const { model = predict, topicNames, ...appOptions } = options;
  const names = { ...topics, ...topicNames };
  const app = createApp({ id: 'sensors', ...appOptions });

  const sensors = app.table<string, SensorInfo>(names.sensors);
  const windows = app
    .from<Reading>(names.readings, { timestamp: (reading) => reading.ts })
    .filter((reading) => Number.isFinite(reading.value))
    .keyBy((reading) => reading.sensor)
    // A left join: a new sensor may report before its metadata is in the table, and its readings
    // are still worth watching (raw), not silently dropped as an inner join would.
    .leftJoin(sensors, enrich)
    .hopping(sensorWindow.size, sensorWindow.slide, { grace: sensorWindow.grace })
    .collect();

  windows.onClose(model).to(names.predictions);

  windows
    .onLate(({ key, start, end, value }): LateReadingNotice => ({ sensor: key, ts: value.ts, value: value.value, windowStart: start, windowEnd: end }))
    .to(names.lateReadings);

  return app;
}
