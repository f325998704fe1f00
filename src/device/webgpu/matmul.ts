// Matmul planning for the webgpu backend: which kernel (gemv, gemv_sg, gemv_rows, tiled, sgmat),
// its launch shape, and the split of weights larger than one binding into row blocks.

import type { Tensor } from '../device.ts';
import { GEMV_KERNELS, GEMV_MMA_MAX_ROWS, type MatmulKernel, type OpArgs } from '../ops.ts';
import { rows, tensorBytes } from '../tensor.ts';
import type { WebGpuDevice } from './backend.ts';
import { type Dispatch, grid, layoutFlags, rowBlock, weightFlags } from './plan.ts';

/** Rows of a up to which the gemv kernels work. */
export const GEMV_MAX_ROWS = 16;
/**
 * Rows up to which matmul prefers gemv_sg to the matrix units when PARALLM_GEMV=sg. On an H200
 * (b44c30d, bench ops): at 16 rows gemv_sg took 0.30/0.68/0.63 ms for the 7B projections, sgmat
 * 0.18/0.47/0.27 ms at 64 rows; at 8 rows gemv_sg took 0.16/0.37/0.34 ms.
 */
export const GEMV_PREFERRED_ROWS = 8;

/**
 * The kernels matmul tries for 1 to GEMV_MMA_MAX_ROWS rows, first the one PARALLM_GEMV names
 * (read once):
 * - `mma` (the default): matmul_gemv_mma.wgsl on the matrix units from GEMV_MMA_MIN_ROWS to
 *   GEMV_MMA_MAX_ROWS rows where the adapter has subgroup matrices (past 16 rows in place of
 *   matmul_sgmat: 1.2-1.7x faster at 24-64 rows on an H200, 3745832), else as `rows`;
 * - `rows`: matmul_gemv_rows.wgsl up to 16 rows, on every adapter (it reduces through workgroup
 *   memory where there are no subgroups), then matmul_sgmat;
 * - `sg`: the order before gemv_rows (gemv_sg up to GEMV_PREFERRED_ROWS rows, then the matrix
 *   units); `gemv`: the portable kernel.
 */
export type GemvChoice = 'mma' | 'rows' | 'sg' | 'gemv';
const GEMV_CHOICE: GemvChoice = gemvChoice(process.env.PARALLM_GEMV);

export function gemvChoice(v: string | undefined): GemvChoice {
  if (v === undefined || v === '') return 'mma';
  if (v === 'mma' || v === 'rows' || v === 'sg' || v === 'gemv') return v;
  throw new Error(`PARALLM_GEMV=${v}: expected mma, rows, sg or gemv`);
}

export function gemvOrder(choice: GemvChoice, m: number): MatmulKernel[] {
  const big: MatmulKernel[] = ['sgmat', 'tiled'];
  if (m > GEMV_MAX_ROWS) return choice === 'mma' && m <= GEMV_MMA_MAX_ROWS ? ['gemv_mma', ...big] : big;
  const rows: MatmulKernel[] = ['gemv_rows', 'gemv_sg', 'gemv', 'sgmat', 'tiled'];
  if (choice === 'mma') return m >= GEMV_MMA_MIN_ROWS ? ['gemv_mma', ...rows] : rows;
  if (choice === 'rows') return rows;
  if (choice === 'gemv') return ['gemv', 'gemv_rows', 'tiled'];
  return m <= GEMV_PREFERRED_ROWS ? ['gemv_sg', 'gemv', 'sgmat', 'tiled'] : ['sgmat', 'gemv_sg', 'gemv', 'tiled'];
}

/**
 * Output tile of matmul_sgmat: rows x columns per workgroup. a is padded to whole tiles of rows
 * (its f16 copy, sgmat.a); out is not (the kernel guards rows >= m and columns >= n).
 */
export const SG_TILE_M = 128;
export const SG_TILE_N = 128;
/** Smallest binding matmul_sgmat may write with subgroupMatrixStore (one 16 x 16 f32 matrix). */
const SG_MIN_OUT_BYTES = 1024;
/** matmul_sgmat's k-slice (a const in the kernel): split-k chunks are multiples of it. */
export const SG_BK = 32;
/** Workgroups below which matmul_sgmat splits k (an H200 has 132 SMs, each holding several;
 * PARALLM_SGMAT_MIN_WG overrides it, for A/B runs). */
const SG_MIN_WORKGROUPS = Number(process.env.PARALLM_SGMAT_MIN_WG ?? 528);
/** At most this many k-chunks (PARALLM_SGMAT_MAX_SPLITS overrides it; 1 turns split-k off, for A/B runs). */
const SG_MAX_SPLITS = Number(process.env.PARALLM_SGMAT_MAX_SPLITS ?? 8);

/**
 * k-chunks for matmul_sgmat over `tiles` output tiles: enough that tiles x splits reaches
 * SG_MIN_WORKGROUPS, each chunk whole k-slices and at least 256 deep so that the partial sums
 * stay a small extra traffic. With 128 x 128 tiles a 4096-column projection has 32 tiles per 128
 * rows: split 8 up to 512 rows, 4 at 1024, 2 at 2048 (512 tiles, short of 528); the lab measured
 * the 128 x 128 kernel fast on an H200 with these splits at 256 and 2048 rows
 * (shaders/matmul_sgmat.wgsl's header).
 */
export function sgmatSplits(tiles: number, k: number): { splits: number; chunk: number } {
  let splits = 1;
  while (splits < SG_MAX_SPLITS && tiles * splits < SG_MIN_WORKGROUPS && k / (splits * 2) >= 256) splits *= 2;
  const chunk = Math.ceil(k / splits / SG_BK) * SG_BK;
  return { splits: Math.ceil(k / chunk), chunk };
}

/** Why `kernel` cannot run this matmul here, or undefined if it can. */
export function matmulUnsupported(dev: WebGpuDevice, a: OpArgs['matmul'], kernel: MatmulKernel): string | undefined {
  const [m, k] = a.a.shape;
  const f = dev.info.features;
  if (tensorBytes(a.w) / a.w.shape[0] > dev.info.maxBindingBytes) return 'a single weight row exceeds the binding limit';
  if (a.w.layout && (kernel === 'gemv' || kernel === 'tiled')) return `${kernel} reads row-major weights only, and w is packed (${a.w.layout})`;
  const most = kernel === 'gemv_mma' ? GEMV_MMA_MAX_ROWS : GEMV_MAX_ROWS;
  if (GEMV_KERNELS.includes(kernel) && (k % 8 || m > most)) return `${kernel} needs k % 8 == 0 and at most ${most} rows`;
  if (kernel === 'gemv_sg' && !f.subgroups) return 'gemv_sg needs subgroups on this adapter';
  if (kernel === 'gemv_rows' && m <= GEMV_MAX_ROWS) {
    const unfit = gemvRowsUnfit(dev, m, gemvRowsShape(m, a.w.shape[0], k));
    if (unfit) return `gemv_rows: ${unfit}`;
  }
  if (kernel === 'gemv_mma') {
    const unfit = gemvMmaUnfit(dev, m, gemvMmaShape(m, a.w.shape[0], k));
    if (unfit) return `gemv_mma: ${unfit}`;
  }
  if (kernel === 'sgmat' || kernel === 'gemv_mma') {
    if (!f.subgroupMatrix) return `${kernel} needs subgroup matrices (f16 16x16x16, 32-wide subgroups) on this adapter`;
    if (a.w.dtype !== 'f16') return `${kernel} needs f16 weights, got ${a.w.dtype}`;
    if (k % 8) return `${kernel} needs k a multiple of 8 (16-byte loads)`;
  }
  return undefined;
}

export function pickMatmul(dev: WebGpuDevice, a: OpArgs['matmul']): MatmulKernel {
  if (a.kernel) return a.kernel;
  const m = a.a.shape[0];
  const order: MatmulKernel[] = m <= GEMV_MMA_MAX_ROWS ? gemvOrder(GEMV_CHOICE, m) : ['sgmat', 'tiled'];
  return order.find((kn) => !matmulUnsupported(dev, a, kn)) ?? 'tiled';
}

/**
 * gemv_sg launch shape: columns per subgroup, k-splits per column group, loads in flight.
 * From a sweep on an H200 (docs/perf-notes.md): 4 columns per subgroup won everywhere; k is
 * split until there are at least 256 workgroups; more loads in flight help only at m = 1.
 */
export function gemvShape(m: number, n: number): { CPT: number; SPLIT: number; U: number } {
  const CPT = 4;
  const U = m === 1 ? 4 : m <= 4 ? 2 : 1;
  let SPLIT = 1;
  while (SPLIT < 8 && n / ((8 / SPLIT) * CPT) < 256) SPLIT *= 2;
  return { CPT, SPLIT, U };
}

/**
 * matmul_gemv_rows launch shape (the kernel's header says what each is): G lanes along k per
 * quad of columns, SLOTS quads per workgroup, KS lane groups along k, U steps of weight loads in
 * flight per lane; k split over `splits` workgroups per column block (their partial sums added by
 * matmul_splitk_reduce.wgsl); `stage`: a's k-slice staged in workgroup memory, which splits k
 * further until the slice fits GEMV_ROWS_STAGE_BYTES.
 */
export interface GemvRowsShape {
  G: number;
  SLOTS: number;
  KS: number;
  U: number;
  splits: number;
  stage: boolean;
}

/**
 * The dispatch of matmul_splitk_reduce.wgsl that sums `splits` partial products part [splits, m,
 * nb] into columns [n0, n0 + nb) of out (row length ldo), adding the bias: by vec4 where the
 * columns allow it.
 */
export function splitkReduce(part: Tensor, out: Tensor, bias: Tensor | undefined, m: number, nb: number, ldo: number, n0: number, splits: number): Dispatch {
  const vec4 = nb % 4 === 0 && ldo % 4 === 0 && n0 % 4 === 0;
  const flags = [...(bias ? ['BIAS'] : []), ...(vec4 ? ['VEC4'] : [])];
  const tensors: Record<string, Tensor> = { part, out, ...(bias ? { bias } : {}) };
  return { file: 'matmul_splitk_reduce.wgsl', flags, overrides: {}, tensors, params: { m, n: nb, ldo, col0: n0, splits }, grid: grid(Math.ceil((m * nb) / (vec4 ? 4 : 1) / 256)) };
}

/** Workgroups below which gemv_rows splits k, if the chunks stay >= 1024 deep (chosen, unmeasured). */
const GEMV_ROWS_MIN_WORKGROUPS = 256;
/** Bytes of a's k-slice that a STAGE_A workgroup holds (chosen, unmeasured). */
export const GEMV_ROWS_STAGE_BYTES = 32 * 1024;

/**
 * The planner's gemv_rows shape, from the lab's sweep on an H200 (bench/lab-gemv.ts, commit
 * 3c0d5e1, `bench/results/lab/gemv-lab-nvidia-h200-2026-11-26.txt`; the 7B projections, the
 * fused q/k/v and gate/up layers and the lm_head): at 1-2 rows a whole subgroup along k per 4
 * columns (G 32, gemv_sg's layout: 66-104% of copy, within 2 points of the best everywhere); at
 * 3-4 rows 8 lanes along k, 16 columns and 256 threads per workgroup (57-85%); from 5 rows 8
 * columns and 256 threads per workgroup, which keeps the most loads in flight per accumulator
 * register (46-61% at 8 rows, 17-31% at 16, where 16 f32 FMAs per weight bind). Two steps of
 * loads in flight throughout. For the 7B projections it never splits k.
 */
export function gemvRowsShape(m: number, n: number, k: number): GemvRowsShape {
  const [G, SLOTS, KS] = m <= 2 ? [32, 1, 4] : m <= 4 ? [8, 4, 8] : [8, 2, 8];
  const U = 2;
  const wgs = Math.ceil(n / (4 * SLOTS));
  let splits = 1;
  while (wgs * splits < GEMV_ROWS_MIN_WORKGROUPS && k / (splits * 2) >= 1024) splits *= 2;
  return { G, SLOTS, KS, U, splits, stage: false };
}

/** Why gemv_rows cannot launch in this shape here (workgroup size or memory), or undefined. */
export function gemvRowsUnfit(dev: WebGpuDevice, m: number, shape: GemvRowsShape): string | undefined {
  const lim = dev.gpu.limits;
  const { G, SLOTS, KS } = shape;
  const wg = G * SLOTS * KS;
  if (wg > lim.maxComputeInvocationsPerWorkgroup || wg > lim.maxComputeWorkgroupSizeX) return `a workgroup of ${wg} threads is over this adapter's limit`;
  const smem = gemvRowsRedBytes(dev, m, shape) + (shape.stage ? m * 32 : 0);
  if (smem > lim.maxComputeWorkgroupStorageSize) return `${smem} bytes of workgroup memory are over this adapter's ${lim.maxComputeWorkgroupStorageSize}`;
  return undefined;
}

function gemvRowsSubgroups(dev: WebGpuDevice, G: number): boolean {
  const min = dev.ctx.adapter.info.subgroupMinSize ?? 0;
  return dev.info.features.subgroups && G <= min;
}

function gemvRowsRedBytes(dev: WebGpuDevice, m: number, { G, SLOTS, KS }: GemvRowsShape): number {
  return 16 * (gemvRowsSubgroups(dev, G) ? KS * SLOTS * m : G * SLOTS * KS);
}

/**
 * gemv_rows dispatches for columns [n0, n0 + nb) of out (one row block of w): the kernel, and
 * the reduce of the k-splits when there are several.
 */
export function planGemvRows(dev: WebGpuDevice, args: OpArgs['matmul'], shape: GemvRowsShape, n0 = 0, nb = args.w.shape[0]): Dispatch[] {
  const { a, w, bias, out } = args;
  const [m, k] = a.shape;
  const ldo = out.shape[1];
  const { G, SLOTS, KS, U, stage } = shape;
  const unfit = gemvRowsUnfit(dev, m, shape);
  if (unfit) throw new Error(`gemv_rows: ${unfit}`);
  const chunks = k / 8;
  // k-chunks in units of 8 elements; with staging, no longer than the slice that fits
  let per = Math.ceil(chunks / Math.max(1, Math.min(shape.splits, chunks)));
  if (stage) {
    const room = Math.min(GEMV_ROWS_STAGE_BYTES, dev.gpu.limits.maxComputeWorkgroupStorageSize - gemvRowsRedBytes(dev, m, shape));
    per = Math.min(per, Math.floor(room / (m * 32)));
  }
  const splits = Math.ceil(chunks / per);
  const wgsN = Math.ceil(nb / (4 * SLOTS));
  const file = 'matmul_gemv_rows.wgsl';
  const overrides: Record<string, number> = { ROWS: m, G, SLOTS, KS, U, ...(stage ? { KC: per * 8 } : {}) };
  const flags = [...weightFlags(w), ...(gemvRowsSubgroups(dev, G) ? ['SUBGROUPS'] : []), ...(stage ? ['STAGE_A'] : [])];
  const wb = rows(w, n0, nb);
  const params = { m, n: nb, k, wgs_n: wgsN, k_chunk: per * 8 };
  if (splits === 1) {
    const tensors: Record<string, Tensor> = { a, w: wb, out, ...(bias ? { bias } : {}) };
    return [{ file, flags: [...flags, ...(bias ? ['BIAS'] : [])], overrides, tensors, params: { ...params, ldo, col0: n0, split_stride: 0 }, grid: grid(wgsN) }];
  }
  const part = dev.scratch('gemv_rows.part', [splits * m * nb], 'f32');
  return [
    { file, flags, overrides, tensors: { a, w: wb, out: part }, params: { ...params, ldo: nb, col0: 0, split_stride: m * nb }, grid: grid(wgsN * splits) },
    splitkReduce(part, out, bias, m, nb, ldo, n0, splits),
  ];
}

/**
 * matmul_gemv_mma launch shape (the kernel's header says what each is): CF 16-column fragments
 * per workgroup (1, 2 or 4; the four subgroups split each step of k in 4 / CF phases), and k
 * split over `splits` workgroups per column block (their partial sums added by
 * matmul_splitk_reduce.wgsl).
 */
export interface GemvMmaShape {
  CF: 1 | 2 | 4;
  /** 64 * SUB of k per subgroup and step: 4 * SUB 16-byte loads of w per thread in flight */
  SUB: 1 | 2;
  splits: number;
}

/**
 * Rows from which PARALLM_GEMV=mma (the default) takes matmul_gemv_mma. H100, lab-gemv at
 * 3282d48 (bench/results/lab/gemv-mma-3282d48-*.txt), % of copy, gemv_rows against gemv_mma in
 * the planner's shape, for 4096 x 4096 / 11008 x 4096 / 4096 x 11008 / 22016 x 4096: at 8 rows
 * 54 / 66 / 58 / 70 against 46 / 64 / 53 / 73; at 16 rows 27 / 36 / 22 / 37 against 44 / 62 /
 * 54 / 71. gemv_rows' time grows with the rows (its f32 FMAs, ~2.8 us a row at 4096 x 4096),
 * gemv_mma's hardly does: interpolated, they cross at 8-10 rows on the H100 and at 9-11 on an
 * H200 (94a7020: gemv_mma 27.3 / 51.2 us at 9 rows against gemv_rows' 17.8 / 43.2 at 8 for
 * 4096 x 4096 / 11008 x 4096, +3.2 / +5.1 us a row). 10 is where both cards are within ~12%
 * of the faster on the smallest layer and gemv_mma wins on the larger ones.
 */
export const GEMV_MMA_MIN_ROWS = 10;
/**
 * Workgroups below which gemv_mma splits k, if the chunks stay >= 1024 deep: 256 up to 16 rows,
 * 512 past them (the H200 lab at 3745832: at 24-64 rows the fastest split of 11008 and 12288
 * columns was 4, not 2; bench/results/lab/gemv-mma-rows-17-64-*.txt).
 */
const gemvMmaMinWorkgroups = (m: number) => (m > 16 ? 512 : 256);

/**
 * The planner's gemv_mma shape, from the same labs: 64 columns per workgroup (one 64-deep phase
 * a step, a's share of a step a quarter of the 16-column shape's), 4 loads of w in flight a
 * thread (8 were faster unsplit, slower split), and k split until gemvMmaMinWorkgroups: at 16 rows 4 ways for
 * 4096 columns, 2 for 11008, none for 22016, the fastest split at each. Its speed follows the
 * workgroups per multiprocessor (unsplit: 18% of copy with 64, 45% with 172, 74% with 344),
 * not the rows.
 */
export function gemvMmaShape(m: number, n: number, k: number): GemvMmaShape {
  const CF = 4;
  const SUB = 1;
  const wgs = Math.ceil(n / (16 * CF));
  let splits = 1;
  while (wgs * splits < gemvMmaMinWorkgroups(m) && k / (splits * 2) >= 1024) splits *= 2;
  return { CF, SUB, splits };
}

/** k per workgroup step of matmul_gemv_mma: 64 * SUB per phase, 4 / CF phases. */
const gemvMmaStep = ({ CF, SUB }: Pick<GemvMmaShape, 'CF' | 'SUB'>) => 64 * SUB * (4 / CF);

/** Row tiles of 16 (left matrices) of matmul_gemv_mma at m rows. */
export const gemvMmaRowTiles = (m: number) => Math.max(1, Math.ceil(m / 16));

/** Workgroup memory of matmul_gemv_mma at m rows: the w and a tiles (f16, rows padded by 8) and the phases' sums. */
export function gemvMmaSharedBytes(shape: Pick<GemvMmaShape, 'CF' | 'SUB'>, m = 16): number {
  const wp = gemvMmaStep(shape) + 8;
  return 2 * (16 * shape.CF * wp + 16 * gemvMmaRowTiles(m) * wp) + 4 * 4 * 256;
}

/** Why matmul_gemv_mma cannot launch in this shape here, or undefined. */
export function gemvMmaUnfit(dev: WebGpuDevice, m: number, shape: GemvMmaShape): string | undefined {
  // the kernel keeps a's share of a step (16 RT rows) in at most 8 registers of 4 per thread
  const rows = 16 * gemvMmaRowTiles(m);
  if ((rows * gemvMmaStep(shape)) / 512 > 8) return `${rows} rows x ${gemvMmaStep(shape)} k a step are more of a than 8 loads a thread`;
  const need = gemvMmaSharedBytes(shape, m);
  const limit = dev.gpu.limits.maxComputeWorkgroupStorageSize;
  if (need > limit) return `${need} bytes of workgroup memory are over this adapter's ${limit}`;
  return undefined;
}

/** gemv_mma dispatches for columns [n0, n0 + nb) of out: the kernel, and the reduce of the k-splits. */
export function planGemvMma(dev: WebGpuDevice, args: OpArgs['matmul'], shape: GemvMmaShape, n0 = 0, nb = args.w.shape[0]): Dispatch[] {
  const { a, w, bias, out } = args;
  const [m, k] = a.shape;
  const ldo = out.shape[1];
  const { CF, SUB } = shape;
  const unfit = gemvMmaUnfit(dev, m, shape);
  if (unfit) throw new Error(`gemv_mma: ${unfit}`);
  const step = gemvMmaStep(shape);
  const chunk = Math.ceil(k / Math.max(1, shape.splits) / step) * step;
  const splits = Math.ceil(k / chunk);
  const wgsN = Math.ceil(nb / (16 * CF));
  const file = 'matmul_gemv_mma.wgsl';
  // the rows are a parameter: one pipeline per row tile count
  const overrides = { RT: gemvMmaRowTiles(m), CF, SUB };
  const wf = layoutFlags(w);
  const wb = rows(w, n0, nb);
  const params = { m, n: nb, k, wgs_n: wgsN, k_chunk: chunk };
  if (splits === 1) {
    const tensors: Record<string, Tensor> = { a, w: wb, out, ...(bias ? { bias } : {}) };
    return [{ file, flags: [...wf, ...(bias ? ['BIAS'] : [])], overrides, tensors, params: { ...params, ldo, col0: n0, split_stride: 0 }, grid: grid(wgsN) }];
  }
  const part = dev.scratch('gemv_mma.part', [splits * m * nb], 'f32');
  return [
    { file, flags: wf, overrides, tensors: { a, w: wb, out: part }, params: { ...params, ldo: nb, col0: 0, split_stride: m * nb }, grid: grid(wgsN * splits) },
    splitkReduce(part, out, bias, m, nb, ldo, n0, splits),
  ];
}

/**
 * Splits w into row blocks that each fit one binding (an lm_head of a large vocabulary can
 * exceed it). a, bias and out are bound whole; each block writes its columns of out.
 */
export function planMatmul(dev: WebGpuDevice, args: OpArgs['matmul']): Dispatch[] {
  const { a, w, bias, out } = args;
  const kernel = pickMatmul(dev, args);
  const [m, k] = a.shape;
  const n = w.shape[0];
  const block = rowBlock(dev, w);
  const plans: Dispatch[] = [];
  let a16: Tensor | undefined;
  // matmul_sgmat's operands in the tiled layout: its a (the cast's copy) wherever k allows, its w
  // where the device packed it (WebGpuDevice.packWeight)
  const sgFlags = [...(k % SG_BK === 0 ? ['A_TILED'] : []), ...layoutFlags(w)];
  if (kernel === 'sgmat') {
    // f16 copy of a, padded to whole tiles of rows with zeros (the kernel reads every tile row)
    const mPad = Math.ceil(m / SG_TILE_M) * SG_TILE_M;
    a16 = dev.scratch('sgmat.a', [mPad, k], 'f16');
    const castFlags = k % SG_BK === 0 ? ['TILED'] : [];
    plans.push({ file: 'cast_f16.wgsl', flags: castFlags, overrides: {}, tensors: { x: a, out: a16 }, params: { m, k4: k / 4, m_pad: mPad }, grid: grid(Math.ceil((mPad * k) / 4 / 256)) });
  }
  for (let n0 = 0; n0 < n; n0 += block) {
    const nb = Math.min(block, n - n0);
    const flags = [...weightFlags(w), ...(bias ? ['BIAS'] : [])];
    const tensors: Record<string, Tensor> = { a, w: rows(w, n0, nb), out, ...(bias ? { bias } : {}) };
    const params = { m, n: nb, k, ldo: n, col0: n0 };
    if (kernel === 'gemv') {
      const cols = 4;
      plans.push({ file: 'matmul_gemv.wgsl', flags, overrides: { ROWS: m, COLS: cols }, tensors, params, grid: grid(Math.ceil(nb / cols)) });
    } else if (kernel === 'gemv_rows') {
      plans.push(...planGemvRows(dev, args, gemvRowsShape(m, nb, k), n0, nb));
    } else if (kernel === 'gemv_mma') {
      plans.push(...planGemvMma(dev, args, gemvMmaShape(m, nb, k), n0, nb));
    } else if (kernel === 'gemv_sg') {
      const shape = gemvShape(m, nb);
      const perWg = (8 / shape.SPLIT) * shape.CPT;
      plans.push({ file: 'matmul_gemv_sg.wgsl', flags, overrides: { ROWS: m, ...shape }, tensors, params, grid: grid(Math.ceil(nb / perWg)) });
    } else if (kernel === 'sgmat') {
      const tilesN = Math.ceil(nb / SG_TILE_N);
      const tiles = Math.ceil(m / SG_TILE_M) * tilesN;
      const { splits, chunk } = sgmatSplits(tiles, k);
      // Dawn sizes a binding that subgroupMatrixStore writes for at least one 16x16 f32 matrix
      // (1 KiB): a smaller out goes through the split-k scratch, padded to that, and the reduce
      if (splits === 1 && tensorBytes(out) >= SG_MIN_OUT_BYTES) {
        plans.push({ file: 'matmul_sgmat.wgsl', flags: [...sgFlags, ...(bias ? ['BIAS'] : [])], overrides: {}, tensors: { ...tensors, a: a16! }, params: { ...params, tiles_n: tilesN, tiles, k_chunk: k, split_stride: 0 }, grid: grid(tiles) });
      } else {
        const part = dev.scratch('sgmat.part', [Math.max(splits * m * nb, SG_MIN_OUT_BYTES / 4)], 'f32');
        const sgParams = { m, n: nb, k, ldo: nb, col0: 0, tiles_n: tilesN, tiles, k_chunk: chunk, split_stride: m * nb };
        plans.push({ file: 'matmul_sgmat.wgsl', flags: sgFlags, overrides: {}, tensors: { a: a16!, w: rows(w, n0, nb), out: part }, params: sgParams, grid: grid(tiles * splits) });
        plans.push(splitkReduce(part, out, bias, m, nb, n, n0, splits));
      }
    } else {
      const tilesN = Math.ceil(nb / 64);
      plans.push({ file: 'matmul_tiled.wgsl', flags, overrides: {}, tensors, params: { ...params, tiles_n: tilesN }, grid: grid(Math.ceil(m / 64) * tilesN) });
    }
  }
  return plans;
}

