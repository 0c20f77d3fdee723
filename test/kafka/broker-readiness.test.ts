/**
 * The readiness check of scripts/src/kafka.ts on real brokers: a broker is ready only when its
 * own JVM answers. Here a broker's ports are taken after its free-port check (the race a parallel
 * run or a second `start` can lose): a plain server on its controller port, so that its JVM dies
 * with "Address already in use", and on its client port a relay to the run's broker, so that
 * another cluster answers there. Both `startKafka` and the CLI's background start must fail with
 * the broker's log line instead of declaring that other broker ready.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { freePort, kafkaDaemonStatus, startKafka, startKafkaDaemon, stopKafka } from '../../scripts/src/kafka.ts';
import { describeKafka } from './broker.ts';
import { waitFor } from './helpers.ts';

const host = '127.0.0.1';

/** Takes `port`: a relay to `target` when given (another broker answers there), else a server that hangs up at once. */
function occupy(port: number, target?: string): { listening: Promise<void>; close(): Promise<void> } {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    if (!target) return socket.destroy();
    const [targetHost, targetPort] = target.split(':');
    const upstream = connect(Number(targetPort), targetHost);
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  const listening = new Promise<void>((resolveListening, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolveListening());
  });
  return {
    listening,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    },
  };
}

/**
 * A `log` option that, once the broker's JVM is spawned (past the free-port check, before the
 * JVM binds anything), takes its ports: another broker on the client port, nothing on the
 * controller port.
 */
function clashOnceSpawned(port: number, controllerPort: number, otherBroker: string) {
  const taken: Array<ReturnType<typeof occupy>> = [];
  let pid: number | undefined;
  return {
    taken,
    pid: () => pid,
    log: (line: string) => {
      const started = /^Starting Kafka .* \(pid (\d+),/.exec(line);
      if (!started) return;
      pid = Number(started[1]);
      taken.push(occupy(port, otherBroker), occupy(controllerPort));
    },
  };
}

/** A process that has just exited may still be a moment away from being reaped. */
async function expectGone(pid: number | undefined): Promise<void> {
  expect(pid, 'the broker logged its pid').toBeTypeOf('number');
  const alive = () => {
    try {
      process.kill(pid!, 0);
      return true;
    } catch {
      return false;
    }
  };
  await waitFor(`process ${pid} to be gone`, () => !alive(), { timeoutMs: 5_000 });
}

/** The start fails, naming the cause above the log tail rather than only inside a stack trace. */
async function expectBindFailure(start: Promise<unknown>): Promise<void> {
  const error = await start.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error, 'the start fails').toBeInstanceOf(Error);
  const [headline] = (error as Error).message.split('\n--- last lines');
  expect(headline).toMatch(/^Kafka did not start: the broker exited with code \d+\n.* ERROR .*\n.*Address already in use/);
}

/** Two consecutive free ports, as the CLI's background broker uses (controller on port + 1). */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort(host);
    const next = occupy(port + 1);
    try {
      await next.listening;
      return port;
    } catch {
      // port + 1 is taken; try another.
    } finally {
      await next.close().catch(() => undefined);
    }
  }
}

describeKafka('broker readiness: another broker answering on our port is not ours', (brokers) => {
  it('startKafka fails with the broker log line when its JVM dies on a port clash while another broker answers its port', async () => {
    const port = await freePort(host);
    const controllerPort = await freePort(host, [port]);
    const clash = clashOnceSpawned(port, controllerPort, brokers[0]!);
    try {
      const started = startKafka({ port, controllerPort, log: clash.log, readyTimeoutMs: 30_000 });
      // Whatever the outcome, a broker that was declared ready must be stopped.
      void started.then((broker) => broker.stop(5_000)).catch(() => undefined);
      await expectBindFailure(started);
      expect(clash.taken).toHaveLength(2);
      await Promise.all(clash.taken.map((taken) => taken.listening));
      await expectGone(clash.pid());
    } finally {
      await Promise.all(clash.taken.map((taken) => taken.close()));
    }
  }, 60_000);

  it('the CLI start (detached broker) fails the same way and records no broker', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'eddy-kafka-readiness-'));
    const port = await freePortPair();
    const clash = clashOnceSpawned(port, port + 1, brokers[0]!);
    try {
      await expectBindFailure(startKafkaDaemon({ stateDir, port, log: clash.log }));
      expect(existsSync(join(stateDir, 'kafka.pid')), 'no pid file for a broker that never served').toBe(false);
      await expectGone(clash.pid());
      expect(await kafkaDaemonStatus({ stateDir })).toMatchObject({ running: false });
    } finally {
      await stopKafka({ stateDir, timeoutMs: 5_000 });
      await Promise.all(clash.taken.map((taken) => taken.close()));
      await rm(stateDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('the CLI start on free ports is ready, found again by a second start and by status, and restarts on its kept data', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'eddy-kafka-readiness-'));
    const port = await freePortPair();
    try {
      const first = await startKafkaDaemon({ stateDir, port });
      expect(first).toMatchObject({ running: true, reachable: true, brokers: [`${host}:${port}`] });
      expect(await startKafkaDaemon({ stateDir, port })).toMatchObject({ running: true, reachable: true, pid: first.pid });
      expect(await kafkaDaemonStatus({ stateDir })).toMatchObject({ running: true, reachable: true, pid: first.pid });
      expect(await stopKafka({ stateDir, timeoutMs: 10_000 })).toBe(true);
      await expectGone(first.pid);
      // Its data is kept, so the restart knows its cluster id from the storage, not from a format.
      const restarted = await startKafkaDaemon({ stateDir, port });
      expect(restarted).toMatchObject({ running: true, reachable: true });
      expect(restarted.pid).not.toBe(first.pid);
    } finally {
      await stopKafka({ stateDir, timeoutMs: 5_000 });
      await rm(stateDir, { recursive: true, force: true });
    }
  }, 90_000);
});
