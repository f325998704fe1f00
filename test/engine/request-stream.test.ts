// RequestStream: what generate() (final only) and llm.stream() (an iterator) see, and that a
// stream nobody iterates keeps no queue of outputs (each holds the request's tokens so far).
import { describe, expect, it } from 'vitest';
import { type RequestOutput, RequestStream } from '../../src/engine/outputs.ts';

const out = (n: number, finished = false): RequestOutput => ({
  requestId: 'r',
  promptTokenIds: [1],
  outputs: [{ index: 0, text: '', tokenIds: Array.from({ length: n }, (_, i) => i) }],
  finished,
  metrics: { arrivalTime: 0, lastTokenTime: n },
});

async function drain(s: RequestStream): Promise<number[]> {
  const seen: number[] = [];
  for await (const o of s) seen.push(o.outputs[0].tokenIds.length);
  return seen;
}

describe('RequestStream', () => {
  it('an iterator from the start sees every output in order', async () => {
    const s = new RequestStream('r');
    const seen = drain(s);
    for (let n = 1; n <= 5; n++) s.push(out(n, n === 5));
    s.end();
    expect(await seen).toEqual([1, 2, 3, 4, 5]);
    expect((await s.final()).outputs[0].tokenIds).toHaveLength(5);
  });

  it('with no iterator only the latest output is kept, and final() resolves with it', async () => {
    const s = new RequestStream('r');
    for (let n = 1; n <= 300; n++) s.push(out(n, n === 300));
    expect((s as unknown as { queue: unknown[] }).queue).toHaveLength(0);
    s.end();
    expect((await s.final()).outputs[0].tokenIds).toHaveLength(300);
  });

  it('an iterator asked for late begins with the latest output, then the ones after it', async () => {
    const s = new RequestStream('r');
    for (let n = 1; n <= 3; n++) s.push(out(n));
    const seen = drain(s);
    s.push(out(4));
    s.push(out(5, true));
    s.end();
    expect(await seen).toEqual([3, 4, 5]);
  });

  it('an iterator asked for after the end gets the last output and finishes', async () => {
    const s = new RequestStream('r');
    s.push(out(1));
    s.push(out(2, true));
    s.end();
    expect(await drain(s)).toEqual([2]);
  });

  it('a failed request throws from the iterator and from final()', async () => {
    const s = new RequestStream('r');
    s.fail(new Error('rejected'));
    await expect(drain(s)).rejects.toThrow('rejected');
    await expect(s.final()).rejects.toThrow('rejected');
  });
});
