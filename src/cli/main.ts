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
  .command('generate')
  .description('generate text for one-off prompts (streamed for a single prompt)')
  .argument('<prompts...>', 'prompt text(s)')
  .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, *.safetensors, tokenizer.json)')
  .addOption(backendOption())
  .option('--max-tokens <n>', 'tokens to generate per prompt', (v) => parseInt(v, 10), 64)
  .option('--temperature <t>', 'sampling temperature (0 = greedy)', parseFloat, 0)
  .option('--top-k <k>', 'top-k (0 = off)', (v) => parseInt(v, 10), 0)
  .option('--top-p <p>', 'top-p (1 = off)', parseFloat, 1)
  .option('--seed <n>', 'seed of the sampling draws', (v) => parseInt(v, 10), 0)
  .option('--chat', "wrap each prompt as a user message in the model's chat template")
  .option('--ignore-eos', 'keep generating past the end-of-sequence token')
  .option('--block-size <n>', 'tokens per KV-cache block', (v) => parseInt(v, 10), 16)
  .action(async (prompts: string[], opts) => {
    const { generate } = await import('./generate.ts');
    await generate(prompts, opts);
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
  if (['BackendUnavailableError', 'UnsupportedError', 'TensorTooLargeError', 'ModelConfigError', 'WeightsError', 'TokenizerError'].includes(err.name)) {
    console.error(`parallm: ${err.message}`);
    process.exit(2);
  }
  throw e;
}
