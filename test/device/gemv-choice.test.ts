// PARALLM_GEMV (read once when the webgpu planner loads) picks the kernels tried first for 1 to
// 16 rows; a value it does not know is an error that names the choices.

import { describe, expect, it } from 'vitest';
import { GEMV_MAX_ROWS, GEMV_PREFERRED_ROWS, gemvChoice, gemvOrder } from '../../src/device/webgpu/matmul.ts';

describe('PARALLM_GEMV', () => {
  it('defaults to gemv_rows at every row count', () => {
    expect(gemvChoice(undefined)).toBe('rows');
    expect(gemvChoice('')).toBe('rows');
    for (const m of [1, GEMV_MAX_ROWS]) expect(gemvOrder('rows', m)[0]).toBe('gemv_rows');
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
    expect(() => gemvChoice('fast')).toThrow(/PARALLM_GEMV=fast: expected rows, sg or gemv/);
  });
});
