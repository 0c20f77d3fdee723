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
  /**
   * Times a task with several inputs stopped waiting for an empty one (`maxInputWait` ran out, or
   * too many records waited) and processed the others ahead of it, out of timestamp order.
   */
  inputWaitsExpired: number;
  /** Records the transport's log could not read back (damage on disk), skipped: see `Transport.recordsLostToDamage`. */
  recordsLostToDamage: number;
  /** Offsets of input partitions the log deleted (retention) before this instance read them, skipped. */
  recordsLostToRetention: number;
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
  inputWaitsExpired = 0;
  recordsLostToRetention = 0;
  commitFailures = 0;
}

/** A snapshot in Prometheus text format, every series labelled with the app id. */
export function prometheusText(appId: string, snapshot: MetricsSnapshot, healthy: boolean): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', value: number, help: string) => {
    lines.push(`# HELP eddy_${name} ${help}`, `# TYPE eddy_${name} ${type}`, `eddy_${name}{app="${appId}"} ${value}`);
  };
  metric('records_in_total', 'counter', snapshot.recordsIn, 'Records read from source topics.');
  metric('records_out_total', 'counter', snapshot.recordsOut, 'Records written to topics.');
  metric('windows_open', 'gauge', snapshot.windowsOpen, 'Windows holding state.');
  metric('windows_closed_total', 'counter', snapshot.windowsClosed, 'Windows closed.');
  metric('late_records_total', 'counter', snapshot.lateRecords, 'Records that missed a closed window.');
  metric('dead_letters_total', 'counter', snapshot.deadLetters, 'Records sent to the dead-letter topic.');
  metric('duplicates_dropped_total', 'counter', snapshot.duplicatesDropped, 'Replayed repartition records dropped as already applied.');
  metric('records_handed_off_total', 'counter', snapshot.recordsHandedOff, 'Records handed to a local task instead of through their repartition topic.');
  metric('input_waits_expired_total', 'counter', snapshot.inputWaitsExpired, 'Times a task processed inputs ahead of an empty one it had waited for.');
  metric('records_lost_to_damage_total', 'counter', snapshot.recordsLostToDamage, 'Records the log could not read back (damage on disk), skipped.');
  metric('records_lost_to_retention_total', 'counter', snapshot.recordsLostToRetention, 'Input offsets the log deleted before they were read, skipped.');
  metric('handler_queue_depth', 'gauge', snapshot.handlerQueueDepth, 'Handler calls and sends in flight.');
  metric('lag', 'gauge', snapshot.lag, 'Records waiting in assigned input partitions.');
  metric('event_loop_delay_p99_ms', 'gauge', snapshot.eventLoopDelayP99Ms, 'Event-loop delay, 99th percentile.');
  metric('event_loop_delay_max_ms', 'gauge', snapshot.eventLoopDelayMaxMs, 'Event-loop delay, maximum.');
  metric('restored_records_total', 'counter', snapshot.restoredRecords, 'Changelog records replayed into state.');
  metric('state_cache_bytes', 'gauge', snapshot.stateCacheBytes, 'Serialized bytes of state held in memory.');
  metric('restore_remaining', 'gauge', snapshot.restoreRemaining, 'Changelog records left to replay.');
  metric('commit_failures_total', 'counter', snapshot.commitFailures, 'Task commits that failed.');
  metric('last_commit_age_max_ms', 'gauge', Math.max(0, ...Object.values(snapshot.lastCommitAgeMs)), 'Longest time since a task last committed.');
  metric('healthy', 'gauge', healthy ? 1 : 0, 'Whether app.health() reports ok.');
  return `${lines.join('\n')}\n`;
}
