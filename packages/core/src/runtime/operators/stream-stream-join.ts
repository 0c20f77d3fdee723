import type { Observable } from 'rxjs';
import type { Node } from '../../dsl/graph.js';
import { CachingStore, keyId, type CachedEntry } from '../../state/caching-store.js';
import type { StatefulOperator, TaskContext } from '../context.js';
import { KeyDeadlines } from '../deadlines.js';
import { SignalInput } from '../operator.js';
import { record, type RecordSignal, type Signal } from '../signals.js';

type StreamJoinNode = Extract<Node, { kind: 'streamJoin' }>;

/** A buffered record of one side: its timestamp, arrival order, value, and whether it met a partner. */
type Buffered = [timestamp: number, sequence: number, value: unknown, matched: boolean];

interface JoinKeyState extends CachedEntry {
  readonly key: unknown;
  /** Each side's records within reach of a partner, sorted by timestamp (then arrival). */
  left: Buffered[];
  right: Buffered[];
  /** The stream time at which the key's earliest record leaves its buffer. */
  due: number | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The first index of `buffer` whose timestamp is at least `timestamp` (binary search). */
function firstAtOrAfter(buffer: readonly Buffered[], timestamp: number): number {
  let low = 0;
  let high = buffer.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (buffer[middle]![0] < timestamp) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Windowed stream–stream join: each pair of records of one key, one from each side, whose
 * timestamps differ by at most `within` is joined once, when the second of them arrives (output
 * timestamp: the later of the two). Each side's records stay in a buffer (a changelogged store)
 * until stream time passes their timestamp + within + grace; a record that leaves it without
 * a partner is emitted then, with `undefined` for the other side, by a left join (left records)
 * or an outer join (both sides). A record that arrives more than `grace` behind stream time is
 * late (counted in `lateRecords`): it joins only the partners still buffered, and is dropped if
 * its own join window has closed. Finding a record's partners is a binary search in the other side's buffer,
 * so a record costs its matches, not the buffer's length.
 */
export function streamStreamJoin(context: TaskContext, node: StreamJoinNode, left: Observable<Signal>, right: Observable<Signal>): Observable<Signal> {
  const { withinMs, graceMs, mode, joiner, storeName } = node;
  const storeKey = (key: unknown) => encoder.encode(JSON.stringify(key));
  let sequence = 0;

  const deadlines: KeyDeadlines<JoinKeyState> = new KeyDeadlines((state) => keys.holds(state));
  const keys = new CachingStore<JoinKeyState>(context.cache, () => context.storeOf(storeName), {
    encode(state, into) {
      if (state.left.length === 0 && state.right.length === 0) {
        into.push({ key: storeKey(state.key), value: null });
        return 0;
      }
      const value = encoder.encode(JSON.stringify([state.left, state.right]));
      into.push({ key: storeKey(state.key), value });
      return value.length;
    },
    async load(state, below) {
      const stored = await below.get(storeKey(state.key));
      [state.left, state.right] = stored === undefined ? [[], []] : (JSON.parse(decoder.decode(stored)) as [Buffered[], Buffered[]]);
      return stored?.length ?? 0;
    },
    unload(state) {
      state.left = [];
      state.right = [];
    },
  });

  const schedule = (state: JoinKeyState) => {
    const first = Math.min(state.left[0]?.[0] ?? Infinity, state.right[0]?.[0] ?? Infinity);
    // The first stream time past the earliest record's timestamp + within + grace.
    const due = first === Infinity ? undefined : first + withinMs + graceMs + 1;
    if (due === undefined) {
      state.due = undefined;
      keys.delete(state);
      return;
    }
    if (due !== state.due) {
      state.due = due;
      deadlines.push(due, state);
    }
  };

  const operator: StatefulOperator = {
    storeName,
    store: keys,
    hasDue: (streamTime) => deadlines.hasDue(streamTime),
    nextDeadline: () => deadlines.next(),
    openWindows: () => 0,
    async restore(entries) {
      for await (const [keyBytes, value] of entries) {
        const key = JSON.parse(decoder.decode(keyBytes)) as unknown;
        const [leftBuffer, rightBuffer] = JSON.parse(decoder.decode(value)) as [Buffered[], Buffered[]];
        for (const buffered of [...leftBuffer, ...rightBuffer]) if (buffered[1] >= sequence) sequence = buffered[1] + 1;
        const state: JoinKeyState = { key, id: keyId(key), left: leftBuffer, right: rightBuffer, due: undefined, bytes: 0, lastUsed: 0, evicted: false };
        keys.restored(state, value.length);
        schedule(state);
        keys.evictIfOverBudget(state);
      }
    },
    async load(recordKeys, streamTime) {
      if (!keys.hasEvicted()) return;
      await keys.loadKeys(recordKeys);
      for (const state of keys.values()) if (state.evicted && state.due !== undefined && state.due <= streamTime) await keys.load(state);
    },
    async query(key) {
      const state = await keys.read(key);
      return state && { left: state.left.map(([timestamp, , value]) => ({ timestamp, value })), right: state.right.map(([timestamp, , value]) => ({ timestamp, value })) };
    },
    async *queryAll() {
      for await (const state of keys.readAll()) yield [state.key, { left: state.left.length, right: state.right.length }] as const;
    },
  };
  context.register(operator);

  const output = new SignalInput();
  const emitJoined = (key: unknown, leftValue: unknown, rightValue: unknown, timestamp: number, signal: RecordSignal | undefined) => {
    try {
      output.next(record(key, joiner(leftValue, rightValue, key), timestamp, signal?.origin));
    } catch (error) {
      context.fail(error, signal, `join ${storeName}`);
    }
  };

  /** Buffers a record of one side and joins it with the other side's records in reach. */
  const arrive = (side: 'left' | 'right', signal: RecordSignal) => {
    const { key, value, timestamp } = signal;
    const streamTime = context.streamTime();
    // Later than grace allows: partners it had may have left their buffers already. Counted late;
    // joined with those still there, unless its own window has closed too (then dropped).
    if (timestamp + graceMs < streamTime) {
      context.metrics.lateRecords++;
      if (timestamp + withinMs + graceMs < streamTime) return;
    }
    const id = keyId(key);
    let state = keys.get(id);
    const created = !state;
    if (!state) state = { key, id, left: [], right: [], due: undefined, bytes: 0, lastUsed: 0, evicted: false };
    if (state.evicted) throw new Error(`join state of key ${JSON.stringify(key)} was not loaded before its record`);
    const own = side === 'left' ? state.left : state.right;
    const other = side === 'left' ? state.right : state.left;
    const buffered: Buffered = [timestamp, sequence++, value, false];
    for (let index = firstAtOrAfter(other, timestamp - withinMs); index < other.length && other[index]![0] <= timestamp + withinMs; index++) {
      const partner = other[index]!;
      partner[3] = true;
      buffered[3] = true;
      const at = Math.max(timestamp, partner[0]);
      if (side === 'left') emitJoined(key, value, partner[2], at, signal);
      else emitJoined(key, partner[2], value, at, signal);
    }
    // In-order records append; an earlier one goes to its place.
    const position = own.length === 0 || own[own.length - 1]![0] <= timestamp ? own.length : firstAtOrAfter(own, timestamp + 1);
    own.splice(position, 0, buffered);
    if (created) keys.add(state);
    keys.use(state);
    keys.changed(state);
    schedule(state);
  };

  /** Records whose join window has closed leave their buffers; the unmatched ones a left or outer join emits. */
  const expire = (streamTime: number) => {
    for (let state = deadlines.popDue(streamTime); state; state = deadlines.popDue(streamTime)) {
      if (state.evicted) throw new Error(`join state of key ${JSON.stringify(state.key)} was not loaded before its deadline`);
      const closedBefore = streamTime - withinMs - graceMs;
      for (const side of ['left', 'right'] as const) {
        const buffer = side === 'left' ? state.left : state.right;
        let leaving = 0;
        while (leaving < buffer.length && buffer[leaving]![0] < closedBefore) {
          const [timestamp, , value, matched] = buffer[leaving]!;
          if (!matched && (mode === 'outer' || (mode === 'left' && side === 'left'))) {
            if (side === 'left') emitJoined(state.key, value, undefined, timestamp, undefined);
            else emitJoined(state.key, undefined, value, timestamp, undefined);
          }
          leaving++;
        }
        if (leaving > 0) buffer.splice(0, leaving);
      }
      keys.changed(state);
      state.due = undefined;
      schedule(state);
    }
  };

  const guarded = (work: () => void, signal: Signal) => {
    try {
      work();
    } catch (error) {
      context.fail(error, signal, `join ${storeName}`);
    }
  };
  left.subscribe((signal) => {
    if (signal.type === 'record') guarded(() => arrive('left', signal), signal);
    else if (signal.type === 'tick') {
      guarded(() => expire(signal.streamTime), signal);
      output.next(signal);
    }
  });
  right.subscribe((signal) => {
    if (signal.type === 'record') guarded(() => arrive('right', signal), signal);
  });
  return output;
}

