import type { FaultKind, InjectedAnomaly, Prediction } from './types.js';

/** How the flagged windows compare with the injected faults. */
export interface DetectionScore {
  /** Predictions with `anomaly: true`. */
  readonly flagged: number;
  /** Flagged predictions that point at an injected fault of their sensor. */
  readonly truePositives: number;
  readonly falsePositives: readonly Prediction[];
  readonly precision: number;
  readonly injected: number;
  /** Injected faults pointed at by at least one flagged prediction. */
  readonly detected: number;
  readonly missed: readonly InjectedAnomaly[];
  readonly recall: number;
  /** Per fault kind: injected and detected. */
  readonly byKind: Readonly<Record<FaultKind, { injected: number; detected: number }>>;
  /** Median event time from a fault's first reading to the end of the first window that flags it. */
  readonly medianDelayMs: number;
}

/**
 * Scores predictions against the injected faults. A window judges its latest `slideMs` of
 * readings, so a flagged prediction is right when that slice, `[windowEnd - slideMs, windowEnd)`,
 * overlaps a fault of its sensor, the fault extended by `slideMs`: the first good reading after a
 * stuck or dropped-out stretch steps away from it and is a symptom of the same fault.
 */
export function scoreDetections(predictions: readonly Prediction[], anomalies: readonly InjectedAnomaly[], slideMs = 1_000): DetectionScore {
  const bySensor = new Map<string, InjectedAnomaly[]>();
  for (const anomaly of anomalies) {
    let list = bySensor.get(anomaly.sensor);
    if (!list) bySensor.set(anomaly.sensor, (list = []));
    list.push(anomaly);
  }
  const firstFlag = new Map<InjectedAnomaly, number>();
  const falsePositives: Prediction[] = [];
  let flagged = 0;
  for (const prediction of predictions) {
    if (!prediction.anomaly) continue;
    flagged++;
    const from = prediction.windowEnd - slideMs;
    const to = prediction.windowEnd;
    const matches = (bySensor.get(prediction.sensor) ?? []).filter((anomaly) => from < anomaly.end + slideMs && anomaly.start < to);
    if (matches.length === 0) falsePositives.push(prediction);
    for (const anomaly of matches) {
      const first = firstFlag.get(anomaly);
      if (first === undefined || prediction.windowEnd < first) firstFlag.set(anomaly, prediction.windowEnd);
    }
  }
  const byKind: Record<FaultKind, { injected: number; detected: number }> = {
    spike: { injected: 0, detected: 0 },
    dropout: { injected: 0, detected: 0 },
    stuck: { injected: 0, detected: 0 },
  };
  const delays: number[] = [];
  const missed: InjectedAnomaly[] = [];
  for (const anomaly of anomalies) {
    byKind[anomaly.kind].injected++;
    const first = firstFlag.get(anomaly);
    if (first === undefined) {
      missed.push(anomaly);
      continue;
    }
    byKind[anomaly.kind].detected++;
    delays.push(first - anomaly.start);
  }
  delays.sort((a, b) => a - b);
  const truePositives = flagged - falsePositives.length;
  return {
    flagged,
    truePositives,
    falsePositives,
    precision: flagged === 0 ? 1 : truePositives / flagged,
    injected: anomalies.length,
    detected: anomalies.length - missed.length,
    missed,
    recall: anomalies.length === 0 ? 1 : (anomalies.length - missed.length) / anomalies.length,
    byKind,
    medianDelayMs: delays.length === 0 ? Number.NaN : delays[delays.length >> 1]!,
  };
}
