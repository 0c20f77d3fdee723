/**
 * An existing-style Node HTTP service with Eddy embedded, and no Kafka: POST /events feeds a
 * pipeline through `app.sendBatch()` (202 once the events are on disk), GET /stats/:key serves the
 * live per-key aggregates from `app.store()`, GET /windows/:key the open one-minute windows, GET
 * /ready answers 200 only while `app.health()` is ok (a readiness probe), and an app that stops on
 * its own is reported (`app.on('error')`). The log and the state live under one directory
 * (`levelTransport` + `levelState`): a restart, even after a kill, picks up where it stopped.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createApp, type App, type AppOptions } from '@eddy/core';
import { levelState, levelTransport } from '@eddy/state';

/** What clients post. */
export interface PageView {
  page: string;
  user: string;
  durationMs: number;
  ts?: number;
}

/** The per-page figures the service keeps. */
export interface PageStats {
  views: number;
  totalDurationMs: number;
  users: Record<string, number>;
}

/** Declares the service's pipeline on an app: running per-page stats and one-minute view counts. */
export function declarePipeline(app: App): void {
  const views = app
    .from<PageView>('page-views', { timestamp: (view) => view.ts ?? Number.NaN })
    .filter((view) => typeof view.page === 'string' && Number.isFinite(view.durationMs))
    .keyBy((view) => view.page, { name: 'by-page' });
  views.aggregate<PageStats>(
    {
      init: () => ({ views: 0, totalDurationMs: 0, users: {} }),
      add: (stats, view) => ({
        views: stats.views + 1,
        totalDurationMs: stats.totalDurationMs + view.durationMs,
        users: { ...stats.users, [view.user]: (stats.users[view.user] ?? 0) + 1 },
      }),
    },
    { name: 'page-stats' },
  );
  views.tumbling('1m', { name: 'views-per-minute', grace: '10s' }).count().toStream().to('views-per-minute');
}

/** Options of {@link startService}. */
export interface ServiceOptions {
  port?: number;
  stateDir: string;
  app?: Partial<AppOptions>;
}

/** A running service: its HTTP server, its Eddy app, and a stop that closes both. */
export interface RunningService {
  readonly server: Server;
  readonly app: App;
  readonly url: string;
  stop(): Promise<void>;
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > 1_000_000) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
}

function reply(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

/** Starts the app, then the HTTP server. */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const app = createApp({
    id: 'page-stats-service',
    transport: levelTransport({ dir: options.stateDir }),
    state: levelState({ dir: options.stateDir }),
    ...options.app,
  });
  declarePipeline(app);
  // The pipeline stopped on its own: /ready says so from now on, and the operator learns why.
  app.on('error', (error) => process.stderr.write(`page stats pipeline failed (${error.code}): ${error.message}\n`));
  await app.start();

  const server = createServer((request, response) => {
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const [, resource, key] = url.pathname.split('/');
      if (request.method === 'POST' && resource === 'events') {
        let body: unknown;
        try {
          body = await readJson(request);
        } catch (error) {
          reply(response, 400, { error: `invalid JSON: ${(error as Error).message}` });
          return;
        }
        const events = (Array.isArray(body) ? body : [body]) as PageView[];
        // One write for the request: all of it is on disk when the client hears 202, or none was promised.
        await app.sendBatch('page-views', events.map((event) => ({ value: event, key: event?.page, timestamp: event?.ts })));
        reply(response, 202, { accepted: events.length });
      } else if (request.method === 'GET' && resource === 'stats' && key) {
        const stats = await app.store('page-stats').get(decodeURIComponent(key));
        reply(response, stats === undefined ? 404 : 200, stats ?? { error: 'unknown page' });
      } else if (request.method === 'GET' && resource === 'stats') {
        reply(response, 200, await app.store('page-stats').range());
      } else if (request.method === 'GET' && resource === 'windows' && key) {
        reply(response, 200, await app.store('views-per-minute').get(decodeURIComponent(key)));
      } else if (request.method === 'GET' && resource === 'ready') {
        const health = app.health();
        reply(response, health.status === 'ok' ? 200 : 503, health);
      } else if (request.method === 'GET' && resource === 'metrics') {
        response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        response.end(app.metrics('prometheus'));
      } else {
        reply(response, 404, { error: 'not found' });
      }
    })().catch((error: unknown) => reply(response, 500, { error: String(error) }));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    server,
    app,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.stop();
    },
  };
}
