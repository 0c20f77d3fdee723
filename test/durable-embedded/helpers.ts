/** Shared helpers of the durable-embedded tests: temp dirs, a seeded PRNG, a collector app. */
import { mkdtempSync, rmSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { createApp, silentLogger, type App } from '@eddy/core';
import { mulberry32 } from '@eddy/core/testing';
import { levelState, levelTransport, type LevelTransport } from '@eddy/state';

export const quiet = { warn: () => undefined, info: () => undefined };
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
export function tempDir(prefix = 'eddy-durable-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** The project's seeded generator (mulberry32). */
export const prng = mulberry32;

/** Bytes of every file under `dir`. */
export function du(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const info = statSync(path);
    total += info.isDirectory() ? du(path) : info.size;
  }
  return total;
}

export interface Seen<V> { key: string | null; value: V; partition?: number }

/**
 * An app (group `id`) that reads `topic` and pushes each record's key and value into `seen`.
 * Keys are read through a two-parameter callback so that they are decoded.
 */
export function collector<V>(id: string, topic: string, transport: LevelTransport, seen: Seen<V>[], extra: { dir?: string } = {}): App {
  const app = createApp({
    id,
    transport,
    ...(extra.dir ? { state: levelState({ dir: extra.dir, logger: quiet }) } : {}),
    idleTimeout: false,
    commitInterval: '50ms',
    logger: silentLogger,
  });
  app.from<V>(topic).peek((value, key) => {
    seen.push({ key: key as string | null, value });
  });
  return app;
}

export function openLog(dir: string, options: Partial<Parameters<typeof levelTransport>[0]> = {}): LevelTransport {
  return levelTransport({ dir, logger: quiet, ...options });
}

export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
