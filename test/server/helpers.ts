// Shared by the server tests: the tiny model on the CPU backend behind a server on a free
// loopback port, raw POSTs, a server-sent-events reader and a Prometheus text parser.

import { join } from 'node:path';
import { LLM, type LLMOptions } from '../../src/engine/llm.ts';
import { type Server, type ServerOptions, createServer } from '../../src/server/app.ts';

export const MODEL_DIR = join(import.meta.dirname, '..', 'fixtures', 'hf', 'tiny-llama');
export const MODEL = 'tiny';

export interface Running {
  llm: LLM;
  app: Server;
  url: string;
  /** What the server reported as internal errors (bugs): tests expect none. */
  errors: unknown[];
  close(): Promise<void>;
}

export async function start(server: Partial<ServerOptions> = {}, engine: Partial<LLMOptions> = {}): Promise<Running> {
  const llm = await LLM.create({ model: MODEL_DIR, backend: 'cpu', numGpuBlocks: 256, blockSize: 4, ...engine });
  const errors: unknown[] = [];
  const app = createServer(llm, { servedModelName: MODEL, log: (e) => errors.push(e), ...server });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    llm,
    app,
    url,
    errors,
    async close() {
      // a connection with half a request on it (a client aborted while sending) would hold
      // close() until Node's headers timeout
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
      await llm.close();
    },
  };
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text };
}

/** The `data:` payloads of an event stream, '[DONE]' included as a string. */
export function events(text: string): (any | '[DONE]')[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition format: every sample line, and each family's TYPE. */
export function parseProm(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1], t[2]);
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const value = Number(m[3]);
    if (Number.isNaN(value) && !/^nan$/i.test(m[3])) throw new Error(`bad value in ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return { samples, types };
}

/** The value of one sample (0 when absent: counters with no increments are not listed). */
export function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
}

/** Polls until cond() holds or ms pass. */
export async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}
