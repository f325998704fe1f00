// Garbage collection at a moment the engine chooses.
//
// On the WebGPU backend V8's full collections (~50 ms of marking plus ~50 ms of native time right
// after, every 1-2 s of a 7B run, docs/perf-notes.md session 8) stall the host at moments of
// V8's choosing; with one step queued ahead (~70 ms of GPU work) the GPU then runs dry. Here the
// engine collects right after a launch, while two steps are queued, once the heap has grown by
// PARALLM_STEP_GC_MB since the last collection (0: off). The default is STEP_GC_WEBGPU_MB on
// WebGPU and off elsewhere: on an H200, 1,000 7B requests ran 7,188 tokens/s with it against 6,905
// (GPU idle 0.1% against 4.1%); native, whose idle was 0.4% already, was unchanged (18,646 /
// 18,616).

import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** The heap growth (MB) between the engine's collections on WebGPU: 16 beat 32 at 300 requests (idle 0.6-0.8% / 1.2-2.1%). */
export const STEP_GC_WEBGPU_MB = 16;

export interface StepGc {
  /** collects if the heap grew past the threshold; returns the ms it took (0 when it did not) */
  maybeCollect(): number;
  collections: number;
  ms: number;
  thresholdMb: number;
}

/** A StepGc for the setting v (PARALLM_STEP_GC_MB's value or the engine's default), or undefined when off. */
export function stepGcFromEnv(v: string | undefined): StepGc | undefined {
  if (v === undefined || v === '' || v === '0') return undefined;
  const mb = Number(v);
  if (!(mb > 0)) throw new Error(`PARALLM_STEP_GC_MB=${v}: expected a number of MB > 0`);
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (opts?: unknown) => void;
  const threshold = mb * 2 ** 20;
  let base = getHeapStatistics().used_heap_size;
  const s: StepGc = {
    collections: 0,
    ms: 0,
    thresholdMb: mb,
    maybeCollect() {
      if (getHeapStatistics().used_heap_size - base < threshold) return 0;
      const t = performance.now();
      gc();
      const ms = performance.now() - t;
      base = getHeapStatistics().used_heap_size;
      s.collections++;
      s.ms += ms;
      return ms;
    },
  };
  return s;
}
