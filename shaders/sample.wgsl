// sample: one token per row from softmax(logits / temperature), restricted to the top-k
// logits and then to the top-p (nucleus) mass of those, by inverse CDF in vocabulary order at
// the row's uniform draw. temperature <= 0 is greedy (argmax). Only the ids leave the GPU.
//
// No sort: the k-th largest logit and the nucleus cut are found exactly by building their
// order-preserving u32 keys bit by bit from the top (32 counting passes each), which needs
// only workgroup reductions.
// logits: [n, v] f32; temperature, top_p, draws (uniform in [0, 1)): [n] f32; top_k: [n] i32; out: [n] i32.

#include "lib/common.wgsl"

struct Params { n: u32, v: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> temperature: array<f32>;
@group(0) @binding(3) var<storage, read> top_k: array<i32>;
@group(0) @binding(4) var<storage, read> top_p: array<f32>;
@group(0) @binding(5) var<storage, read> draws: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<i32>;

const WG = 256u;
var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;

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

  // the largest key (and for greedy rows, the lowest index holding it)
  var mk = 0u;
  for (var j = lid; j < v; j += WG) { mk = max(mk, key(logits[base + j])); }
  mk = max_u(lid, mk);
  if (temp <= 0.0) {
    var first = 0xffffffffu;
    for (var j = lid; j < v; j += WG) {
      if (key(logits[base + j]) == mk) { first = min(first, j); }
    }
    first = ~max_u(lid, ~first); // min through max
    if (lid == 0u) { out[row] = i32(first); }
    return;
  }
  let inv_t = 1.0 / temp;
  // the largest logit, decoded from its key
  let maxv = bitcast<f32>(select(mk & 0x7fffffffu, ~mk, (mk & 0x80000000u) == 0u));

  // top-k: the largest t with count(key >= t) >= k is the key of the k-th largest logit
  var tk = 0u;
  let k = top_k[row];
  if (k > 0 && u32(k) < v) {
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = tk | (1u << u32(bit));
      var c = 0u;
      for (var j = lid; j < v; j += WG) { c += select(0u, 1u, key(logits[base + j]) >= cand); }
      if (sum_u(lid, c) >= u32(k)) { tk = cand; }
    }
  }

  // top-p: the largest t whose kept mass reaches top_p of the top-k mass
  var z = 0.0;
  for (var j = lid; j < v; j += WG) {
    let x = logits[base + j];
    z += select(0.0, exp((x - maxv) * inv_t), key(x) >= tk);
  }
  z = sum_f(lid, z);
  var cut = tk;
  let p = top_p[row];
  if (p < 1.0) {
    let target = p * z;
    var t = 0u;
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = t | (1u << u32(bit));
      let lim = max(cand, tk);
      var s = 0.0;
      for (var j = lid; j < v; j += WG) {
        let x = logits[base + j];
        s += select(0.0, exp((x - maxv) * inv_t), key(x) >= lim);
      }
      if (sum_f(lid, s) >= target) { t = cand; }
    }
    cut = max(t, tk);
    z = 0.0;
    for (var j = lid; j < v; j += WG) {
      let x = logits[base + j];
      z += select(0.0, exp((x - maxv) * inv_t), key(x) >= cut);
    }
    z = sum_f(lid, z);
  }

  // inverse CDF in vocabulary order: each thread owns a contiguous chunk; an exclusive scan
  // of chunk sums finds the chunk holding the draw
  let chunk = (v + WG - 1u) / WG;
  let lo = min(lid * chunk, v);
  let hi = min(lo + chunk, v);
  var cs = 0.0;
  var last = 0u;
  for (var j = lo; j < hi; j++) {
    let x = logits[base + j];
    if (key(x) >= cut) { cs += exp((x - maxv) * inv_t); last = j + 1u; }
  }
  red_f[lid] = cs;
  workgroupBarrier();
  for (var s = 1u; s < WG; s <<= 1u) {
    let add = select(0.0, red_f[lid - s], lid >= s);
    workgroupBarrier();
    red_f[lid] += add;
    workgroupBarrier();
  }
  let incl = red_f[lid];
  let excl = incl - cs;
  let target = draws[row] * z;
  var pick = 0u; // 1 + index, 0 = not in this chunk
  if (cs > 0.0 && excl <= target && target < incl) {
    var acc = excl;
    for (var j = lo; j < hi; j++) {
      let x = logits[base + j];
      if (key(x) >= cut) {
        acc += exp((x - maxv) * inv_t);
        pick = j + 1u;
        if (acc > target) { break; }
      }
    }
  }
  // rounding can leave the draw past the last chunk: take the last kept token then
  let picked = max_u(lid, pick);
  let fallback = max_u(lid, last);
  if (lid == 0u) { out[row] = i32(select(fallback, picked, picked > 0u) - 1u); }
}
