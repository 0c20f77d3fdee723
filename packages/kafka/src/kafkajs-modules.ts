import { createRequire } from 'node:module';

/**
 * Access to kafkajs 2.2.4's internal modules, for the fixes `@eddy/kafka` installs (see
 * producer-fixes.ts, fetch-fixes.ts, read-committed.ts). The version is pinned for them.
 */

const require = createRequire(import.meta.url);

/** A kafkajs module by its path under `kafkajs/src/`. */
export const kafkajsModule = <T>(path: string): T => require(`kafkajs/src/${path}`) as T;

/** The resolved file of a kafkajs module. */
export const kafkajsPath = (path: string): string => require.resolve(`kafkajs/src/${path}`);

export interface ModuleReplacement {
  /** The module replaced, under `kafkajs/src/`. */
  readonly module: string;
  /** The modules that take it when they load: once one is loaded, replacing it is too late. */
  readonly loadedBy: readonly string[];
  readonly exports: unknown;
}

/**
 * Puts each replacement in Node's module cache in place of the kafkajs module, so the kafkajs code
 * that requires it later gets the replacement. All or none: if one comes too late (a module that
 * takes it was loaded already), none is installed and the result is false; the replacements of
 * one fix rely on each other (a decoder and the batch code that reads what it decodes).
 */
export function replaceKafkajsModules(replacements: readonly ModuleReplacement[]): boolean {
  const pending = replacements.filter(({ module, exports }) => require.cache[kafkajsPath(module)]?.exports !== exports);
  if (pending.some(({ loadedBy }) => loadedBy.some((user) => require.cache[kafkajsPath(user)]))) return false;
  for (const { module, exports } of pending) {
    const path = kafkajsPath(module);
    require(path);
    require.cache[path]!.exports = exports;
  }
  return true;
}
