import type { Clock } from '../clock.js';
import type { Node } from '../dsl/graph.js';
import type { Topology } from '../dsl/topology.js';
import type { Logger } from '../logger.js';
import type { SendOptions } from '../app-options.js';
import type { Transport } from '../transport/types.js';

/**
 * The TestDriver's way into an app, behind a symbol that `@eddy/core`'s entry does not export:
 * not part of the app's public API, and out of sight of a user's autocomplete.
 */
export const testHooks = Symbol('eddy.testHooks');

export interface AppTestHooks {
  /** Swaps in the driver's clock and private embedded broker before start. */
  configure(overrides: { clock: Clock; transport: Transport; logger?: Logger }): void;
  /** `app.send` without its check of the app's state. */
  send(topic: string, value: unknown, options: SendOptions): Promise<void>;
  /** The app's topology, as it runs (or would run, before start). */
  topology(): Topology;
  /** The topology's sources and sinks (the driver decodes topics with their serdes). */
  topologyNodes(): { sources: Extract<Node, { kind: 'source' }>[]; sinks: Extract<Node, { kind: 'sink' }>[] };
  /** Runs until no record, timer or handler work is left. */
  settle(idle: () => Promise<void>): Promise<void>;
}
