// The decode matmul lab starts and runs on whatever adapter this machine has (llvmpipe in CI),
// at one tiny shape, every variant checked against its float64 reference: so that the script
// the GPU run depends on is not broken on arrival.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { backendsUnderTest } from '../ops/harness.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describe.runIf(backendsUnderTest().includes('webgpu'))('bench/lab-gemv.ts', () => {
  it('runs --quick --smoke to the end with every output correct and writes --out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lab-gemv-'));
    try {
      const file = join(dir, 'out.txt');
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/lab-gemv.ts', '--quick', '--smoke', '--out', file], { cwd: ROOT, timeout: 110_000 });
      const text = readFileSync(file, 'utf8');
      expect(text.trim()).toBe(stdout.trim());
      expect(text).not.toMatch(/FAIL/);
      expect(text).toMatch(/all checked outputs within 1e-2, none unwritten/);
      // the planner's choice, main's choice, the variants and the copy, at each of the three row counts
      for (const m of [1, 3, 16]) {
        for (const what of ['planner: gemv_rows', 'main: ', 'rows g8s4k4u2-stage', 'rows g8s4k4u2-split2 (+reduce)', 'copy, same bytes']) {
          expect(text).toContain(`${what}`);
          expect(text.split('\n').some((l) => l.startsWith(what) && l.includes(`m=${m} `))).toBe(true);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
