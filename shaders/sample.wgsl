// sample: one token per row from softmax(logits / temperature), restricted to the top-k
// logits, then to the top-p (nucleus) mass of those, then to the tokens at least min_p times
// as likely as the most likely one, by inverse CDF in vocabulary order at the row's uniform
// draw. temperature <= 0 is greedy (argmax). Only the ids leave the GPU.
//
// No sort: the k-th largest logit and the nucleus cut are found exactly by building their
// order-preserving u32 keys bit by bit from the top (32 counting passes each), which needs
// only workgroup reductions. min_p needs no search: its cut is a logit, max + T ln(min_p).
// logits: [n, v] f32; temperature, top_p, min_p, draws (uniform in [0, 1)): [n] f32;
// top_k: [n] i32; out: [n] i32.

#include "lib/common.wgsl"

struct Params { n: u32, v: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> temperature: array<f32>;
@group(0) @binding(3) var<storage, read> top_k: array<i32>;
@group(0) @binding(4) var<storage, read> top_p: array<f32>;
@group(0) @binding(5) var<storage, read> min_p: array<f32>;
@group(0) @binding(6) var<storage, read> draws: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<i32>;

const WG = 256u;
var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;
// the row's top_k and top_p, read by one thread and loaded by all with workgroupUniformLoad, so
// that the searches they enable are skipped in uniform control flow
var<workgroup> row_k: i32;
var<workgroup> row_p: f32;

// Order-preserving map of f32 to u32: a < b  <=>  key(a) < key(b).
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn sum_f(lid: u32, v: f32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_f[lid] += red_f[lid + s]; }
    workgroupBarrier();
  }
  let r = red_f[0];
  workgroupBarrier();
  return r;
}

fn sum_u(lid: u32, v: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_u[lid] += red_u[lid + s]; }
    workgroupBarrier();
  }
  let r = red_u[0];
  workgroupBarrier();
  return r;
}

fn max_u(lid: u32, v: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_u[lid] = max(red_u[lid], red_u[lid + s]); }
    workgroupBarrier();
  }
  let r = red_u[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg_index(wid, nwg);
  if (row >= params.n) { return; }
  let v = params.v;
  let base = row * v;
  let temp = temperature[row];

  // Barriers stay in uniform control flow, which llvmpipe's GL path needs to compute reductions
  // correctly: a search that a row's parameters disable (top_k off, top_p >= 1) is skipped on a
  // value the whole workgroup loaded as one (each is 32 passes over the row: both together were
  // ~95% of the kernel's time, 0.55 ms for 256 rows of 32,000 on an H200).
  if (lid == 0u) {
    row_k = top_k[row];
    row_p = top_p[row];
  }
  let k_in = workgroupUniformLoad(&row_k);
  let p = workgroupUniformLoad(&row_p);

  // the largest key, and the lowest index holding it (the greedy answer)
  var mk = 0u;
  for (var j = lid; j < v; j += WG) { mk = max(mk, key(logits[base + j])); }
  mk = max_u(lid, mk);
  var first = 0xffffffffu;
  for (var j = lid; j < v; j += WG) {
    if (key(logits[base + j]) == mk) { first = min(first, j); }
  }
  first = ~max_u(lid, ~first); // min through max
  let greedy = temp <= 0.0;
  let inv_t = select(1.0 / temp, 1.0, greedy);
  // the largest logit, decoded from its key
  let maxv = bitcast<f32>(select(mk & 0x7fffffffu, ~mk, (mk & 0x80000000u) == 0u));

  // top-k: the largest t with count(key >= t) >= k is the key of the k-th largest logit
  // (k = v keeps everything: tk = 0)
  let k = select(v, u32(k_in), k_in > 0 && u32(k_in) < v);
  var tk = 0u;
  if (k < v) {
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = tk | (1u << u32(bit));
      var c = 0u;
      for (var j = lid; j < v; j += WG) { c += select(0u, 1u, key(logits[base + j]) >= cand); }
      if (sum_u(lid, c) >= k) { tk = cand; }
    }
  }

  // top-p: the largest t whose kept mass reaches top_p of the top-k mass (top_p >= 1: t = 0,
  // no cut beyond top-k)
  var t = 0u;
  if (p < 1.0) {
    var z = 0.0;
    for (var j = lid; j < v; j += WG) {
      let x = logits[base + j];
      z += select(0.0, exp((x - maxv) * inv_t), key(x) >= tk);
    }
    z = sum_f(lid, z);
    let mass_goal = p * z;
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = t | (1u << u32(bit));
      let lim = max(cand, tk);
      var s = 0.0;
      for (var j = lid; j < v; j += WG) {
        let x = logits[base + j];
        s += select(0.0, exp((x - maxv) * inv_t), key(x) >= lim);
      }
      if (sum_f(lid, s) >= mass_goal) { t = cand; }
    }
  }
  // min_p: p / p_max = exp((x - max) / T) >= min_p  <=>  x >= max + T ln(min_p), computed in
  // f32 as the CPU reference does (min_p > 1 acts as 1: the most likely token always stays);
  // +0 and -0 are one logit but two keys, so a cut at 0 takes the lower key. No cut passes
  // the largest logit (top_p 0 asks for the smallest nucleus: the most likely token).
  let mp = min(min_p[row], 1.0);
  let lim_m = maxv + temp * log(mp);
  let cut_m = select(0u, select(key(lim_m), 0x7fffffffu, lim_m == 0.0), mp > 0.0);
  let cut = min(max(max(t, tk), cut_m), mk);
  var z = 0.0;
  for (var j = lid; j < v; j += WG) {
    let x = logits[base + j];
    z += select(0.0, exp((x - maxv) * inv_t), key(x) >= cut);
  }
  z = sum_f(lid, z);

  // inverse CDF in vocabulary order: each thread owns a contiguous chunk; an exclusive scan
  // of the chunk sums finds the chunk holding the draw
  let chunk = (v + WG - 1u) / WG;
  let lo = min(lid * chunk, v);
  let hi = min(lo + chunk, v);
  var cs = 0.0;
  var last = 0u; // 1 + the chunk's last kept token of nonzero weight: a -inf logit is never drawn
  for (var j = lo; j < hi; j++) {
    let x = logits[base + j];
    let e = exp((x - maxv) * inv_t);
    if (key(x) >= cut && e > 0.0) { cs += e; last = j + 1u; }
  }
  // a serial scan of 256 sums by one thread costs nothing next to the passes above, and is
  // exact on every backend (a Hillis-Steele scan miscomputed on llvmpipe's GL path)
  red_f[lid] = cs;
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0.0;
    for (var i = 0u; i < WG; i++) {
      let c = red_f[i];
      red_f[i] = run;
      run += c;
    }
  }
  workgroupBarrier();
  let excl = red_f[lid];
  let incl = excl + cs;
  let goal = draws[row] * z;
  var pick = 0u; // 1 + index, 0 = not in this chunk
  if (cs > 0.0 && excl <= goal && goal < incl) {
    var acc = excl;
    for (var j = lo; j < hi; j++) {
      let x = logits[base + j];
      let e = exp((x - maxv) * inv_t);
      if (key(x) >= cut && e > 0.0) {
        acc += e;
        pick = j + 1u;
        if (acc > goal) { break; }
      }
    }
  }
  // rounding can leave the draw past the last chunk: take the last kept token then
  let picked = max_u(lid, pick);
  let fallback = max_u(lid, last);
  if (lid == 0u) { out[row] = select(i32(select(fallback, picked, picked > 0u) - 1u), i32(first), greedy); }
}
