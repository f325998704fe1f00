// Stop strings while streaming, stop ids, and sampling-parameter validation.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SamplingParamsError, samplingParams } from '../../src/engine/sampling-params.ts';
import { type StopState, flushText, pushText, stopsOnToken } from '../../src/engine/stop.ts';

describe('stop strings', () => {
  it('holds back a possible stop-string prefix and cuts at the stop string', () => {
    const st: StopState = { text: '', pending: '' };
    expect(pushText(st, 'Hello wor', ['world!'])).toBe('Hello ');
    expect(st.pending).toBe('wor');
    expect(pushText(st, 'ld', ['world!'])).toBe('');
    expect(pushText(st, '! and more', ['world!'])).toBe('');
    expect(st.finished).toBe('stop');
    expect(st.stopReason).toBe('world!');
    expect(st.text).toBe('Hello ');
  });

  it('releases held text when the prefix turns out not to be a stop string', () => {
    const st: StopState = { text: '', pending: '' };
    expect(pushText(st, 'ab', ['abc'])).toBe('');
    expect(pushText(st, 'd', ['abc'])).toBe('abd');
    expect(flushText(st)).toBe('');
    expect(st.finished).toBeUndefined();
  });

  it('streamed pieces concatenate to the text before the first stop string, however the text is split', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 6 }), { maxLength: 12 }), fc.array(fc.stringMatching(/^[ab]{1,3}$/), { minLength: 1, maxLength: 3 }), (pieces, stops) => {
        const st: StopState = { text: '', pending: '' };
        let out = '';
        for (const p of pieces) {
          if (st.finished) break;
          out += pushText(st, p, stops);
        }
        if (!st.finished) out += flushText(st);
        const full = pieces.join('');
        const cuts = stops.map((s) => full.indexOf(s)).filter((i) => i >= 0);
        const expected = cuts.length ? full.slice(0, Math.min(...cuts)) : full;
        expect(out).toBe(expected);
        expect(st.text).toBe(expected);
      }),
    );
  });

  it('EOS and stop ids stop, unless min_tokens holds them back or ignore_eos', () => {
    const p = samplingParams({ stopTokenIds: [7], minTokens: 2, maxTokens: 10 });
    expect(stopsOnToken(2, p, [2], 0)).toBe(false);
    expect(stopsOnToken(2, p, [2], 2)).toBe(true);
    expect(stopsOnToken(7, p, [2], 3)).toBe(true);
    expect(stopsOnToken(2, samplingParams({ ignoreEos: true }), [2], 5)).toBe(false);
  });
});

describe('sampling parameters', () => {
  it('fills vLLM defaults', () => {
    const p = samplingParams();
    expect(p).toMatchObject({ n: 1, temperature: 1, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, maxTokens: 16 });
  });
  it.each([
    [{ temperature: -1 }, 'temperature'],
    [{ topP: 0 }, 'topP'],
    [{ n: 0 }, 'n'],
    [{ maxTokens: 0 }, 'maxTokens'],
    [{ minTokens: 5, maxTokens: 3 }, 'minTokens'],
    [{ logprobs: 21 }, 'logprobs'],
    [{ stop: [''] }, 'stop'],
    [{ repetitionPenalty: 0 }, 'repetitionPenalty'],
    [{ seed: 1.5 }, 'seed'],
  ])('rejects %j naming %s', (bad, field) => {
    try {
      samplingParams(bad as never);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SamplingParamsError);
      expect((e as SamplingParamsError).field).toBe(field);
    }
  });
  it('takes top_k -1 as off', () => {
    expect(samplingParams({ topK: -1 }).topK).toBe(0);
  });
});
