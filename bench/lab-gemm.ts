// Matmul lab: the matmul op (f32 activations, f16 weights, f32 out: the model's projections) on one
// backend at the LLaMA-2-7B projection shapes and the row counts of decode batches and prefill
// steps, weights rotated over copies past the L2 as a model's layers are, in steady state (each
// case back to back for 300 ms before it is timed). One line per (rows, shape): us, TFLOP/s,
// GB/s of weights. bench/lab_torch_gemm.py times PyTorch's GEMMs at the same shapes.
//   npx tsx bench/lab-gemm.ts [--backend=native] [--rows=64,256,2048] [--shapes=4096x4096]
import { createDevice, empty, fromArray } from '../src/device/index.ts';
import { weight } from './ops.ts';

const args = process.argv.slice(2);
const opt = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const backend = opt('backend') ?? 'native';
const rows = (opt('rows') ?? '64,128,256,320,512,2048').split(',').map(Number);
const shapes = (opt('shapes') ?? '4096x4096,12288x4096,22016x4096,4096x11008').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const warmMs = Number(opt('warm-ms') ?? 300);

const dev = await createDevice(backend);
console.log(`device: ${dev.info.backend} ${dev.info.name ?? ''}`);
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

for (const [n, k] of shapes) {
  const copies = Math.max(2, Math.ceil((256 * 2 ** 20) / (n * k * 2)));
  // the weights as the model holds them: packed where the device packs (Device.packWeight)
  const made = Array.from({ length: copies }, () => weight(dev, rand(n * k).map((x) => x * 0.02), n, k));
  const ws = made.map(([w]) => w);
  for (const m of rows) {
    const a = fromArray(dev, rand(m * k), [m, k], 'f32');
    const out = empty(dev, [m, n], 'f32');
    const run = async (reps: number, timing: boolean) => {
      const s = dev.stream({ timing });
      for (let i = 0; i < reps; i++) s.op('matmul', { a, w: ws[i % copies], out });
      const c = s.submit();
      return timing ? (await c.elapsedMs()) / reps : (await c.done(), 0);
    };
    await run(2, false);
    const est = await run(4, true);
    const reps = Math.max(4, Math.min(200, Math.ceil(20 / Math.max(est, 1e-3))));
    for (const t0 = performance.now(); performance.now() - t0 < warmMs; ) await run(reps, false);
    const ts: number[] = [];
    for (let t = 0; t < 5; t++) ts.push(await run(reps, true));
    ts.sort((x, y) => x - y);
    const us = ts[2] * 1e3;
    console.log(`m=${String(m).padEnd(5)} ${n}x${String(k).padEnd(6)} ${backend}: ${us.toFixed(1).padStart(8)} us ${((2 * m * n * k) / us / 1e6).toFixed(1).padStart(7)} TFLOP/s ${((n * k * 2) / us / 1e3).toFixed(0).padStart(7)} GB/s`);
    dev.free(a.buffer);
    dev.free(out.buffer);
  }
  for (const t of made.flatMap(([, all]) => all)) dev.free(t.buffer);
}
dev.destroy();
