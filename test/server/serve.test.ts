// `parallm serve` as a child process: SIGTERM stops taking connections, lets the request in
// flight finish (or cancels it when the grace period runs out) and exits 0; a bad flag exits 2.

import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MODEL_DIR, events } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
// bin/parallm.js once src/cli/main.ts registers the command; until then the same program, serve only
const ENTRY = ['bin/parallm.js'];

interface Child {
  proc: ChildProcess;
  url: Promise<string>;
  exit: Promise<number | null>;
  output: () => string;
}

function serve(args: string[], model = MODEL_DIR): Child {
  const proc = spawn(process.execPath, [...ENTRY, 'serve', '--model', model, '--backend', 'cpu', '--port', '0', '--block-size', '4', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const url = new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', () => reject(new Error(`serve exited before listening:\n${out}`)));
  });
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, url, exit, output: () => out };
}

/** Starts a streamed completion; resolves once its first event has arrived, with the whole text to come. */
async function streaming(url: string, body: object): Promise<{ rest: Promise<string> }> {
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ ...body, stream: true }) });
  expect(r.status).toBe(200);
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let text = dec.decode((await reader.read()).value);
  // wrapped: an async function returning a promise would wait for it
  const rest = (async () => {
    for (let c = await reader.read(); !c.done; c = await reader.read()) text += dec.decode(c.value);
    return text;
  })();
  return { rest };
}

describe('parallm serve (child process)', () => {
  it('SIGTERM: no new requests, the one in flight finishes, exit 0', async () => {
    const c = serve(['--num-gpu-blocks-override', '256', '--shutdown-timeout', '30']);
    try {
      const url = await c.url;
      expect((await fetch(`${url}/health`)).status).toBe(200);
      const { rest } = await streaming(url, { prompt: 'in flight', max_tokens: 450, ignore_eos: true });
      c.proc.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 50));
      // while that request runs, the listener is closed (or answers 503 as it closes)
      const late = await fetch(`${url}/health`).then((r) => r.status, () => 'refused');
      expect(['refused', 503]).toContain(late);
      const evs = events(await rest);
      expect(evs.at(-1)).toBe('[DONE]');
      expect(evs.at(-2).choices[0].finish_reason).toBe('length');
      expect(evs.flatMap((e) => (e === '[DONE]' ? [] : e.choices)).length).toBeGreaterThan(100);
      expect(await c.exit).toBe(0);
      expect(c.output()).toMatch(/SIGTERM/);
      expect(c.output()).toMatch(/stopped/);
    } finally {
      c.proc.kill('SIGKILL');
    }
  });

  it('SIGTERM: a request still running when the grace period ends is cancelled; exit 0', async () => {
    // 16 sequences of 480 tokens: far longer than the 0.2 s grace period
    const c = serve(['--num-gpu-blocks-override', '2400', '--shutdown-timeout', '0.2']);
    try {
      const url = await c.url;
      const { rest } = await streaming(url, { prompt: 'too long to wait for', max_tokens: 480, n: 16, temperature: 1, ignore_eos: true });
      const t0 = performance.now();
      c.proc.kill('SIGTERM');
      const evs = events(await rest);
      expect(evs.at(-1)).toBe('[DONE]');
      expect(evs.at(-2).error.code).toBe('server_shutting_down');
      expect(await c.exit).toBe(0);
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(c.output()).toMatch(/cancelling/);
    } finally {
      c.proc.kill('SIGKILL');
    }
  });

  it('an unknown --dtype is refused with the choices, exit 2', async () => {
    const c = serve(['--dtype', 'int8']);
    c.url.catch(() => {});
    expect(await c.exit).toBe(2);
    expect(c.output()).toMatch(/--dtype.*int8.*float16/s);
  });

  it('--load-format dummy serves a model directory without its safetensors, in its shape; without the flag that directory is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parallm-dummy-'));
    try {
      for (const f of readdirSync(MODEL_DIR)) if (!f.endsWith('.safetensors')) copyFileSync(join(MODEL_DIR, f), join(dir, f));
      const refused = serve(['--num-gpu-blocks-override', '64'], dir);
      refused.url.catch(() => {});
      expect(await refused.exit).not.toBe(0);
      expect(refused.output()).toMatch(/safetensors/);

      const c = serve(['--num-gpu-blocks-override', '64', '--load-format', 'dummy'], dir);
      try {
        const url = await c.url;
        const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'random weights', max_tokens: 5, ignore_eos: true }) });
        expect(r.status).toBe(200);
        const body = await r.json();
        expect(body.usage.completion_tokens).toBe(5);
        c.proc.kill('SIGTERM');
        expect(await c.exit).toBe(0);
      } finally {
        c.proc.kill('SIGKILL');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
