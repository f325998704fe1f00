// The parallm command line. Each command is a small module; this file only wires them up.

import { Command, Option } from 'commander';
import { BACKENDS, createDevice } from '../device/index.ts';
import { DEFAULT_MODEL_NAME, modelOrDefault } from './default-model.ts';
import { registerServe } from './serve.ts';

/** A wrong combination of flags: printed without a stack. */
class UsageError extends Error {
  override name = 'UsageError';
}

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
  .option('--model <dir>', `Hugging Face model directory (config.json, *.safetensors, tokenizer.json); default: the embedded ${DEFAULT_MODEL_NAME}`)
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
    await generate(prompts, { ...opts, model: modelOrDefault(opts.model) });
  });

const bench = program.command('bench').description('benchmarks');

bench
  .command('throughput')
  .description("offline throughput, like vLLM's benchmark_throughput: every request at once, timed to the last token")
  .option('--model <dir>', `Hugging Face model directory (default without --dummy: the embedded ${DEFAULT_MODEL_NAME})`)
  .addOption(new Option('--dummy <preset>', 'random weights of a preset shape instead of --model').choices(['llama-2-7b', 'llama-2-13b', 'llama-2-70b', 'llama-3-8b']))
  .addOption(backendOption())
  .addOption(new Option('--workload <name>', 'request shapes').choices(['fixed', 'sharegpt-shaped']).default('fixed'))
  .option('--dataset <file>', 'a ShareGPT JSON file (needs --model for its tokenizer)')
  .option('--input-len <n>', 'prompt tokens per request (fixed)', (v) => parseInt(v, 10), 256)
  .option('--output-len <n>', 'output tokens per request (fixed)', (v) => parseInt(v, 10), 256)
  .option('--num-prompts <n>', 'requests', (v) => parseInt(v, 10), 1000)
  .option('--max-num-seqs <n>', 'sequences per step', (v) => parseInt(v, 10))
  .option('--max-num-batched-tokens <n>', 'tokens per step', (v) => parseInt(v, 10))
  .option('--num-gpu-blocks <n>', 'KV blocks (default: sized from device memory)', (v) => parseInt(v, 10))
  .option('--block-size <n>', 'tokens per KV block', (v) => parseInt(v, 10), 16)
  .option('--seed <n>', 'workload and sampling seed', (v) => parseInt(v, 10), 0)
  .option('--out <dir>', 'directory for the JSON result', 'bench/results')
  .option('--ceilings <file>', "PyTorch's ceilings on this GPU (scripts/torch_ceilings.py) for the roofline (default: an H200's)")
  .option('--peers <file>', 'peers measured on this GPU and workload (scripts/peers_throughput.py), written beside parallm')
  .option('--no-overlap', 'wait for each step before building the next (A/B of the step overlap)')
  .option('--no-warmup', 'skip the run of each step shape before the benchmark (A/B of the warm-up; it is on by default on a GPU)')
  .action(async (opts) => {
    if (opts.model && opts.dummy) throw new UsageError('bench throughput: give --model DIR or --dummy PRESET, not both');
    if (!opts.dummy) opts.model = modelOrDefault(opts.model);
    if (opts.warmup !== false) delete opts.warmup; // only --no-warmup says anything; else the LLM's default
    const { runThroughput } = await import('../../bench/throughput.ts');
    await runThroughput(opts);
  });

bench
  .command('serving')
  .description("online serving, like vLLM's benchmark_serving: a workload sent with Poisson arrivals at each request rate to an OpenAI-compatible server, streamed")
  .option('--base-url <url>', 'the server', 'http://127.0.0.1:8000')
  .option('--model <name>', 'served model name to request (default: the first of /v1/models)')
  .addOption(new Option('--api-key <key>', 'sent as "Authorization: Bearer <key>"').env('PARALLM_API_KEY'))
  .option('--label <name>', "the curve's name in the figure, e.g. 'parallm webgpu' (default: the backend or model)")
  .addOption(new Option('--workload <name>', 'request shapes').choices(['fixed', 'sharegpt-shaped']).default('fixed'))
  .option('--dataset <file>', 'a ShareGPT JSON file (needs a tokenizer: --tokenizer, --spawn-model, or a local model root)')
  .option('--tokenizer <dir>', 'model directory for the tokenizer (--dataset) and vocabulary size of random prompts')
  .option('--vocab-size <n>', 'vocabulary of the random prompt token ids (default: from the model directory, else 32000)', (v) => parseInt(v, 10))
  .option('--input-len <n>', 'prompt tokens per request (fixed)', (v) => parseInt(v, 10), 256)
  .option('--output-len <n>', 'output tokens per request (fixed)', (v) => parseInt(v, 10), 256)
  .option('--num-prompts <n>', 'requests per rate', (v) => parseInt(v, 10), 1000)
  .option('--request-rates <list>', 'comma-separated requests/s of the Poisson arrivals; inf = all at once', '1,2,4,inf')
  .option('--seed <n>', 'workload, arrival and sampling seed', (v) => parseInt(v, 10), 0)
  .option('--out <dir>', 'directory for the JSON result', 'bench/results')
  .option('--plot <file.svg>', "draw the vLLM paper's figure (request throughput vs mean normalized latency) to this SVG")
  .option('--plot-inputs <files>', 'comma-separated result JSONs drawn as further curves in --plot')
  .option('--plot-only', 'only draw --plot from --plot-inputs; send no requests')
  .option('--spawn-model <dir>', 'start `parallm serve --model DIR --port 0` for the run and stop it (SIGTERM) afterwards')
  .addOption(new Option('--spawn-backend <name>', 'backend of the spawned server').choices(BACKENDS))
  .option('--spawn-args <args>', 'further space-separated `parallm serve` flags for the spawned server')
  .action(async (opts) => {
    const { runServing, parseRates } = await import('../../bench/serving.ts');
    const plotInputs = opts.plotInputs ? String(opts.plotInputs).split(',').filter(Boolean) : [];
    if (opts.plotOnly) {
      if (!opts.plot || !plotInputs.length) throw new UsageError('bench serving: --plot-only needs --plot FILE.svg and --plot-inputs a.json,b.json');
      const { plotServing } = await import('../../bench/serving-plot.ts');
      await plotServing(plotInputs, opts.plot);
      console.log(`figure written to ${opts.plot}`);
      return;
    }
    let requestRates: number[];
    try {
      requestRates = parseRates(opts.requestRates);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const { result } = await runServing({ ...opts, requestRates, plotInputs, spawnArgs: opts.spawnArgs ? String(opts.spawnArgs).split(/\s+/).filter(Boolean) : undefined });
    console.log(JSON.stringify(result, (k, v) => (k === 'requestRate' && v === Infinity ? 'inf' : v), 2));
  });

bench
  .command('ops')
  .description('time every op at LLaMA-7B shapes against the device ceilings (copy bandwidth, matmul rate)')
  .addOption(backendOption())
  .option('--out <dir>', 'directory for the JSON results', 'bench/results')
  .option('--quick', 'fewer shapes and repeats (smoke test)')
  .action(async (opts: { backend: string; out: string; quick?: boolean }) => {
    const { runOpsBench } = await import('../../bench/ops.ts');
    await runOpsBench(opts);
  });

program
  .command('kernels')
  .description('kernel authors: compare the webgpu and native kernels op by op')
  .command('compare')
  .description('time every op at LLaMA-7B shapes on webgpu and on native in one run, side by side')
  .option('--out <dir>', 'directory for the JSON results', 'bench/results')
  .option('--quick', 'fewer shapes and repeats (smoke test)')
  .action(async (opts: { out: string; quick?: boolean }) => {
    const { compareKernels } = await import('../../bench/compare.ts');
    await compareKernels(opts);
  });

registerServe(program);
// usage errors (unknown option, bad choice) exit 2 like the other user errors; --help exits 0
for (const c of [program, ...allCommands(program)]) c.exitOverride();

function allCommands(c: Command): Command[] {
  return c.commands.flatMap((x) => [x, ...allCommands(x)]);
}

try {
  await program.parseAsync(process.argv);
  process.exit(0);
} catch (e) {
  const err = e as Error & { code?: string; exitCode?: number };
  if (err.code?.startsWith('commander.')) process.exit(err.exitCode === 0 ? 0 : 2);
  // errors a user can cause are typed and printed without a stack
  if (['UsageError', 'BackendUnavailableError', 'NativeUnavailableError', 'UnsupportedError', 'TensorTooLargeError', 'ModelConfigError', 'WeightsError', 'TokenizerError', 'SamplingParamsError'].includes(err.name)) {
    console.error(`parallm: ${err.message}`);
    process.exit(2);
  }
  throw e;
}
