// The command line as a user runs it (a child process): the README's main-job line, and the
// typed errors that print without a stack.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ADDON_PATH } from '../src/device/native/addon.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const MODEL = join(ROOT, 'test', 'fixtures', 'hf', 'tiny-llama');
const cli = (...args: string[]) => run('node', [join(ROOT, 'bin', 'parallm.js'), ...args], { cwd: ROOT, timeout: 120_000 });

describe('parallm CLI', () => {
  it('generate prints the greedy continuation HF transformers computes', async () => {
    const ref = JSON.parse(readFileSync(join(MODEL, 'ref.json'), 'utf8')).refs[0];
    const tok = await Tokenizer.load(MODEL);
    const want = tok.decode([...ref.ids, ...ref.greedy]).slice(tok.decode(ref.ids).length);
    const { stdout } = await cli('generate', '--model', MODEL, '--backend', 'cpu', '--max-tokens', String(ref.greedy.length), '--ignore-eos', ref.prompt);
    expect(stdout).toBe(want + '\n');
  });

  it('a missing model directory is a one-line error naming the file', async () => {
    const err = await cli('generate', '--model', '/nonexistent/model', '--backend', 'cpu', 'hi').catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/parallm: .*config\.json/);
    expect(err.stderr).not.toMatch(/\n\s+at /);
  });

  it('--backend native without its addon says it is not built', async () => {
    const err = await run('node', [join(ROOT, 'bin', 'parallm.js'), 'info', '--backend', 'native'], { cwd: ROOT, env: { ...process.env, PARALLM_NATIVE_ADDON: '/nonexistent/parallm_native.node' } }).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/^parallm: native: the CUDA\/HIP addon is not built/);
  });

  it.runIf(existsSync(DEFAULT_ADDON_PATH) && process.env.PARALLM_TEST_GPU !== '1' && !process.env.PARALLM_DEVICE_MACHINE)('--backend native with its addon on a machine without a GPU says the GPU is missing', async () => {
    const err = await cli('info', '--backend', 'native').catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/^parallm: native: the (CUDA|HIP) addon is built, but no GPU is visible/);
  });
});
