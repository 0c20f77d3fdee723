/** Counters of one app instance; `app.metrics()` returns a snapshot. */
export interface MetricsSnapshot {
  recordsIn: number;
  recordsOut: number;
  windowsOpen: number;
  windowsClosed: number;
  lateRecords: number;
  deadLetters: number;
  /** Repartition records dropped as replays of records already applied (after a crash). */
  duplicatesDropped: number;
  /** Records handed to a local task directly instead of through their repartition topic (on Kafka). */
  recordsHandedOff: number;
  handlerQueueDepth: number;
  stateCacheBytes: number;
  restoredRecords: number;
  /** Records waiting in the input partitions of this instance's tasks. */
  lag: number;
  /** Event-loop delay since start (ms): how long callbacks waited for a busy loop. */
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  restoreRemaining: number;
  tasks: number;
  streamTime: Record<string, number>;
  /** Commits that failed (a send the log did not take, a broker that did not answer, ...), in all. */
  commitFailures: number;
  /** Per task, clock time since its last successful commit (or since it opened). */
  lastCommitAgeMs: Record<string, number>;
}

/** Mutable counters shared by the tasks of an app. */
export class Metrics {
  recordsIn = 0;
  recordsOut = 0;
  windowsClosed = 0;
  lateRecords = 0;
  deadLetters = 0;
  duplicatesDropped = 0;
  recordsHandedOff = 0;
  commitFailures = 0;
}
