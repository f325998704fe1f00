// The query tile a prefill workgroup takes, for the kernels whose grid is an upper bound of the
// launch's query tiles (prefill_attention_flash.wgsl, prefill_attention_mma.wgsl): tiles of BQ
// rows, each sequence's query rows split into whole tiles. The includer declares WG (threads a
// workgroup), BQ, params (num_seqs, max_blocks, block_size), query_starts and context_lens.

// (sequence or num_seqs if none, first row of the tile in the sequence, its first token row, qlen)
var<workgroup> tile_sh: vec4u;
var<workgroup> scan_sh: array<u32, WG>;
var<workgroup> ctx_sh: u32;

// Query tile `tile` of the launch into tile_sh, and its sequence's context length (clamped to the
// block table) into ctx_sh, for the caller to read with workgroupUniformLoad. The sequences'
// query-tile counts, WG at a time, are prefix-summed across the workgroup (log2 WG steps, where
// one thread walking them all would take num_seqs); the thread whose sequence's range of tiles
// holds `tile` writes it, none for a spare workgroup of the upper bound (tile_sh.x stays num_seqs).
// Called by every thread of the workgroup, in uniform control flow.
fn find_query_tile(lid: u32, tile: u32) {
  if (lid == 0u) { tile_sh = vec4u(params.num_seqs, 0u, 0u, 0u); }
  var before = 0u;
  for (var base = 0u; base < params.num_seqs; base += WG) {
    let s = base + lid;
    var start = 0;
    var qlen = 0u;
    if (s < params.num_seqs) {
      start = query_starts[s];
      qlen = u32(max(query_starts[s + 1u] - start, 0));
    }
    let n = (qlen + BQ - 1u) / BQ;
    scan_sh[lid] = n;
    workgroupBarrier();
    for (var off = 1u; off < WG; off *= 2u) {
      var v = scan_sh[lid];
      if (lid >= off) { v += scan_sh[lid - off]; }
      workgroupBarrier();
      scan_sh[lid] = v;
      workgroupBarrier();
    }
    let incl = before + scan_sh[lid];
    if (n > 0u && tile >= incl - n && tile < incl) {
      tile_sh = vec4u(s, (tile - (incl - n)) * BQ, u32(start), qlen);
      ctx_sh = u32(clamp(context_lens[s], 0, i32(params.max_blocks * params.block_size)));
    }
    before += scan_sh[WG - 1u];
    workgroupBarrier();
  }
}
