// Stop conditions on a sequence's output: EOS and stop token ids, max tokens, and stop strings
// found in the detokenized text. While streaming, text that could still turn out to be the
// start of a stop string is held back until it cannot.

import type { SamplingParams } from './sampling-params.ts';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface StopState {
  /** Text released to the caller so far. */
  text: string;
  /** Text decoded but held back: it may be the start of a stop string. */
  pending: string;
  finished?: FinishReason;
  /** The stop string or token id that ended the sequence. */
  stopReason?: string | number;
}

/** Checks a sampled token id before it is added (EOS, stop ids; min_tokens holds them back on the device). */
export function stopsOnToken(id: number, p: SamplingParams, eosIds: readonly number[], numOutputTokens: number): boolean {
  if (numOutputTokens < p.minTokens) return false;
  return p.stopTokenIds.includes(id) || (!p.ignoreEos && eosIds.includes(id));
}

/**
 * Adds newly decoded text; returns the text that can be released now. Sets `finished` and
 * truncates at a stop string when one appears (the stop string itself is not released).
 */
export function pushText(st: StopState, fresh: string, stop: readonly string[]): string {
  if (!stop.length) {
    st.text += fresh;
    return fresh;
  }
  const buf = st.pending + fresh;
  let cut = -1;
  let which = '';
  for (const s of stop) {
    const i = buf.indexOf(s);
    if (i >= 0 && (cut < 0 || i < cut)) {
      cut = i;
      which = s;
    }
  }
  if (cut >= 0) {
    const out = buf.slice(0, cut);
    st.text += out;
    st.pending = '';
    st.finished = 'stop';
    st.stopReason = which;
    return out;
  }
  // hold back the longest suffix of buf that is a proper prefix of some stop string
  let hold = 0;
  for (const s of stop) {
    for (let k = Math.min(s.length - 1, buf.length); k > hold; k--) {
      if (buf.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  const out = buf.slice(0, buf.length - hold);
  st.pending = buf.slice(buf.length - hold);
  st.text += out;
  return out;
}

/** Releases held-back text when the sequence ends for another reason. */
export function flushText(st: StopState): string {
  const out = st.pending;
  st.text += out;
  st.pending = '';
  return out;
}
