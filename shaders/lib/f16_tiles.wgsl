// Staging of 16-byte chunks (8 halves, read as vec4<u32>) into the f16 workgroup tiles `as_`
// and `ws_` that the including kernel declares (matmul_sgmat.wgsl, matmul_gemv_mma.wgsl). A
// subgroup matrix loads from an array of its own component type, so the halves are stored one
// by one, starting at word `rot` of the chunk (0..3: the chunk's column in its tile row, mod 4)
// so that the lanes of a subgroup spread over the banks.

// v's words in the order rot, rot + 1, .. (mod 4); by selects: a dynamic index v[(rot + s) & 3]
// went through memory and made the lab kernel slower than the one it replaced (13.6 vs 19.1
// TFLOP/s, bench/results/lab/sgmat-v2-*-a.txt)
fn rotated(v: vec4<u32>, rot: u32) -> vec4<u32> {
  return select(select(v, v.yzwx, rot == 1u), select(v.zwxy, v.wxyz, rot == 3u), rot >= 2u);
}

// The 8 halves of v (one 16-byte chunk of a tile row) into as_ at d. In matmul_sgmat a subgroup
// store covers 8 rows x 4 chunks, and a row is 5 chunks long (KP = 40 halves): writing word s of
// every chunk at step s would put the 32 lanes on 8 banks (4-way conflict); starting at word rot
// = the lane's chunk column puts them on 32.
fn put_a(d: u32, v: vec4<u32>, rot: u32) {
  let r = rotated(v, rot);
  let o0 = d + 2u * (rot & 3u);
  let h0 = bitcast<vec2<f16>>(r.x);
  as_[o0] = h0.x;
  as_[o0 + 1u] = h0.y;
  let o1 = d + 2u * ((rot + 1u) & 3u);
  let h1 = bitcast<vec2<f16>>(r.y);
  as_[o1] = h1.x;
  as_[o1 + 1u] = h1.y;
  let o2 = d + 2u * ((rot + 2u) & 3u);
  let h2 = bitcast<vec2<f16>>(r.z);
  as_[o2] = h2.x;
  as_[o2 + 1u] = h2.y;
  let o3 = d + 2u * ((rot + 3u) & 3u);
  let h3 = bitcast<vec2<f16>>(r.w);
  as_[o3] = h3.x;
  as_[o3 + 1u] = h3.y;
}

// put_a for ws_ (a subgroup matrix loads from an array of its own component type, so the two
// tiles are separate arrays and a pointer to either cannot be passed in)
fn put_w(d: u32, v: vec4<u32>, rot: u32) {
  let r = rotated(v, rot);
  let o0 = d + 2u * (rot & 3u);
  let h0 = bitcast<vec2<f16>>(r.x);
  ws_[o0] = h0.x;
  ws_[o0 + 1u] = h0.y;
  let o1 = d + 2u * ((rot + 1u) & 3u);
  let h1 = bitcast<vec2<f16>>(r.y);
  ws_[o1] = h1.x;
  ws_[o1 + 1u] = h1.y;
  let o2 = d + 2u * ((rot + 2u) & 3u);
  let h2 = bitcast<vec2<f16>>(r.z);
  ws_[o2] = h2.x;
  ws_[o2 + 1u] = h2.y;
  let o3 = d + 2u * ((rot + 3u) & 3u);
  let h3 = bitcast<vec2<f16>>(r.w);
  ws_[o3] = h3.x;
  ws_[o3 + 1u] = h3.y;
}
