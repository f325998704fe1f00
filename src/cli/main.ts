// The parallm command line. Each command is a small module; this file only wires them up.

import { Command, Option } from 'commander';
import { BACKENDS, createDevice } from '../device/index.ts';

const program = new Command();
program.name('parallm').description('High-throughput LLM inference for Node.js (WebGPU and native CUDA/HIP backends)');

const backendOption = () => new Option('--backend <name>', 'device backend').choices(BACKENDS).default('webgpu');

program
  .command('info')
  .description('print the device a backend would use: adapter, features, limits')
  .addOption(backendOption())
  .action(async (opts: { backend: string }) => {
    const dev = await createDevice(opts.backend);
    console.log(JSON.stringify(dev.info, null, 2));
    dev.destroy();
  });

program
  .command('bench')
  .description('benchmarks')
  .command('ops')
  .description('time every op at LLaMA-7B shapes against the device ceilings (copy bandwidth, matmul rate)')
  .addOption(backendOption())
  .option('--out <dir>', 'directory for the JSON results', 'bench/results')
  .option('--quick', 'fewer shapes and repeats (smoke test)')
  .action(async (opts: { backend: string; out: string; quick?: boolean }) => {
    const { runOpsBench } = await import('../../bench/ops.ts');
    await runOpsBench(opts);
  });

try {
  await program.parseAsync(process.argv);
  process.exit(0);
} catch (e) {
  const err = e as Error;
  // errors a user can cause are typed and printed without a stack
  if (['BackendUnavailableError', 'UnsupportedError', 'TensorTooLargeError'].includes(err.name)) {
    console.error(`parallm: ${err.message}`);
    process.exit(2);
  }
  throw e;
}
