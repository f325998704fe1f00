// `parallm serve`: the OpenAI-compatible HTTP server (src/server) over one model, with vLLM's flag
// names. SIGTERM or SIGINT stops accepting connections, lets the requests in flight finish for
// --shutdown-timeout seconds, cancels what is left, and returns (main exits 0); a second signal
// cancels at once.

import { type Command, InvalidArgumentError, Option } from 'commander';
import { BACKENDS } from '../device/index.ts';
import { DEFAULT_MODEL_NAME, modelOrDefault } from './default-model.ts';

export interface ServeOptions {
  /** absent: the embedded model, served as DEFAULT_MODEL_NAME */
  model?: string;
  backend: string;
  host: string;
  port: number;
  apiKey?: string;
  servedModelName?: string[];
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  gpuMemoryUtilization?: number;
  blockSize: number;
  maxModelLen?: number;
  numGpuBlocksOverride?: number;
  swapSpace?: number;
  enablePrefixCaching: boolean;
  dtype: string;
  loadFormat: 'auto' | 'safetensors' | 'dummy';
  maxQueue?: number;
  shutdownTimeout: number;
}

const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`must be an integer >= ${min}`);
  return n;
};
const float = (ok: (x: number) => boolean, range: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || !ok(n)) throw new InvalidArgumentError(`must be a number ${range}`);
  return n;
};

export function registerServe(program: Command): Command {
  return program
    .command('serve')
    .description('serve a model over an OpenAI-compatible HTTP API (completions, chat completions, models, health, metrics)')
    .option('--model <dir>', `Hugging Face model directory (config.json, *.safetensors, tokenizer.json); default: the embedded ${DEFAULT_MODEL_NAME}`)
    .addOption(new Option('--backend <name>', 'device backend').choices(BACKENDS).default('webgpu'))
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port)', int(0), 8000)
    .addOption(new Option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1/*').env('PARALLM_API_KEY'))
    .option('--served-model-name <names...>', 'names the model answers to (default: --model); responses report the first')
    .option('--max-num-seqs <n>', 'sequences in the running batch at most (default 256)', int(1))
    .option('--max-num-batched-tokens <n>', 'tokens per engine step at most (default max(2048, max-num-seqs))', int(1))
    .option('--gpu-memory-utilization <f>', 'fraction of device memory for weights, activations and KV cache (default 0.9)', float((x) => x > 0 && x <= 1, 'in (0, 1]'))
    .option('--block-size <n>', 'tokens per KV-cache block', int(1), 16)
    .option('--max-model-len <n>', "longest sequence (prompt + output) in tokens (default: the model's)", int(1))
    .option('--num-gpu-blocks-override <n>', 'KV-cache blocks on the device, instead of sizing them from its memory', int(1))
    .option('--swap-space <GiB>', 'host memory for swapped-out KV blocks (default 4; 0 disables swapping)', float((x) => x >= 0, '>= 0'))
    .option('--no-enable-prefix-caching', 'turn automatic prefix caching off')
    .addOption(new Option('--dtype <dtype>', 'weights dtype').choices(['auto', 'half', 'float16', 'bfloat16', 'float', 'float32']).default('auto'))
    .addOption(new Option('--load-format <format>', "weights: read from the model's safetensors (auto, safetensors), or seeded random values in the model's shape (dummy: benchmarks without the checkpoint)").choices(['auto', 'safetensors', 'dummy']).default('auto'))
    .option('--max-queue <n>', 'requests waiting for the scheduler at most; more are answered 429 (default: unbounded)', int(0))
    .option('--shutdown-timeout <s>', 'on SIGTERM, seconds to let requests in flight finish before cancelling them', float((x) => x >= 0, '>= 0'), 30)
    .action(async (opts: ServeOptions, cmd: Command) => {
      await serve(opts, (msg) => cmd.error(`parallm serve: ${msg}`, { exitCode: 2 }));
    });
}

export async function serve(o: ServeOptions, fail: (msg: string) => never): Promise<void> {
  // loaded here, not at the top: the other commands start without fastify and the engine
  const [{ LLM }, { createServer }] = await Promise.all([import('../engine/llm.ts'), import('../server/app.ts')]);
  const model = modelOrDefault(o.model);
  const llm = await LLM.create({
    model,
    backend: o.backend,
    maxNumSeqs: o.maxNumSeqs,
    maxNumBatchedTokens: o.maxNumBatchedTokens,
    gpuMemoryUtilization: o.gpuMemoryUtilization,
    blockSize: o.blockSize,
    maxModelLen: o.maxModelLen,
    numGpuBlocks: o.numGpuBlocksOverride,
    swapSpaceGiB: o.swapSpace,
    enablePrefixCaching: o.enablePrefixCaching,
    // vLLM's names: weights converted to this dtype as they load (auto: as the checkpoint stores them)
    dtype: ({ auto: undefined, half: 'f16', float16: 'f16', bfloat16: 'bf16', float: 'f32', float32: 'f32' } as const)[o.dtype as 'auto'],
    loadFormat: o.loadFormat === 'dummy' ? 'dummy' : 'safetensors',
  });
  const cancel = new AbortController();
  const names = o.servedModelName?.length ? o.servedModelName : [o.model ?? DEFAULT_MODEL_NAME];
  const app = createServer(llm, { servedModelName: names, apiKey: o.apiKey, maxQueue: o.maxQueue, cancelSignal: cancel.signal, root: model });
  let address: string;
  try {
    address = await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    await llm.close();
    fail(`cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`);
  }
  const u = llm.engine.blocks.usage();
  console.log(`parallm serve: model ${names[0]} on ${llm.device.info.backend} (${llm.device.info.name}), max model len ${llm.engine.maxModelLen}, ${u.numBlocks} KV blocks of ${u.blockSize} tokens`);
  if (u.numBlocks * u.blockSize < llm.engine.maxModelLen) {
    console.log(`parallm serve: warning: the KV cache holds ${u.numBlocks * u.blockSize} tokens, fewer than the max model len; longer requests are refused`);
  }
  console.log(`parallm serve: listening on ${address}`);

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  console.log(`parallm serve: ${signal}: no new connections; waiting up to ${o.shutdownTimeout} s for requests in flight`);
  const cancelNow = () => {
    if (cancel.signal.aborted) return;
    console.log('parallm serve: cancelling the requests still in flight');
    cancel.abort();
  };
  process.once('SIGTERM', cancelNow);
  process.once('SIGINT', cancelNow);
  const timers = [
    setTimeout(cancelNow, o.shutdownTimeout * 1000),
    // keep-alive connections go idle as their requests end: close them so that close() can
    // finish; once no request is in flight, close every connection (a client may have left
    // half a request on one, which Node counts as active until its headers time out)
    setInterval(() => (app.metrics.httpInFlight === 0 ? app.server.closeAllConnections() : app.server.closeIdleConnections()), 100),
    // and whatever a client keeps open after its request was cancelled
    setTimeout(() => app.server.closeAllConnections(), o.shutdownTimeout * 1000 + 5000),
  ];
  await app.close();
  for (const t of timers) clearTimeout(t);
  await llm.close();
  console.log('parallm serve: stopped');
}
