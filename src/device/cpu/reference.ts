// CPU reference of every op: plain loops, float64 accumulation. This is the oracle of every
// parity test, so it favours being obviously right over being fast.

type Num = ArrayLike<number>;

export function embedding(ids: Num, table: Num, hidden: number): Float64Array {
  const out = new Float64Array(ids.length * hidden);
  for (let i = 0; i < ids.length; i++) {
    const row = ids[i];
    for (let j = 0; j < hidden; j++) out[i * hidden + j] = table[row * hidden + j];
  }
  return out;
}

/** Returns [out, residualOut]; residualOut is the updated residual (x + residual) when given. */
export function rmsNorm(x: Num, weight: Num, n: number, h: number, eps: number, residual?: Num): [Float64Array, Float64Array | undefined] {
  const out = new Float64Array(n * h);
  const res = residual ? new Float64Array(n * h) : undefined;
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let j = 0; j < h; j++) {
      let v = x[i * h + j];
      if (res && residual) {
        // the sum is stored as f32 on the device before it is normalised; do the same
        v = Math.fround(v + residual[i * h + j]);
        res[i * h + j] = v;
      }
      ss += v * v;
    }
    const scale = 1 / Math.sqrt(ss / h + eps);
    for (let j = 0; j < h; j++) {
      const v = res ? res[i * h + j] : x[i * h + j];
      out[i * h + j] = v * scale * weight[j];
    }
  }
  return [out, res];
}

/** cosSin: [maxPos, rot], cos then sin of each position's rot/2 angles */
export function rope(x: Num, positions: Num, cosSin: Num, rot: number, n: number, width: number, numHeads: number, headSize: number, interleaved = false): Float64Array {
  const out = Float64Array.from(x);
  const half = rot / 2;
  for (let t = 0; t < n; t++) {
    for (let hd = 0; hd < numHeads; hd++) {
      const base = t * width + hd * headSize;
      for (let i = 0; i < half; i++) {
        const c = cosSin[positions[t] * rot + i];
        const s = cosSin[positions[t] * rot + half + i];
        const i0 = interleaved ? base + 2 * i : base + i;
        const i1 = interleaved ? base + 2 * i + 1 : base + i + half;
        const a = x[i0];
        const b = x[i1];
        out[i0] = a * c - b * s;
        out[i1] = b * c + a * s;
      }
    }
  }
  return out;
}

export function siluAndMul(x: Num, n: number, inter: number): Float64Array {
  const out = new Float64Array(n * inter);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < inter; j++) {
      const g = x[i * 2 * inter + j];
      const u = x[i * 2 * inter + inter + j];
      out[i * inter + j] = (g / (1 + Math.exp(-g))) * u;
    }
  }
  return out;
}

/** out[m, n] = sum_k a[m, k] * w[n, k] + bias[n] */
export function matmul(a: Num, w: Num, m: number, n: number, k: number, bias?: Num): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = bias ? bias[j] : 0;
      for (let p = 0; p < k; p++) acc += a[i * k + p] * w[j * k + p];
      out[i * n + j] = acc;
    }
  }
  return out;
}

export function softmax(x: Num, n: number, v: number): Float64Array {
  const out = new Float64Array(n * v);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < v; j++) mx = Math.max(mx, x[i * v + j]);
    let sum = 0;
    for (let j = 0; j < v; j++) sum += Math.exp(x[i * v + j] - mx);
    for (let j = 0; j < v; j++) out[i * v + j] = Math.exp(x[i * v + j] - mx) / sum;
  }
  return out;
}

/** resolve_tokens: placeholders v <= -2 become sampled[-v - 2] (-1 where that row does not exist). */
export function resolveTokens(ids: Num, sampled: Num): Int32Array {
  return Int32Array.from(ids, (v) => (v <= -2 ? (sampled[-v - 2] ?? -1) : v));
}

export function argmax(x: Num, n: number, v: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < v; j++) if (x[i * v + j] > x[i * v + best]) best = j;
    out[i] = best;
  }
  return out;
}

/**
 * The set of tokens a row may sample from, by definition (sort, not bisection): the top-k
 * logits (ties at the k-th value included), then the smallest prefix of those, in descending
 * order, whose renormalised probability reaches top_p (ties at the cut value included), then
 * the logits >= max + temperature * ln(min_p) (min_p <= 0: none cut). The min-p threshold is
 * computed in f32 from the f32 parameters, step by step as the kernels do, so that both cut
 * at the same logit (up to the GPU's ln, which WGSL does not require to be correctly rounded).
 * Returns the kept mask and the probabilities softmax(logits / temperature) over the row.
 */
export function samplingSet(row: Num, temperature: number, topK: number, topP: number, minP = 0): { keep: Uint8Array; probs: Float64Array } {
  const v = row.length;
  const scaled = Float64Array.from(row, (x) => x / temperature);
  const probs = softmax(scaled, 1, v);
  const order = Array.from({ length: v }, (_, i) => i).sort((p, q) => row[q] - row[p]);
  const keep = new Uint8Array(v);
  const k = topK > 0 && topK < v ? topK : v;
  const kth = row[order[k - 1]];
  let mass = 0;
  for (let j = 0; j < v; j++) if (row[j] >= kth) mass += probs[j];
  let cut = kth;
  if (topP < 1) {
    let acc = 0;
    for (const j of order) {
      if (row[j] < kth) break;
      acc += probs[j] / mass;
      cut = row[j];
      if (acc >= topP) break;
    }
  }
  let t = Math.max(kth, cut);
  if (minP > 0) {
    const f = Math.fround;
    // probability ratio p / p_max = exp((x - max) / T) >= min_p  <=>  x >= max + T ln(min_p)
    t = Math.max(t, f(row[order[0]] + f(f(temperature) * f(Math.log(Math.min(f(minP), 1))))));
  }
  for (let j = 0; j < v; j++) keep[j] = row[j] >= t ? 1 : 0;
  return { keep, probs };
}

export function sample(logits: Num, n: number, v: number, temperature: Num, topK: Num, topP: Num, minP: Num, draws: Num): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = Array.prototype.slice.call(logits, i * v, (i + 1) * v) as number[];
    if (temperature[i] <= 0) {
      out[i] = argmax(row, 1, v)[0];
      continue;
    }
    const { keep, probs } = samplingSet(row, temperature[i], topK[i], topP[i], minP[i]);
    let total = 0;
    for (let j = 0; j < v; j++) if (keep[j]) total += probs[j];
    const target = draws[i] * total;
    let acc = 0;
    let pick = -1;
    for (let j = 0; j < v; j++) {
      // a token of probability 0 (a -inf logit) is never drawn, not even past the last bin
      if (!keep[j] || probs[j] === 0) continue;
      pick = j;
      acc += probs[j];
      if (acc > target) break;
    }
    out[i] = pick;
  }
  return out;
}
