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
 * that requires it later gets the replacement. Returns false if one came too late (a module that
 * takes it was loaded already; it keeps the original).
 */
export function replaceKafkajsModules(replacements: readonly ModuleReplacement[]): boolean {
  let installed = true;
  for (const { module, loadedBy, exports } of replacements) {
    const path = kafkajsPath(module);
    if (require.cache[path]?.exports === exports) continue;
    if (loadedBy.some((user) => require.cache[kafkajsPath(user)])) {
      installed = false;
      continue;
    }
    require(path);
    require.cache[path]!.exports = exports;
  }
  return installed;
}
