// PARALLM_GEMV (read once when the webgpu planner loads) picks the kernels tried first for 1 to
// 16 rows; a value it does not know is an error that names the choices.

import { describe, expect, it } from 'vitest';
import { GEMV_MMA_MAX_ROWS } from '../../src/device/ops.ts';
import { GEMV_MAX_ROWS, GEMV_MMA_MIN_ROWS, GEMV_PREFERRED_ROWS, gemvChoice, gemvOrder } from '../../src/device/webgpu/matmul.ts';

describe('PARALLM_GEMV', () => {
  it('defaults to the matrix units from GEMV_MMA_MIN_ROWS rows, gemv_rows below and as the fallback', () => {
    expect(gemvChoice(undefined)).toBe('mma');
    expect(gemvChoice('')).toBe('mma');
    expect(gemvOrder('mma', GEMV_MMA_MIN_ROWS - 1)[0]).toBe('gemv_rows');
    for (const m of [GEMV_MMA_MIN_ROWS, GEMV_MAX_ROWS]) expect(gemvOrder('mma', m).slice(0, 2)).toEqual(['gemv_mma', 'gemv_rows']);
  });
  it('past 16 rows, mma takes gemv_mma up to GEMV_MMA_MAX_ROWS before the matrix-unit GEMM; the others take the GEMM', () => {
    expect(gemvOrder('mma', GEMV_MAX_ROWS + 1)).toEqual(['gemv_mma', 'sgmat', 'tiled']);
    expect(gemvOrder('mma', GEMV_MMA_MAX_ROWS)[0]).toBe('gemv_mma');
    expect(gemvOrder('mma', GEMV_MMA_MAX_ROWS + 1)[0]).toBe('sgmat');
    for (const c of ['rows', 'sg', 'gemv'] as const) expect(gemvOrder(c, 32)).toEqual(['sgmat', 'tiled']);
  });
  it('rows takes gemv_rows at every row count', () => {
    for (const m of [1, GEMV_MAX_ROWS]) expect(gemvOrder(gemvChoice('rows'), m)[0]).toBe('gemv_rows');
    expect(gemvOrder('rows', GEMV_MAX_ROWS)).not.toContain('gemv_mma');
  });
  it('sg restores the order before gemv_rows: gemv_sg, then the matrix units past 8 rows', () => {
    expect(gemvOrder(gemvChoice('sg'), GEMV_PREFERRED_ROWS)[0]).toBe('gemv_sg');
    expect(gemvOrder('sg', GEMV_PREFERRED_ROWS + 1)[0]).toBe('sgmat');
    expect(gemvOrder('sg', 1)).not.toContain('gemv_rows');
  });
  it('gemv is the portable kernel', () => {
    expect(gemvOrder(gemvChoice('gemv'), 4)[0]).toBe('gemv');
  });
  it('rejects a value it does not know', () => {
    expect(() => gemvChoice('fast')).toThrow(/PARALLM_GEMV=fast: expected mma, rows, sg or gemv/);
  });
});
