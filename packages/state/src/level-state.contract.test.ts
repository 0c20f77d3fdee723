import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { describeStoreContract } from '@eddy/core/store-contract';
import { levelState } from './index.js';
import type { StateLogger } from './index.js';

const quiet: StateLogger = { warn: () => undefined, info: () => undefined };
const directories: string[] = [];

afterAll(async () => {
  for (const dir of directories) await rm(dir, { recursive: true, force: true });
});

let current = '';

describeStoreContract(
  'levelState',
  async () => {
    current = await mkdtemp(join(tmpdir(), 'eddy-state-contract-'));
    directories.push(current);
    return levelState({ dir: current, logger: quiet });
  },
  { reopen: () => levelState({ dir: current, logger: quiet }) },
);
