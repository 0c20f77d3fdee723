/** Where a record came from: carried along so that dead letters can name it. */
export interface Origin {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

/** A record flowing through a task's operator graph. */
export interface RecordSignal {
  readonly type: 'record';
  readonly key: unknown;
  readonly value: unknown;
  readonly timestamp: number;
  readonly origin: Origin | undefined;
}

/** The task's stream time moved forward; window operators close what is due. */
export interface TickSignal {
  readonly type: 'tick';
  readonly streamTime: number;
}

/** A window event: a final result, an update, or a late record that missed the window. */
export interface WindowSignal {
  readonly type: 'window';
  readonly event: 'close' | 'update' | 'late';
  readonly key: unknown;
  readonly start: number;
  readonly end: number;
  readonly value: unknown;
  /** `end - 1` for results; the record's own timestamp for late records. */
  readonly timestamp: number;
  readonly origin: Origin | undefined;
}

export type Signal = RecordSignal | TickSignal | WindowSignal;

export const record = (key: unknown, value: unknown, timestamp: number, origin: Origin | undefined): RecordSignal => ({
  type: 'record',
  key,
  value,
  timestamp,
  origin,
});
