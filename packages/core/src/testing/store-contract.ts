/**
 * The behaviour every {@link StateBackend} must have, as a vitest suite. The memory and LevelDB
 * backends both run it, so an operator tested on memory state behaves the same on disk.
 * Published as `@eddy/core/store-contract`.
 */
import { afterEach, beforeEach, describe } from 'vitest';
import type { PartitionStore, StateBackend, StoreSpec } from '../state/backend.js';
import { spec, type ContractSuite } from './store-contract-bytes.js';
import { describeDurability } from './store-contract-durability.js';
import { describeReads } from './store-contract-reads.js';
import { describeWrites } from './store-contract-writes.js';

/**
 * Options of {@link describeStoreContract}.
 *
 * @example
 * ```ts
 * // The memory backend's storage is the backend object itself, so reopening hands it back.
 * describeStoreContract('memoryState', () => memoryState(), { reopen: (previous) => previous });
 * ```
 */
export interface StoreContractOptions {
  /**
   * For a durable backend: opens a new backend over the same storage as `previous`, which the
   * suite has already closed. When given, the suite also checks that data, deletes, clears and
   * checkpoints survive a close and reopen.
   */
  readonly reopen?: (previous: StateBackend) => Promise<StateBackend> | StateBackend;
}

/**
 * Declares the storage contract suite for one {@link StateBackend} implementation. Call it at the
 * top level of a test file; `makeBackend` runs before every test and must return a fresh, empty
 * backend (for a disk backend: on a new directory). The suite closes each backend it made.
 *
 * @example
 * ```ts
 * // packages/state/src/level.contract.test.ts
 * let dir = '';
 * describeStoreContract(
 *   'levelState',
 *   async () => levelState({ dir: (dir = await mkdtemp(join(tmpdir(), 'eddy-'))) }),
 *   { reopen: () => levelState({ dir }) },
 * );
 * ```
 */
export function describeStoreContract(
  name: string,
  makeBackend: () => Promise<StateBackend> | StateBackend,
  opts: StoreContractOptions = {},
): void {
  describe(`StateBackend contract: ${name}`, () => {
    let backend: StateBackend;

    beforeEach(async () => {
      backend = await makeBackend();
    });

    afterEach(async () => {
      await backend.close();
    });

    const suite: ContractSuite = {
      backend: () => backend,
      open: (overrides: Partial<StoreSpec> = {}): Promise<PartitionStore> => backend.open(spec(overrides)),
      async reopen() {
        await backend.close();
        backend = await opts.reopen!(backend);
      },
    };
    describeWrites(suite);
    describeReads(suite);
    describeDurability(suite, opts.reopen !== undefined);
  });
}
