// logprobs: log_softmax of each row at its chosen token, and (TOP) the row's top_n largest
// log-probs with their ids, in descending order with the lower id first on ties.
//
// One workgroup per row and one pass over it: each thread keeps an online max and sum of
// exp (rescaled when its max grows) and a sorted list of its own top_n, in the order
// (logit desc, id asc); a tree of pairwise merges in workgroup memory then leaves the row's
// lists in slot 0. top_n <= 20, so a merge is at most 20 steps of one thread.
// logits: [n, v] f32; ids: [n] i32; out_logprob: [n] f32; out_top_ids: [n, top_n] i32;
// out_top_logprobs: [n, top_n] f32

#include "lib/common.wgsl"

struct Params { n: u32, v: u32, top_n: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out_logprob: array<f32>;
#if TOP
@group(0) @binding(4) var<storage, read_write> out_top_ids: array<i32>;
@group(0) @binding(5) var<storage, read_write> out_top_logprobs: array<f32>;
#endif

// 128 threads x 20 entries x (f32 + u32) = 20 KiB of the 32 KiB of workgroup memory
const WG = 128u;
const NMAX = 20u;
const NONE = 0xffffffffu; // an empty list entry: after every real one, -inf logits included
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
#if TOP
var<workgroup> top_v: array<f32, WG * NMAX>;
var<workgroup> top_i: array<u32, WG * NMAX>;
#endif

// whether (av, ai) comes before (bv, bi): larger logit, then lower id
fn before(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
  return ai != NONE && (bi == NONE || av > bv || (av == bv && ai < bi));
}

// s * exp(m_s - m) without the NaN of exp(-inf - -inf) when s is an empty sum
fn rescale(s: f32, m_s: f32, m: f32) -> f32 {
  return select(0.0, s * exp(m_s - m), s > 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg_index(wid, nwg);
  if (row >= params.n) { return; }
  let v = params.v;
  let base = row * v;
  let top_n = params.top_n;

#if TOP
  var lv: array<f32, NMAX>;
  var li: array<u32, NMAX>;
  for (var q = 0u; q < NMAX; q++) { lv[q] = 0.0; li[q] = NONE; }
#endif
  var m = bitcast<f32>(0xff800000u | (lid & 0u)); // -inf (a runtime value: a constant inf is an error)
  var s = 0.0;
  for (var j = lid; j < v; j += WG) {
    let x = logits[base + j];
    if (x > m) {
      s = rescale(s, m, x) + 1.0;
      m = x;
    } else if (s > 0.0) {
      s += exp(x - m);
    }
#if TOP
    // ascending j: an equal logit arriving later has the higher id and stays below
    if (before(x, j, lv[top_n - 1u], li[top_n - 1u])) {
      var q = top_n - 1u;
      while (q > 0u && before(x, j, lv[q - 1u], li[q - 1u])) {
        lv[q] = lv[q - 1u];
        li[q] = li[q - 1u];
        q--;
      }
      lv[q] = x;
      li[q] = j;
    }
#endif
  }

  // the row's max and sum: a tree of (max, sum) pairs
  red_m[lid] = m;
  red_s[lid] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) {
      let m2 = max(red_m[lid], red_m[lid + h]);
      red_s[lid] = rescale(red_s[lid], red_m[lid], m2) + rescale(red_s[lid + h], red_m[lid + h], m2);
      red_m[lid] = m2;
    }
    workgroupBarrier();
  }
  let log_z = red_m[0] + log(red_s[0]);

  if (lid == 0u) {
    let id = ids[row];
    let ok = id >= 0 && u32(id) < v;
    let nan = bitcast<f32>(0x7fc00000u | (lid & 0u));
    out_logprob[row] = select(nan, logits[base + u32(select(0, id, ok))] - log_z, ok);
  }

#if TOP
  let mine = lid * NMAX;
  for (var q = 0u; q < top_n; q++) {
    top_v[mine + q] = lv[q];
    top_i[mine + q] = li[q];
  }
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) {
      // merge this list with the one h slots on into lv/li, then store it back here
      let other = (lid + h) * NMAX;
      var a = 0u;
      var b = 0u;
      for (var q = 0u; q < top_n; q++) {
        let take_a = !before(top_v[other + b], top_i[other + b], top_v[mine + a], top_i[mine + a]);
        if (take_a) {
          lv[q] = top_v[mine + a];
          li[q] = top_i[mine + a];
          a++;
        } else {
          lv[q] = top_v[other + b];
          li[q] = top_i[other + b];
          b++;
        }
      }
      for (var q = 0u; q < top_n; q++) {
        top_v[mine + q] = lv[q];
        top_i[mine + q] = li[q];
      }
    }
    workgroupBarrier();
  }
  if (lid < top_n) {
    // fewer than top_n entries only when v < top_n, which checkOp rules out
    out_top_ids[row * top_n + lid] = i32(top_i[lid]);
    out_top_logprobs[row * top_n + lid] = top_v[lid] - log_z;
  }
#endif
}
