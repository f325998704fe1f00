// A planned matmul (a kernel's dispatches in a launch shape the planner may not choose) against
// the CPU reference: random a [m, k] f32, w [n, k] f16 scaled by 1/sqrt(k), an optional bias, the
// output poisoned with NaN. Shared by the launch-shape tests of the WebGPU gemv kernels.

import { type OpArgs, fromArray, toArray } from '../../src/device/index.ts';
import type { Dispatch } from '../../src/device/webgpu/plan.ts';
import type { WebGpuDevice } from '../../src/device/webgpu/backend.ts';
import { host, normal, output, reference, relErr } from './harness.ts';

/** Runs plan(args) on dev and returns its dispatches and ‖out − ref‖ / ‖ref‖. */
export async function planParity(
  dev: WebGpuDevice,
  r: () => number,
  m: number,
  [n, k]: [number, number],
  withBias: boolean,
  plan: (args: OpArgs['matmul']) => Dispatch[],
): Promise<{ dispatches: Dispatch[]; err: number }> {
  const a = normal(r, m * k);
  const w = normal(r, n * k, 1 / Math.sqrt(k));
  const bias = normal(r, n);
  const ta = fromArray(dev, a, [m, k], 'f32');
  const tw = fromArray(dev, w, [n, k], 'f16');
  const tb = withBias ? fromArray(dev, bias, [n], 'f32') : undefined;
  const to = fromArray(dev, new Float64Array(m * n).fill(NaN), [m, n], 'f32');
  try {
    const s = dev.stream();
    const dispatches = plan({ a: ta, w: tw, bias: tb, out: to });
    for (const d of dispatches) s.dispatch(d);
    await s.submit().done();
    const want = await reference('matmul', { a: host(a, [m, k]), w: host(w, [n, k], 'f16'), bias: withBias ? host(bias, [n]) : undefined, out: output([m, n]) });
    return { dispatches, err: relErr(await toArray(dev, to), want.out) };
  } finally {
    for (const t of [ta, tw, tb, to]) if (t) dev.free(t.buffer);
  }
}
