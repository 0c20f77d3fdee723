import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryTransport, silentLogger } from '@eddy/core';
import { startService, type PageView } from './service.js';
import { startServiceProcess } from './service-process.js';

const directories: string[] = [];
afterAll(async () => Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true }))));

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('condition not met in time');
}

describe('the embedded service', () => {
  it('takes events over HTTP, serves live aggregates, and keeps them across a restart', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'eddy-service-'));
    directories.push(stateDir);
    const transport = memoryTransport();
    const options = { stateDir, app: { transport, logger: silentLogger } };
    const views: PageView[] = [
      { page: '/home', user: 'ann', durationMs: 1200, ts: 1_000 },
      { page: '/home', user: 'bob', durationMs: 800, ts: 2_000 },
      { page: '/docs', user: 'ann', durationMs: 5000, ts: 3_000 },
      { page: '/home', user: 'ann', durationMs: 400, ts: 61_000 },
    ];
    let service = await startService(options);
    const post = (body: unknown) => fetch(`${service.url}/events`, { method: 'POST', body: JSON.stringify(body) });
    const ready = await fetch(`${service.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', reasons: [] });

    expect((await post(views.slice(0, 3))).status).toBe(202);
    await until(async () => (await fetch(`${service.url}/stats/%2Fhome`)).status === 200);
    await transport.idle();
    expect(await (await fetch(`${service.url}/stats/%2Fhome`)).json()).toEqual({ views: 2, totalDurationMs: 2000, users: { ann: 1, bob: 1 } });
    expect(await (await fetch(`${service.url}/windows/%2Fhome`)).json()).toEqual([{ start: 0, end: 60_000, value: 2 }]);
    expect((await fetch(`${service.url}/stats/%2Fnope`)).status).toBe(404);
    expect((await post('{broken')).status).toBe(202);
    const malformed = await fetch(`${service.url}/events`, { method: 'POST', body: '{not json' });
    expect(malformed.status).toBe(400);

    await service.stop();
    service = await startService(options);
    expect((await post(views[3])).status).toBe(202);
    await transport.idle();
    expect(await (await fetch(`${service.url}/stats/%2Fhome`)).json()).toEqual({ views: 3, totalDurationMs: 2400, users: { ann: 2, bob: 1 } });
    const all = (await (await fetch(`${service.url}/stats`)).json()) as Array<{ key: string }>;
    expect(all.map((row) => row.key)).toEqual(['/docs', '/home']);
    expect(await (await fetch(`${service.url}/metrics`)).text()).toContain('eddy_records_in_total');
    expect(await (await fetch(`${service.url}/windows/%2Fnobody`)).json()).toEqual([]);
    await service.app.stop();
    // The pipeline is gone while the server still answers: the readiness probe says so.
    const notReady = await fetch(`${service.url}/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ status: 'failed', reasons: ['the app is stopped'] });
    await service.stop();
  });
});

describe('the embedded service as a process', () => {
  it('keeps every accepted event across a SIGTERM and a SIGKILL, with its state and open windows', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'eddy-service-process-'));
    directories.push(stateDir);
    let service = await startServiceProcess(stateDir);
    const post = async (body: unknown) => (await fetch(`${service.url}/events`, { method: 'POST', body: JSON.stringify(body) })).status;
    const stats = async (page: string) => (await (await fetch(`${service.url}/stats/${encodeURIComponent(page)}`)).json()) as { views: number };
    const settled = async (page: string, views: number) => until(async () => (await stats(page)).views === views);
    try {
      expect(await post([
        { page: '/home', user: 'ann', durationMs: 100, ts: 1_000 },
        { page: '/home', user: 'bob', durationMs: 200, ts: 2_000 },
        { page: '/docs', user: 'ann', durationMs: 300, ts: 3_000 },
      ])).toBe(202);
      await settled('/home', 2);

      expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      service = await startServiceProcess(stateDir);
      expect(await stats('/home')).toMatchObject({ views: 2, users: { ann: 1, bob: 1 } });
      // Its stores came back from their local checkpoint: nothing to read from the changelog.
      expect(await (await fetch(`${service.url}/metrics`)).text()).toMatch(/^eddy_restored_records_total\{[^}]*\} 0$/m);

      // Accepted, then killed before anything was committed: the event is on disk, and counted after the restart.
      expect(await post({ page: '/home', user: 'cat', durationMs: 400, ts: 4_000 })).toBe(202);
      expect((await service.stop('SIGKILL')).signal).toBe('SIGKILL');
      service = await startServiceProcess(stateDir);
      await settled('/home', 3);
      expect(await stats('/home')).toMatchObject({ views: 3, totalDurationMs: 700, users: { ann: 1, bob: 1, cat: 1 } });
      // The open one-minute window survived both stops.
      expect(await (await fetch(`${service.url}/windows/%2Fhome`)).json()).toEqual([{ start: 0, end: 60_000, value: 3 }]);
      expect(service.stderr()).toBe('');
    } finally {
      await service.stop('SIGTERM');
    }
  });
});
