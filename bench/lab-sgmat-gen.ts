// Generator of the subgroup-matrix matmul lab variants shaders/lab/sgmat_v2_*.wgsl (out = a @ w^T,
// f16 x f16 -> f32 on 16 x 16 x 16 matrices). One template, unrolled by hand per variant: the
// accumulators are separately named variables (acc00 .. acc33), since an array of them was not
// kept in registers (docs/perf-notes.md). bench/lab-sgmat.ts writes the variants (untracked) and
// times them; to read one without a GPU:   npx tsx bench/lab-sgmat-gen.ts
//
// What every variant shares, and why:
// - The k-slice of a and w is staged through workgroup memory with 16-byte global loads, rows
//   padded by 8 halves so that the matrix loads (8 rows of 16 bytes per phase) hit 8 distinct
//   16-byte bank groups.
// - Stores into workgroup memory are f16 scalars (a subgroup matrix loads only from an array of
//   its component type). A lane writes one half of its 16-byte chunk per store, so in the
//   64x128 kernel (shaders/lab/sgmat_staged_64x128.wgsl) the 32 lanes of a store hit the same
//   word of 32 chunks: 8 banks, a 4-way conflict, 32 shared-memory cycles per 512 bytes. Here the lanes of one store cover 8 rows x 4
//   chunks (rows differ in lane & 7, chunks in lane >> 3) and a lane writes the words of its
//   chunk in an order rotated by lane >> 3: with a row stride of 5 (BK 32) or 9 (BK 64) chunks,
//   the 32 lanes then hit 32 banks.
// - Global loads of 8 rows x 64 contiguous bytes per subgroup instruction: whole 32-byte sectors.
// - PREFETCH: the next k-slice is loaded into registers while the matrix units work on this one
//   (register double buffering; two workgroup buffers would not fit the larger tiles in 32 KiB).
//
// sgmat_v2_128 became the op's kernel, shaders/matmul_sgmat.wgsl (hand-maintained there, with
// the edge guards it needs: rows past m, columns past n).
//
// Contract of the generated kernels (the lab keeps it; the planner would have to as well):
// a: [m_pad, k] f16 and out: [m_pad, ldo] f32 with m_pad a multiple of TM (a zero past m);
// n a multiple of 16; k a multiple of 8. Split k as in matmul_sgmat.wgsl (k_chunk a multiple of
// BK, partials at out + chunk * split_stride, summed by matmul_splitk_reduce.wgsl).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SgVariant {
  /** file stem under shaders/lab/ */
  name: string;
  /** subgroups (of 32) over the tile's rows and columns */
  sgr: number;
  sgc: number;
  /** 16 x 16 accumulators per subgroup over rows and columns */
  wm: number;
  wn: number;
  bk: 32 | 64;
  prefetch: boolean;
  /** timing ablations, output wrong by design: without the multiplies, without staging (no loads or
   * stores in the k loop), or with the global loads but no workgroup stores (the loads are folded
   * into one word that is stored at the end, so that they are not removed) */
  ablate?: 'nomma' | 'nostage' | 'noput' | 'loadonly';
  /** workgroup stores: 'rot' (default) the 4 words of a chunk in a lane-rotated order, conflict-free;
   * 'plain' the 8 halves in address order, which a compiler may merge into one 16-byte store */
  store?: 'rot' | 'plain';
  /** two workgroup buffers: slice i + 1 is stored while slice i is multiplied, one barrier per slice */
  double?: boolean;
  /** tile order: 0 (default) row blocks of out in turn, all column tiles of each (so every row block
   * streams all of w); g > 0 bands of g row blocks, the band's row blocks fastest, so that the
   * workgroups in flight share w's tiles in L2 */
  group?: number;
  /** interior k-slices (every chunk of the slice inside k_end, the tile's columns inside n: uniform
   * over the workgroup) load without a guard per chunk, so that the compiler can issue all of a
   * thread's loads back to back */
  uncond?: boolean;
  /** k-slices prefetched into registers ahead of the one in workgroup memory (1 by default; 2 holds
   * twice the registers for loads and gives them two slices' multiplies to land) */
  depth?: 1 | 2;
  /** warp specialization: this many extra subgroups only load and stage (two workgroup buffers,
   * one barrier a slice) while the sgr x sgc subgroups only multiply */
  ws?: number;
  /** operand layout in memory: 'rows' (default) a and w row-major; 'tiled' both stored as
   * [rows / T][k / BK][T][BK] (T = TM for a, TN for w), so that one k-slice of a tile is one
   * contiguous block and a subgroup's 16-byte loads cover 512 contiguous bytes (4 whole 128-byte
   * lines) in place of 8 rows x 64 bytes; k % BK == 0. bench/lab-sgmat.ts uploads tiled copies.
   * 'tiled-a' / 'tiled-w': only that operand tiled */
  layout?: 'rows' | 'tiled' | 'tiled-a' | 'tiled-w';
  /** two lines for the lab's report */
  about: string;
}

export const tileOf = (v: SgVariant) => ({ tm: v.sgr * v.wm * 16, tn: v.sgc * v.wn * 16, threads: (v.sgr * v.sgc + (v.ws ?? 0)) * 32 });
export const smemBytes = (v: SgVariant) => {
  const { tm, tn } = tileOf(v);
  return (tm + tn) * (v.bk + 8) * 2 * (v.double || v.ws ? 2 : 1);
};

export const VARIANTS: SgVariant[] = [
  { name: 'sgmat_v5_t', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled', about: 'sgmat_v4_u on tiled operands: a slice of a tile is one contiguous block' },
  { name: 'sgmat_v5_t_loadonly', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled', ablate: 'loadonly', about: 'ablation of sgmat_v5_t: the global loads and barriers only' },
  { name: 'sgmat_v5_t_nomma', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled', ablate: 'nomma', about: 'ablation of sgmat_v5_t: staging only' },
  { name: 'sgmat_v5_t_db', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, double: true, layout: 'tiled', about: 'sgmat_v5_t with two workgroup buffers (40 KiB): one barrier a slice, the stores of slice i + 1 beside the multiplies of slice i' },
  { name: 'sgmat_v5_t_d2', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, depth: 2, layout: 'tiled', about: 'sgmat_v5_t with two k-slices in registers ahead of workgroup memory' },
  { name: 'sgmat_v5_t_ws_d2', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ws: 4, depth: 2, layout: 'tiled', about: 'sgmat_v5_t warp-specialized: 4 subgroups multiply, 4 load two slices ahead and stage, two buffers' },
  { name: 'sgmat_v5_t_w8', sgr: 4, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled', about: 'sgmat_v5_t as 8 subgroups of 32 x 64 (more warps, half the accumulators each)' },
  { name: 'sgmat_v5_ta', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled-a', about: 'sgmat_v4_u with a tiled, w row-major' },
  { name: 'sgmat_v5_tw', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled-w', about: 'sgmat_v4_u with w tiled, a row-major' },
  { name: 'sgmat_v5_256x128_t', sgr: 4, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled', about: 'sgmat_v4_256x128_u on tiled operands' },
  { name: 'sgmat_v5_128x256_t', sgr: 2, sgc: 4, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, layout: 'tiled', about: 'sgmat_v4_128x256_u on tiled operands' },
  { name: 'sgmat_v4_u', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, about: 'sgmat_v3_128 with unguarded loads on interior slices' },
  { name: 'sgmat_v4_u_nomma', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ablate: 'nomma', about: 'ablation of sgmat_v4_u: staging only' },
  { name: 'sgmat_v4_d2', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, depth: 2, about: 'sgmat_v4_u with two k-slices in registers ahead of workgroup memory' },
  { name: 'sgmat_v4_d2_nomma', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, depth: 2, ablate: 'nomma', about: 'ablation of sgmat_v4_d2: staging only' },
  { name: 'sgmat_v4_w8_u', sgr: 4, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: true, uncond: true, about: '128x128, 8 subgroups of 32x64, unguarded interior loads' },
  { name: 'sgmat_v4_w8_d2', sgr: 4, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: true, uncond: true, depth: 2, about: 'sgmat_v4_w8_u with two k-slices in registers ahead' },
  { name: 'sgmat_v4_ws', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ws: 4, about: '128x128: 4 subgroups multiply (64x64 each), 4 more load and stage, two buffers' },
  { name: 'sgmat_v4_ws_d2', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ws: 4, depth: 2, about: 'sgmat_v4_ws with two k-slices in the loaders\' registers' },
  { name: 'sgmat_v4_ws_d2_nomma', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ws: 4, depth: 2, ablate: 'nomma', about: 'ablation of sgmat_v4_ws_d2: staging only' },
  { name: 'sgmat_v4_u_noput', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ablate: 'noput', about: 'ablation of sgmat_v4_u: global loads and multiplies, no workgroup stores' },
  { name: 'sgmat_v4_u_loadonly', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ablate: 'loadonly', about: 'ablation of sgmat_v4_u: the global loads and barriers only' },
  { name: 'sgmat_v4_128x256_u', sgr: 2, sgc: 4, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, about: 'sgmat_v3_128x256 with unguarded interior loads' },
  { name: 'sgmat_v4_256x128_u', sgr: 4, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, about: 'sgmat_v3_256x128 with unguarded interior loads' },
  { name: 'sgmat_v4_bk64_u', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 64, prefetch: true, uncond: true, about: 'sgmat_v4_u with BK 64: whole 128-byte rows per load, half the barriers (40 KiB)' },
  { name: 'sgmat_v4_bk64_u_loadonly', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 64, prefetch: true, uncond: true, ablate: 'loadonly', about: 'ablation of sgmat_v4_bk64_u: global loads and barriers only' },
  { name: 'sgmat_v4_64x128_u', sgr: 2, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: true, uncond: true, about: '64x128, 4 subgroups of 32x64 (8 accumulators: fewer registers, more workgroups a multiprocessor), unguarded loads' },
  { name: 'sgmat_v4_128x64_u', sgr: 2, sgc: 2, wm: 4, wn: 2, bk: 32, prefetch: true, uncond: true, about: '128x64, 4 subgroups of 64x32, unguarded loads' },
  { name: 'sgmat_v4_ws2_d2', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, uncond: true, ws: 2, depth: 2, about: 'sgmat_v4_ws_d2 with 2 loader subgroups (16 loads a slice each)' },
  { name: 'sgmat_v3_128', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, about: 'sgmat_v2_128 (the op kernel without its edge guards), the baseline of the v3 ablations' },
  { name: 'sgmat_v3_128x256', sgr: 2, sgc: 4, wm: 4, wn: 4, bk: 32, prefetch: true, about: '128x256, 8 subgroups of 64x64: a quarter less staged traffic per product than 128x128' },
  { name: 'sgmat_v3_256x128', sgr: 4, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, about: '256x128, 8 subgroups of 64x64' },
  { name: 'sgmat_v3_256', sgr: 4, sgc: 4, wm: 4, wn: 4, bk: 32, prefetch: true, about: '256x256, 16 subgroups of 64x64: half the staged traffic per product of 128x128 (40 KiB of workgroup memory)' },
  { name: 'sgmat_v3_256_nomma', sgr: 4, sgc: 4, wm: 4, wn: 4, bk: 32, prefetch: true, ablate: 'nomma', about: 'ablation of sgmat_v3_256: staging only' },
  { name: 'sgmat_v3_g4', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, group: 4, about: 'sgmat_v3_128 with tiles in bands of 4 row blocks (512 rows), row blocks fastest' },
  { name: 'sgmat_v3_g8', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, group: 8, about: 'sgmat_v3_128 with tiles in bands of 8 row blocks (1,024 rows), row blocks fastest' },
  { name: 'sgmat_v3_g16', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, group: 16, about: 'sgmat_v3_128 with tiles in bands of 16 row blocks (2,048 rows), row blocks fastest' },
  { name: 'sgmat_v3_g16_nomma', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, group: 16, ablate: 'nomma', about: 'ablation of sgmat_v3_g16: staging only' },
  { name: 'sgmat_v3_ab_nomma', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, ablate: 'nomma', about: 'ablation of sgmat_v3_128: staging only, no multiplies' },
  { name: 'sgmat_v3_ab_nostage', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, ablate: 'nostage', about: 'ablation of sgmat_v3_128: matrix loads and multiplies only, no global loads or workgroup stores' },
  { name: 'sgmat_v3_ab_noput', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, ablate: 'noput', about: 'ablation of sgmat_v3_128: global loads and multiplies, no workgroup stores' },
  { name: 'sgmat_v3_plain', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, store: 'plain', about: 'sgmat_v3_128 with its workgroup stores in address order (mergeable into 16-byte stores, 4-way bank conflicts)' },
  { name: 'sgmat_v3_db', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, double: true, about: 'sgmat_v3_128 with two workgroup buffers: one barrier per slice, stores of slice i + 1 beside the multiplies of slice i' },
  { name: 'sgmat_v3_db_plain', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, double: true, store: 'plain', about: 'sgmat_v3_db with plain stores' },
  { name: 'sgmat_v2_swz', sgr: 2, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: false, about: "matmul_sgmat's blocking (64x128, 4 subgroups of 2x4) with conflict-free workgroup stores only" },
  { name: 'sgmat_v2_pf', sgr: 2, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: true, about: '64x128 as the op, conflict-free stores, next k-slice prefetched into registers' },
  { name: 'sgmat_v2_128', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 32, prefetch: true, about: '128x128, 4 subgroups of 64x64 (4x4 accumulators: 8 matrix loads feed 16 multiplies), prefetch' },
  { name: 'sgmat_v2_128w8', sgr: 4, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: true, about: '128x128, 8 subgroups of 32x64 (more warps to hide latency, fewer registers each), prefetch' },
  { name: 'sgmat_v2_128x256', sgr: 2, sgc: 4, wm: 4, wn: 4, bk: 32, prefetch: true, about: '128x256, 8 subgroups of 64x64: most reuse per staged byte (30 KiB of workgroup memory), prefetch' },
  { name: 'sgmat_v2_64x256', sgr: 1, sgc: 4, wm: 4, wn: 4, bk: 32, prefetch: true, about: 'small m: 64x256, 4 subgroups of 64x64, each w slice read once for all 64 rows; split k fills the GPU' },
  { name: 'sgmat_v2_128_bk64', sgr: 2, sgc: 2, wm: 4, wn: 4, bk: 64, prefetch: true, about: '128x128 with BK 64: half the barriers, 8 16-byte loads per thread per slice (36 KiB: may exceed the limit)' },
  { name: 'sgmat_v2_ab_nomma', sgr: 2, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: false, ablate: 'nomma', about: 'ablation of sgmat_v2_swz: staging only (global loads, workgroup stores, barriers), no multiplies' },
  { name: 'sgmat_v2_ab_nostage', sgr: 2, sgc: 2, wm: 2, wn: 4, bk: 32, prefetch: false, ablate: 'nostage', about: 'ablation of sgmat_v2_swz: matrix loads and multiplies on whatever is in workgroup memory, no staging' },
];

export function generate(v: SgVariant): string {
  const { tm, tn, threads } = tileOf(v);
  const V = v.bk / 8; // 16-byte chunks per tile row
  const gpr = V / 4; // 32-lane groups per 8 rows
  const consumers = v.sgr * v.sgc;
  const loaders = v.ws ? v.ws * 32 : threads; // threads that load and stage
  const na = (tm * V) / loaders;
  const nw = (tn * V) / loaders;
  const depth = v.depth ?? 1;
  if (depth > 1 && (!v.prefetch || v.double)) throw new Error(`${v.name}: depth 2 is a register prefetch of a single buffer`);
  if (v.ws && (!v.prefetch || v.double)) throw new Error(`${v.name}: warp specialization prefetches into registers and has its own two buffers`);
  if (v.layout && v.layout !== 'rows' && v.bk !== 32) throw new Error(`${v.name}: the tiled layout is written for BK 32 (a subgroup's 8 rows x 4 chunks are then 512 contiguous bytes)`);
  if (!Number.isInteger(na) || !Number.isInteger(nw)) throw new Error(`${v.name}: tile rows x chunks not a multiple of the threads`);
  const L: string[] = [];
  const ind = (n: number) => '  '.repeat(n);
  const accs: [number, number][] = [];
  for (let i = 0; i < v.wm; i++) for (let j = 0; j < v.wn; j++) accs.push([i, j]);

  L.push(`// GENERATED by bench/lab-sgmat-gen.ts (variant ${v.name}); edit the generator, not this file.`);
  L.push(`// ${v.about}`);
  L.push(`// Tile ${tm} x ${tn} per workgroup of ${threads / 32} subgroups (${v.sgr} x ${v.sgc}), each ${v.wm * 16} x ${v.wn * 16} as ${v.wm} x ${v.wn}`);
  L.push(`// accumulators; BK ${v.bk}; ${v.prefetch ? 'next k-slice prefetched into registers' : 'no prefetch'}. Workgroup memory ${smemBytes(v)} bytes.`);
  L.push(`// a: [m_pad, k] f16 (m_pad a multiple of ${tm}); w: [n, k] f16, n % 16 == 0; out: [m_pad, ldo] f32.`);
  L.push(`enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
#include "lib/common.wgsl"

struct Params { m: u32, n: u32, k: u32, ldo: u32, col0: u32, tiles_n: u32, tiles: u32, k_chunk: u32, split_stride: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const TM = ${tm}u;
const TN = ${tn}u;
const BK = ${v.bk}u;
const KP = BK + 8u;
var<workgroup> as_: array<f16, TM * KP * ${v.double || v.ws ? 2 : 1}u>;
var<workgroup> ws_: array<f16, TN * KP * ${v.double || v.ws ? 2 : 1}u>;

// the 8 halves of v into as_ (or ws_) at d, its 4 words in an order rotated by rot (see the generator)
fn put_a(d: u32, v: vec4<u32>, rot: u32) {`);
  for (const arr of ['a', 'w']) {
    if (arr === 'w') L.push(`fn put_w(d: u32, v: vec4<u32>, rot: u32) {`);
    if (v.store === 'plain') {
      ['x', 'y', 'z', 'w'].forEach((c, s) => {
        L.push(`  let h${s} = bitcast<vec2<f16>>(v.${c});`);
        L.push(`  ${arr}s_[d + ${2 * s}u] = h${s}.x;`);
        L.push(`  ${arr}s_[d + ${2 * s + 1}u] = h${s}.y;`);
      });
      L.push('}');
      continue;
    }
    // rotated by selects, not v[(rot + s) & 3]: a dynamic vector index may go through memory
    L.push('  let r = select(select(v, v.yzwx, rot == 1u), select(v.zwxy, v.wxyz, rot == 3u), rot >= 2u);');
    ['x', 'y', 'z', 'w'].forEach((c, s) => {
      L.push(`  let o${s} = d + 2u * ((rot + ${s}u) & 3u);`);
      L.push(`  let h${s} = bitcast<vec2<f16>>(r.${c});`);
      L.push(`  ${arr}s_[o${s}] = h${s}.x;`);
      L.push(`  ${arr}s_[o${s} + 1u] = h${s}.y;`);
    });
    L.push('}');
  }
  L.push(`
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sgs: u32) {
  let t = wg_index(wid, nwg);
  let chunk = t / params.tiles;
  let tile = t % params.tiles;
  let base = chunk * params.split_stride;
  let k_begin = chunk * params.k_chunk;
  let k_end = min(params.k, k_begin + params.k_chunk);
${v.group ? `  let tiles_m = params.tiles / params.tiles_n;
  let band = tile / (${v.group}u * params.tiles_n);
  let band_m = min(${v.group}u, tiles_m - band * ${v.group}u);
  let in_band = tile - band * ${v.group}u * params.tiles_n;
  let tr = (band * ${v.group}u + in_band % band_m) * TM;
  let tc = (in_band / band_m) * TN;` : `  let tr = (tile / params.tiles_n) * TM;
  let tc = (tile % params.tiles_n) * TN;`}
  let sg = lid / sgs;
  let sr = (sg / ${v.sgc}u) * ${v.wm * 16}u; // this subgroup's rows and columns within the tile
  let sc = (sg % ${v.sgc}u) * ${v.wn * 16}u;
  let k8 = params.k / 8u;
  let end8 = k_end / 8u;
  // load slots: a 32-lane group covers 8 rows (lane & 7) x 4 chunks (lane >> 3)
  let pid = ${v.ws ? `select(0u, lid - ${consumers * 32}u, lid >= ${consumers * 32}u); // the loader's index (warp specialization)` : 'lid;'}
  let r8 = pid & 7u;
  let cq = (pid >> 3u) & 3u;
  let g0 = pid >> 5u;`);
  const slot = (p: string, i: number) => {
    const g = `(g0 + ${(i * loaders) / 32}u)`;
    const row = gpr === 1 ? `${g} * 8u + r8` : `(${g} / ${gpr}u) * 8u + r8`;
    const cv = gpr === 1 ? 'cq' : `(${g} % ${gpr}u) * 4u + cq`;
    L.push(`  let ${p}row${i} = ${row};`);
    L.push(`  let ${p}cv${i} = ${cv};`);
    L.push(`  let ${p}d${i} = ${p}row${i} * KP + ${p}cv${i} * 8u;`);
  };
  for (let i = 0; i < na; i++) slot('a', i);
  for (let i = 0; i < nw; i++) slot('w', i);
  // tiled: the slice at chunk kv of tile row r is at tile_base + kv * T + r * V (kv a multiple of V)
  const tiledA = v.layout === 'tiled' || v.layout === 'tiled-a';
  const tiledW = v.layout === 'tiled' || v.layout === 'tiled-w';
  for (let i = 0; i < na; i++) L.push(tiledA ? `  let ap${i} = tr * k8 + arow${i} * ${V}u + acv${i};` : `  let ap${i} = (tr + arow${i}) * k8 + acv${i};`);
  for (let i = 0; i < nw; i++) L.push(`  let wok${i} = tc + wrow${i} < params.n;`);
  for (let i = 0; i < nw; i++) L.push(tiledW ? `  let wp${i} = tc * k8 + wrow${i} * ${V}u + wcv${i};` : `  let wp${i} = (tc + wrow${i}) * k8 + wcv${i};`);
  const aAt = (kv: string) => (tiledA ? `${kv} * TM` : kv);
  const wAt = (kv: string) => (tiledW ? `${kv} * TN` : kv);
  for (const [i, j] of accs) L.push(`  var acc${i}${j} = subgroup_matrix_result<f32, 16, 16>();`);
  for (const r of depth > 1 ? ['v', 'x'] : ['v']) {
    for (let i = 0; i < na; i++) L.push(`  var ${r}a${i} = vec4<u32>();`);
    for (let i = 0; i < nw; i++) L.push(`  var ${r}w${i} = vec4<u32>();`);
  }
  if (v.uncond) L.push(`  let wfull = tc + TN <= params.n;`);
  // the slice at chunk kvExpr into registers r (v: the next slice to stage; x: the one after it)
  const loads = (d: number, kvExpr: string, r = 'v') => {
    const guarded = (dd: number) => {
      for (let i = 0; i < na; i++) L.push(`${ind(dd)}${r}a${i} = vec4<u32>(); if (${kvExpr} + acv${i} < end8) { ${r}a${i} = a[ap${i} + ${aAt(kvExpr)}]; }`);
      for (let i = 0; i < nw; i++) L.push(`${ind(dd)}${r}w${i} = vec4<u32>(); if (wok${i} && ${kvExpr} + wcv${i} < end8) { ${r}w${i} = w[wp${i} + ${wAt(kvExpr)}]; }`);
    };
    if (!v.uncond) return guarded(d);
    L.push(`${ind(d)}if (wfull && ${kvExpr} + ${V}u <= end8) {`);
    for (let i = 0; i < na; i++) L.push(`${ind(d + 1)}${r}a${i} = a[ap${i} + ${aAt(kvExpr)}];`);
    for (let i = 0; i < nw; i++) L.push(`${ind(d + 1)}${r}w${i} = w[wp${i} + ${wAt(kvExpr)}];`);
    L.push(`${ind(d)}} else {`);
    guarded(d + 1);
    L.push(`${ind(d)}}`);
  };
  const shift = (d: number) => {
    for (let i = 0; i < na; i++) L.push(`${ind(d)}va${i} = xa${i};`);
    for (let i = 0; i < nw; i++) L.push(`${ind(d)}vw${i} = xw${i};`);
  };
  const stage = v.ablate !== 'nostage';
  const put = v.ablate !== 'noput' && v.ablate !== 'loadonly';
  if (!put) L.push('  var sink = 0u;');
  // the staging of the slice in registers into workgroup buffer `buf` (an expression)
  const puts = (d: number, buf: string) => {
    if (!put) {
      for (let i = 0; i < na; i++) L.push(`${ind(d)}sink ^= va${i}.x ^ va${i}.y ^ va${i}.z ^ va${i}.w;`);
      for (let i = 0; i < nw; i++) L.push(`${ind(d)}sink ^= vw${i}.x ^ vw${i}.y ^ vw${i}.z ^ vw${i}.w;`);
      return;
    }
    for (let i = 0; i < na; i++) L.push(`${ind(d)}put_a(${buf === '0u' ? '' : `${buf} * TM * KP + `}ad${i}, va${i}, cq);`);
    for (let i = 0; i < nw; i++) L.push(`${ind(d)}put_w(${buf === '0u' ? '' : `${buf} * TN * KP + `}wd${i}, vw${i}, cq);`);
  };
  const mmas = (abase: string, wbase: string, d = 2) => {
    for (let ks = 0; ks < v.bk; ks += 16) {
      for (let i = 0; i < v.wm; i++) L.push(`${ind(d)}let l${i}_${ks} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&as_, ${abase}(sr + ${16 * i}u) * KP + ${ks}u, KP);`);
      for (let j = 0; j < v.wn; j++) {
        L.push(`${ind(d)}let q${j}_${ks} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws_, ${wbase}(sc + ${16 * j}u) * KP + ${ks}u, KP);`);
        for (let i = 0; i < v.wm && v.ablate !== 'nomma' && v.ablate !== 'loadonly'; i++) L.push(`${ind(d)}acc${i}${j} = subgroupMatrixMultiplyAccumulate(l${i}_${ks}, q${j}_${ks}, acc${i}${j});`);
      }
    }
  };
  if (v.ws) {
    // loaders: slice 0 staged and slice 1 (and 2 at depth 2) in registers before the loop; in the
    // loop the multipliers work on buffer cur while the loaders stage the next slice into the
    // other buffer and load the one after; one barrier a slice
    L.push(`  let loader = lid >= ${consumers * 32}u;`);
    L.push('  if (loader) {');
    loads(2, '(k_begin / 8u)');
    if (stage) puts(2, '0u');
    loads(2, '((k_begin + BK) / 8u)');
    if (depth > 1) loads(2, '((k_begin + 2u * BK) / 8u)', 'x');
    L.push('  }');
    L.push('  workgroupBarrier();');
    L.push('  var cur = 0u;');
    L.push('  for (var k0 = k_begin; k0 < k_end; k0 += BK) {');
    L.push('    if (!loader) {');
    mmas('cur * TM * KP + ', 'cur * TN * KP + ', 3);
    L.push('    } else {');
    if (stage) {
      L.push('      if (k0 + BK < k_end) {');
      puts(4, '(1u - cur)');
      L.push('      }');
    }
    if (depth > 1) {
      shift(3);
      L.push('      if (k0 + 3u * BK < k_end) {');
      loads(4, '((k0 + 3u * BK) / 8u)', 'x');
      L.push('      }');
    } else {
      L.push('      if (k0 + 2u * BK < k_end) {');
      loads(4, '((k0 + 2u * BK) / 8u)');
      L.push('      }');
    }
    L.push('    }');
    L.push('    workgroupBarrier();');
    L.push('    cur = 1u - cur;');
    L.push('  }');
  } else if (v.double) {
    if (!v.prefetch) throw new Error(`${v.name}: double buffering loads the next slice ahead (prefetch)`);
    // slice 0 staged before the loop; in the loop: load slice i + 1, multiply slice i, store slice i + 1 into the other buffer, one barrier
    loads(1, '(k_begin / 8u)');
    if (stage) puts(1, '0u');
    L.push('  workgroupBarrier();');
    L.push('  var cur = 0u;');
    L.push('  for (var k0 = k_begin; k0 < k_end; k0 += BK) {');
    L.push('    let kn = (k0 + BK) / 8u;');
    L.push('    let more = k0 + BK < k_end;');
    if (stage) {
      L.push('    if (more) {');
      loads(3, 'kn');
      L.push('    }');
    }
    mmas('cur * TM * KP + ', 'cur * TN * KP + ');
    if (stage) {
      L.push('    if (more) {');
      puts(3, '(1u - cur)');
      L.push('    }');
    }
    L.push('    workgroupBarrier();');
    L.push('    cur = 1u - cur;');
    L.push('  }');
  } else {
    if (v.prefetch) loads(1, '(k_begin / 8u)');
    if (depth > 1) {
      L.push('  if (k_begin + BK < k_end) {');
      loads(2, '((k_begin + BK) / 8u)', 'x');
      L.push('  }');
    }
    L.push('  for (var k0 = k_begin; k0 < k_end; k0 += BK) {');
    if (!v.prefetch && stage) loads(2, '(k0 / 8u)');
    if (stage) puts(2, '0u');
    L.push('    workgroupBarrier();');
    if (depth > 1) {
      L.push('    // the slice after next goes in flight while the matrix units work on this one');
      shift(2);
      L.push('    if (k0 + 2u * BK < k_end) {');
      loads(3, '((k0 + 2u * BK) / 8u)', 'x');
      L.push('    }');
    } else if (v.prefetch) {
      L.push('    // the next slice is in flight while the matrix units work on this one');
      L.push('    let kn = (k0 + BK) / 8u;');
      L.push('    if (k0 + BK < k_end) {');
      loads(3, 'kn');
      L.push('    }');
    }
    mmas('', '');
    L.push('    workgroupBarrier();');
    L.push('  }');
  }
  if (!put) L.push('  if (sink == 0x9e3779b9u) { out[0] = 1.0; }');
  if (v.ws) L.push(`  if (loader) { return; }`);
  L.push('  let r0 = tr + sr;');
  L.push('  let c0 = tc + sc;');
  L.push('  // out has m_pad rows: only whole 16-column blocks past n are skipped');
  for (const [i, j] of accs) {
    L.push(`  if (c0 + ${16 * j}u < params.n) { subgroupMatrixStore<row_major>(&out, base + (r0 + ${16 * i}u) * params.ldo + params.col0 + c0 + ${16 * j}u, acc${i}${j}, params.ldo); }`);
  }
  L.push('}');
  return L.join('\n') + '\n';
}

export const SHADER_LAB_DIR = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'shaders', 'lab');

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const v of VARIANTS) {
    writeFileSync(join(SHADER_LAB_DIR, `${v.name}.wgsl`), generate(v));
    const { tm, tn, threads } = tileOf(v);
    console.log(`${v.name}.wgsl: ${tm}x${tn}, ${threads} threads, ${smemBytes(v)} B workgroup memory`);
  }
}
