/** Counters of one app instance; `app.metrics()` returns a snapshot. */
export interface MetricsSnapshot {
  recordsIn: number;
  recordsOut: number;
  windowsOpen: number;
  windowsClosed: number;
  lateRecords: number;
  deadLetters: number;
  handlerQueueDepth: number;
  stateCacheBytes: number;
  restoredRecords: number;
  restoreRemaining: number;
  tasks: number;
  streamTime: Record<string, number>;
}

/** Mutable counters shared by the tasks of an app. */
export class Metrics {
  recordsIn = 0;
  recordsOut = 0;
  windowsClosed = 0;
  lateRecords = 0;
  deadLetters = 0;
}
