/**
 * The two-stage pipeline of two-stage.test.ts on the embedded broker (memoryTransport): the input's
 * backlog is stepped for the windows two repartition hops downstream, and kept in step while the
 * second keyBy moves records though the first moves none.
 */
import { createApp, memoryTransport, silentLogger } from '@eddy/core';
import { expect, it } from 'vitest';
import { clicks, diff, SIZE, twoStagePipeline, twoStageReference, type Win } from './harness.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const [graceMs, keyedBy, partitions] of [[0, 'seq', 3], [10_000, 'seq', 3], [0, 'user', 3], [0, 'seq', 1]] as const) {
  it(`memoryTransport: keyBy(user).reduce.toStream.keyBy(region).tumbling, ${partitions} partition(s), in order, grace ${graceMs}, input keyed by ${keyedBy}`, async () => {
    const transport = memoryTransport({ defaultPartitions: partitions });
    const app = createApp({ id: 'two-stage', transport, idleTimeout: false, logger: silentLogger });
    twoStagePipeline(app, 'in', 'out', graceMs);
    const base = 1_000_000_000;
    const input = clicks(3, base, 3_000, 120_000, 0);
    const expected = twoStageReference(input);
    await app.sendBatch('in', input.map((c) => ({ value: c, key: keyedBy === 'seq' ? String(c.seq) : c.user, timestamp: c.ts })));
    await app.start();
    const closer = base + 3_000_000;
    await app.sendBatch('in', [...new Set(input.map((c) => c.user))].map((user, i) => ({ value: { seq: -1 - i, user, ts: closer }, key: user, timestamp: closer })));
    const dec = new TextDecoder();
    const got = () => new Map((transport.records('out') ?? []).map((r) => (r.decoded ? (r.decoded.value as Win) : (JSON.parse(dec.decode(r.value!)) as Win))).filter((w) => w.start < closer - 10 * SIZE).map((w) => [`${w.key}@${w.start}@${w.end}`, w.seqs]));
    for (let waited = 0; waited < 10_000 && got().size < expected.size; waited += 50) await sleep(50);
    await sleep(200);
    const summary = { late: app.metrics().lateRecords, windows: expected.size, got: got().size, ...diff(expected, got()) };
    await app.stop();
    expect(summary).toEqual({ late: 0, windows: expected.size, got: expected.size, missing: 0, wrong: 0, extra: 0, examples: [] });
  }, 30_000);
}
