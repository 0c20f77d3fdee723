/** The records of the sensors example, as they travel on its topics (JSON). */

/** One measurement of one sensor: the value of topic `readings`. */
export interface Reading {
  /** Sensor id, e.g. `sensor-07`; the partitioning and window key. */
  readonly sensor: string;
  /** Event time: when the sensor measured, epoch ms. */
  readonly ts: number;
  /** The measured value; a failed read is `NaN` (JSON `null` on the wire) and is filtered out. */
  readonly value: number;
}

/** Why a window was flagged. */
export type AnomalyReason = 'spike' | 'flatline';

/** The model's verdict on one closed window: the value of topic `predictions`. */
export interface Prediction {
  readonly sensor: string;
  /** The window `[windowStart, windowEnd)`, epoch ms. */
  readonly windowStart: number;
  readonly windowEnd: number;
  /** Readings in the window. */
  readonly n: number;
  /** Mean of the window's readings. */
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
