// parallm kernels compare: the op benchmark (./ops.ts) on the webgpu and the native backend in
// one run, side by side: per op and shape, each backend's time, its GB/s or TFLOP/s, its
// fraction of its own device ceilings (copy bandwidth, matmul rate, measured by each backend on
// the same GPU), and native's speedup. Writes bench/results/kernels-<gpu>-<date>.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchResult, runOpsBench } from './ops.ts';

export interface CompareOptions {
  out: string;
  quick?: boolean;
  backends?: [string, string];
}

export async function compareKernels(opts: CompareOptions): Promise<void> {
  const [a, b] = opts.backends ?? ['webgpu', 'native'];
  const results: Record<string, BenchResult | string> = {};
  for (const backend of [a, b]) {
    try {
      results[backend] = await runOpsBench({ backend, out: opts.out, quick: opts.quick });
    } catch (e) {
      // one backend missing (no addon, no GPU) still leaves the other's figures
      results[backend] = `${(e as Error).name}: ${(e as Error).message}`;
      console.error(`kernels compare: ${backend} did not run: ${results[backend]}`);
    }
  }
  const ra = typeof results[a] === 'object' ? (results[a] as BenchResult) : undefined;
  const rb = typeof results[b] === 'object' ? (results[b] as BenchResult) : undefined;
  const any = ra ?? rb;
  if (!any) throw new Error(`kernels compare: neither ${a} nor ${b} ran`);
  // the GPU's name as the vendor's runtime gives it (native: "NVIDIA H100 80GB HBM3") where that
  // backend ran; Dawn's adapter info reads "nvidia nvidia-h100-80gb-hbm3"
  const gpu = [ra, rb].find((r) => r?.device.backend === 'native')?.gpu ?? any.gpu;

  const key = (r: { op: string; shape: string }) => `${r.op} | ${r.shape}`;
  const rowsB = new Map((rb?.rows ?? []).map((r) => [key(r), r]));
  const keys = [...new Set([...(ra?.rows ?? []).map(key), ...(rb?.rows ?? []).map(key)])];
  const rowsA = new Map((ra?.rows ?? []).map((r) => [key(r), r]));
  const rate = (r?: { gbps?: number; tflops?: number }) => (r?.gbps !== undefined ? `${r.gbps} GB/s` : r?.tflops !== undefined ? `${r.tflops} TFLOP/s` : '');
  const pct = (x?: number) => (x !== undefined ? `${Math.round(x * 1000) / 10}%` : '');
  const lines = [
    `| op | shape | ${a} kernel | ${a} ms | ${a} rate | ${a} of ceiling | ${b} kernel | ${b} ms | ${b} rate | ${b} of ceiling | ${a} / ${b} time |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const table = keys.map((k) => {
    const x = rowsA.get(k);
    const y = rowsB.get(k);
    const [op, shape] = k.split(' | ');
    const ratio = x && y && y.ms > 0 ? Math.round((x.ms / y.ms) * 100) / 100 : undefined;
    lines.push(`| ${op} | ${shape} | ${x?.kernel ?? ''} | ${x?.ms ?? ''} | ${rate(x)} | ${pct(x?.fraction)} | ${y?.kernel ?? ''} | ${y?.ms ?? ''} | ${rate(y)} | ${pct(y?.fraction)} | ${ratio ?? ''} |`);
    return { op, shape, [a]: x, [b]: y, ratio };
  });
  const ceil = (r?: BenchResult) => (r ? `copy ${r.ceilings.copyGBps} GB/s, matmul ${r.ceilings.matmulTflops} TFLOP/s (${r.ceilings.matmulKernel})` : 'did not run');
  console.log(`\n${gpu}, commit ${any.commit}`);
  console.log(`${a}: ${ra ? ra.device.description : results[a]}; ceilings ${ceil(ra)}`);
  console.log(`${b}: ${rb ? rb.device.description : results[b]}; ceilings ${ceil(rb)}\n`);
  console.log(lines.join('\n'));
  mkdirSync(opts.out, { recursive: true });
  const slug = gpu.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const file = join(opts.out, `kernels-${slug}-${any.date}.json`);
  writeFileSync(file, JSON.stringify({ gpu, date: any.date, commit: any.commit, backends: { [a]: ra ?? results[a], [b]: rb ?? results[b] }, table }, null, 2) + '\n');
  console.log(`\nwritten to ${file}`);
}
