// The first worker loads fine; its first window kills it and leaves a marker file behind, and
// every later init() fails because of that marker: a model that can no longer start. The marker is
// named after the pid, which worker threads share with the test process.
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const markerPath = join(tmpdir(), `eddy-ml-broken-after-crash-${process.pid}`);

export function init() {
  if (existsSync(markerPath)) throw new Error('the model cannot start any more');
}

export default function crash() {
  writeFileSync(markerPath, 'crashed');
  process.exit(5);
}
