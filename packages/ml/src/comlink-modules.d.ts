// comlink ships its ES modules as .mjs files without .d.mts twins, so TypeScript cannot see the
// types of the deep imports on its own; they are the same as the package's main types.

declare module 'comlink/dist/esm/comlink.mjs' {
  export * from 'comlink';
}

declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  import type { NodeEndpoint } from 'comlink/dist/umd/node-adapter';
  export default function nodeEndpoint(endpoint: NodeEndpoint): Endpoint;
}
