// A per-dispatch GPU time profile of the WebGPU backend, for finding where a step's time goes
// (PARALLM_WEBGPU_PROFILE=1; `parallm bench throughput` prints it at the end). With it on, every
// dispatch of a stream runs in a compute pass of its own with timestamps at its start and end,
// and the time is added to the dispatch's op, kernel and row count. Passes of their own cost a
// little (Dawn puts a barrier between dispatches of one pass anyway), so profiled runs are for
// the breakdown, not for the headline figure.

/** Most dispatches profiled per stream: a query set holds at most 4,096 timestamps. */
export const PROFILE_MAX_DISPATCHES = 2048;

export interface ProfileRow {
  /** op, kernel file and flags, a matmul's n x k, and the power-of-two bucket of the dispatch's rows (m) */
  key: string;
  ms: number;
  count: number;
}

export class DispatchProfile {
  private rows = new Map<string, ProfileRow>();
  /** dispatches past PROFILE_MAX_DISPATCHES in a stream, not timed */
  untimed = 0;

  add(key: string, ms: number): void {
    let r = this.rows.get(key);
    if (!r) this.rows.set(key, (r = { key, ms: 0, count: 0 }));
    r.ms += ms;
    r.count++;
  }

  /** Forgets what was added (a benchmark times its run, not the warm-up before it). */
  reset(): void {
    this.rows.clear();
    this.untimed = 0;
  }

  /** Rows by time, largest first. */
  report(): ProfileRow[] {
    return [...this.rows.values()].sort((a, b) => b.ms - a.ms);
  }

  /** The report as a text table with each row's share of the profiled time. */
  table(limit = 40): string {
    const rows = this.report();
    const total = rows.reduce((s, r) => s + r.ms, 0) || 1;
    const lines = [`GPU time by dispatch: ${total.toFixed(0)} ms profiled${this.untimed ? `, ${this.untimed} dispatches untimed` : ''}`];
    for (const r of rows.slice(0, limit)) {
      lines.push(`${((100 * r.ms) / total).toFixed(1).padStart(5)}%  ${r.ms.toFixed(1).padStart(10)} ms  ${String(r.count).padStart(7)} x  ${((1000 * r.ms) / r.count).toFixed(1).padStart(9)} us  ${r.key}`);
    }
    return lines.join('\n');
  }
}

/** The profile key of a dispatch. */
export function profileKey(op: string | undefined, file: string, flags: readonly string[], params: Record<string, number>): string {
  const m = params.m ?? params.num_seqs ?? params.n;
  const bucket = m === undefined ? '' : ` m<=${2 ** Math.ceil(Math.log2(Math.max(1, m)))}`;
  const nk = params.n !== undefined && params.k !== undefined ? ` ${params.n}x${params.k}` : '';
  return `${op ?? 'dispatch'}: ${file.replace(/\.wgsl$/, '')}${flags.length ? `[${flags.join(',')}]` : ''}${nk}${bucket}`;
}
