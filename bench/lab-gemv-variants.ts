// The matmul_gemv_rows launch shapes that bench/lab-gemv.ts times (and test/ops/gemv-rows.test.ts
// compiles for the GPU on Dawn's null adapter, which has subgroups).
import type { GemvRowsShape } from '../src/device/webgpu/matmul.ts';

/**
 * matmul_gemv_rows launch shapes (the kernel's header explains each): name gGsSkKuU = G lanes
 * along k per column quad, S quads per workgroup, K lane groups along k, U steps of loads in
 * flight; `stage` copies a's k-slice into workgroup memory (splitting k to fit 32 KiB); `splitN`
 * splits k over N workgroups per column block (a second dispatch adds them).
 */
export const VARIANTS: { name: string; shape: GemvRowsShape }[] = [
  { name: 'g8s4k4u1', shape: { G: 8, SLOTS: 4, KS: 4, U: 1, splits: 1, stage: false } },
  { name: 'g8s4k4u2', shape: { G: 8, SLOTS: 4, KS: 4, U: 2, splits: 1, stage: false } },
  { name: 'g8s4k8u2', shape: { G: 8, SLOTS: 4, KS: 8, U: 2, splits: 1, stage: false } },
  { name: 'g8s2k8u2', shape: { G: 8, SLOTS: 2, KS: 8, U: 2, splits: 1, stage: false } },
  { name: 'g4s8k4u2', shape: { G: 4, SLOTS: 8, KS: 4, U: 2, splits: 1, stage: false } },
  // 4 lanes along k: one quad's 16-byte loads cover a tiled weight's 64-byte run of each column
  { name: 'g4s4k8u2', shape: { G: 4, SLOTS: 4, KS: 8, U: 2, splits: 1, stage: false } },
  { name: 'g4s8k8u2', shape: { G: 4, SLOTS: 8, KS: 8, U: 2, splits: 1, stage: false } },
  { name: 'g4s16k4u2', shape: { G: 4, SLOTS: 16, KS: 4, U: 2, splits: 1, stage: false } },
  { name: 'g4s2k16u2', shape: { G: 4, SLOTS: 2, KS: 16, U: 2, splits: 1, stage: false } },
  // a whole (or half) tile of a tiled weight per workgroup: one step reads 1-2 of its k-slices
  // whole (8 KiB each); k split to make up for the few workgroups. On an H200 (dff09d3) they ran
  // 37-81% of copy at 1-2 rows against g32s1k4u2's 72-95% on the same tiled weights
  { name: 'g4s32k2u2-split4', shape: { G: 4, SLOTS: 32, KS: 2, U: 2, splits: 4, stage: false } },
  { name: 'g4s32k2u2-split8', shape: { G: 4, SLOTS: 32, KS: 2, U: 2, splits: 8, stage: false } },
  { name: 'g4s32k1u2-split8', shape: { G: 4, SLOTS: 32, KS: 1, U: 2, splits: 8, stage: false } },
  { name: 'g4s16k4u2-split2', shape: { G: 4, SLOTS: 16, KS: 4, U: 2, splits: 2, stage: false } },
  { name: 'g4s16k4u2-split4', shape: { G: 4, SLOTS: 16, KS: 4, U: 2, splits: 4, stage: false } },
  { name: 'g16s2k4u2', shape: { G: 16, SLOTS: 2, KS: 4, U: 2, splits: 1, stage: false } },
  { name: 'g32s1k4u2', shape: { G: 32, SLOTS: 1, KS: 4, U: 2, splits: 1, stage: false } },
  { name: 'g8s4k4u2-stage', shape: { G: 8, SLOTS: 4, KS: 4, U: 2, splits: 1, stage: true } },
  { name: 'g8s4k4u2-split2', shape: { G: 8, SLOTS: 4, KS: 4, U: 2, splits: 2, stage: false } },
  // wide workgroups read a once for more columns (a's reads per weight byte ~ 2m / columns), k
  // split to fill the GPU: a's slice in L1, or staged
  { name: 'g8s8k2u2-split4', shape: { G: 8, SLOTS: 8, KS: 2, U: 2, splits: 4, stage: false } },
  { name: 'g8s16k1u2-stage', shape: { G: 8, SLOTS: 16, KS: 1, U: 2, splits: 1, stage: true } },
  { name: 'g8s32k1u2-stage', shape: { G: 8, SLOTS: 32, KS: 1, U: 2, splits: 1, stage: true } },
];
