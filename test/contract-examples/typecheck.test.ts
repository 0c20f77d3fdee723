/**
 * Compiles types/contract.ts (DESIGN/README API shapes, invalid chains as @ts-expect-error,
 * filter type-guard narrowing, Kafka-only examples) against the built packages with tsc.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);

describe('type-level contract', () => {
  it('types/contract.ts compiles with tsc --noEmit (every @ts-expect-error is used)', () => {
    const tsc = require.resolve('typescript/bin/tsc');
    const project = fileURLToPath(new URL('./types/tsconfig.json', import.meta.url));
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, '-p', project, '--noEmit'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      output = `${e.stdout ?? ''}${e.stderr ?? ''}`;
    }
    expect(output).toBe('');
  }, 120_000);
});
