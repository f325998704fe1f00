// CPU reference of the logits-side ops around sampling: vLLM's penalties and the log-probs that
// come back with a sampled token. (The sampling set itself lives in ./reference.ts.)

type Num = ArrayLike<number>;

const f = Math.fround;

/**
 * vLLM's apply_penalties on logits [n, v] (a new array; the input is not touched), with every
 * step rounded to f32 as the kernel computes it. promptIds [n, maxPrompt], outputIds [n, maxOut]
 * and bannedIds [n, maxBanned] are padded with -1; ids outside [0, v) are ignored. A parameter
 * at its neutral value (repetition 1, frequency 0, presence 0) leaves the logit bit for bit.
 */
export function applyPenalties(
  logits: Num,
  n: number,
  v: number,
  promptIds: Num,
  maxPrompt: number,
  outputIds: Num,
  maxOut: number,
  repetition: Num,
  frequency: Num,
  presence: Num,
  bannedIds: Num,
  maxBanned: number,
): Float64Array {
  const out = Float64Array.from(logits);
  for (let i = 0; i < n; i++) {
    const inPrompt = new Set<number>();
    const counts = new Map<number, number>();
    const banned = new Set<number>();
    const valid = (id: number) => id >= 0 && id < v;
    for (let s = 0; s < maxPrompt; s++) if (valid(promptIds[i * maxPrompt + s])) inPrompt.add(promptIds[i * maxPrompt + s]);
    for (let s = 0; s < maxOut; s++) {
      const id = outputIds[i * maxOut + s];
      if (valid(id)) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (let s = 0; s < maxBanned; s++) if (valid(bannedIds[i * maxBanned + s])) banned.add(bannedIds[i * maxBanned + s]);
    const [r, fr, pr] = [repetition[i], frequency[i], presence[i]];
    for (const id of new Set([...inPrompt, ...counts.keys()])) {
      let l = out[i * v + id];
      const c = counts.get(id) ?? 0;
      if (r !== 1) l = l > 0 ? f(l / r) : f(l * r);
      if (c > 0 && fr !== 0) l = f(l - f(fr * c));
      if (c > 0 && pr !== 0) l = f(l - pr);
      out[i * v + id] = l;
    }
    for (const id of banned) out[i * v + id] = -Infinity;
  }
  return out;
}

/**
 * log_softmax of each row at ids[i] (NaN for an id outside [0, v)), and the row's topN largest
 * log-probs with their ids, in descending order of the logit with the lower id first on ties.
 */
export function logprobs(logits: Num, n: number, v: number, ids: Num, topN: number): { logprob: Float64Array; topIds: Int32Array; topLogprobs: Float64Array } {
  const logprob = new Float64Array(n);
  const topIds = new Int32Array(n * topN);
  const topLogprobs = new Float64Array(n * topN);
  for (let i = 0; i < n; i++) {
    const row = Array.prototype.slice.call(logits, i * v, (i + 1) * v) as number[];
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - mx);
    const logZ = mx + Math.log(sum);
    const id = ids[i];
    logprob[i] = id >= 0 && id < v ? row[id] - logZ : NaN;
    if (!topN) continue;
    const order = Array.from({ length: v }, (_, j) => j).sort((p, q) => (row[q] === row[p] ? p - q : row[q] > row[p] ? 1 : -1));
    for (let j = 0; j < topN; j++) {
      topIds[i * topN + j] = order[j];
      topLogprobs[i * topN + j] = row[order[j]] - logZ;
    }
  }
  return { logprob, topIds, topLogprobs };
}
