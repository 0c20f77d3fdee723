/** The records of the sensors example, as they travel on its topics (JSON). */

/** One measurement of one sensor: the value of topic `readings`. */
export interface Reading {
  /** Sensor id, e.g. `sensor-07`; the partitioning and window key. */
  readonly sensor: string;
  /** Event time: when the sensor measured, epoch ms. */
  readonly ts: number;
  /** The measured value, raw (before calibration); a failed read is `NaN` (JSON `null` on the wire) and is filtered out. */
  readonly value: number;
}

/** One sensor's metadata: the value of topic `sensors` (a table), keyed by sensor id. */
export interface SensorInfo {
  /** Where the sensor is, e.g. `plant-a/boiler-room`. */
  readonly location: string;
  /** Turns a raw value into the measured quantity: `raw * scale + offset`. */
  readonly calibration: { readonly offset: number; readonly scale: number };
}

/** A reading after the join with its sensor's {@link SensorInfo}: what the windows collect. */
export interface EnrichedReading extends Reading {
  /** The calibrated value; the raw one when the sensor has no metadata. */
  readonly value: number;
  /** The sensor's location; {@link unknownLocation} when the sensor has no metadata. */
  readonly location: string;
}

/** The location of a reading whose sensor has no metadata in the `sensors` table. */
export const unknownLocation = 'unknown';

/** Why a window was flagged. */
export type AnomalyReason = 'spike' | 'flatline';

/** The model's verdict on one closed window: the value of topic `predictions`. */
export interface Prediction {
  readonly sensor: string;
  /** The sensor's location, as of the window's latest reading. */
  readonly location: string;
  /** The window `[windowStart, windowEnd)`, epoch ms. */
  readonly windowStart: number;
  readonly windowEnd: number;
  /** Readings in the window. */
  readonly n: number;
  /** Mean of the window's (calibrated) readings. */
  readonly mean: number;
  /** The least-squares linear trend of the window, extrapolated to `windowEnd + 1 s`. */
  readonly forecast: number;
  /** True when the window's latest readings break from the rest of the window. */
  readonly anomaly: boolean;
  /** The largest robust z-score of the latest readings against the window's robust trend. */
  readonly score: number;
  /** What was found, when `anomaly` is true. */
  readonly reason: AnomalyReason | null;
}

/** A notice on topic `late-readings`: a reading that arrived after a window it belongs to had closed. */
export interface LateReadingNotice {
  readonly sensor: string;
  /** The reading's event time. */
  readonly ts: number;
  /** The calibrated value. */
  readonly value: number;
  /** The closed window it missed. */
  readonly windowStart: number;
  readonly windowEnd: number;
}

/** The kinds of fault the simulator injects. */
export type FaultKind = 'spike' | 'dropout' | 'stuck';

/** A fault the simulator injected: the readings of `sensor` with `start <= ts < end` are faulty. */
export interface InjectedAnomaly {
  readonly sensor: string;
  readonly kind: FaultKind;
  readonly start: number;
  readonly end: number;
}
