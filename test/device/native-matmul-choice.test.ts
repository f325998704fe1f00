// Which kernel a native matmul takes (src/device/native/ops.ts pickMatmul): cuBLAS at every row
// count where BLAS is there (PARALLM_NATIVE_GEMV_ROWS moves rows back to gemv), gemv for up to
// 16 rows without it, the tiled kernel past that.

import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/device/device.ts';
import { GEMV_MAX_ROWS, gemvPickRows, pickMatmul } from '../../src/device/native/ops.ts';

const t = (shape: number[]): Tensor => ({ buffer: { id: 1, size: 1 << 20 } as never, offset: 0, shape, dtype: 'f32' });
const mm = (m: number) => ({ a: t([m, 64]), w: t([32, 64]), out: t([m, 32]) });

describe('native matmul kernel choice', () => {
  // the variable, read when ops.ts loads, moves the default this test checks
  it.skipIf(!!process.env.PARALLM_NATIVE_GEMV_ROWS)('BLAS at every row count by default', () => {
    for (const m of [1, 4, GEMV_MAX_ROWS, GEMV_MAX_ROWS + 1, 2048]) expect(pickMatmul(true, mm(m))).toBe('sgmat');
  });
  it('without BLAS: gemv up to 16 rows, then the tiled kernel', () => {
    expect(pickMatmul(false, mm(1))).toBe('gemv');
    expect(pickMatmul(false, mm(GEMV_MAX_ROWS))).toBe('gemv');
    expect(pickMatmul(false, mm(GEMV_MAX_ROWS + 1))).toBe('tiled');
  });
  it('a kernel named in the op wins', () => {
    expect(pickMatmul(true, { ...mm(4), kernel: 'gemv' })).toBe('gemv');
  });
  it('PARALLM_NATIVE_GEMV_ROWS: 0 to 16, else an error naming the range', () => {
    expect(gemvPickRows(undefined)).toBe(0);
    expect(gemvPickRows('')).toBe(0);
    expect(gemvPickRows('8')).toBe(8);
    expect(() => gemvPickRows('17')).toThrow(/0 to 16/);
    expect(() => gemvPickRows('x')).toThrow(/PARALLM_NATIVE_GEMV_ROWS=x/);
  });
});
