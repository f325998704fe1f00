// Streaming detokenization: what a client of a streamed completion sees. The pieces must add up
// to decode() of all the ids, exactly, whatever the ids; a multi-byte character comes out whole,
// once; a SentencePiece word keeps its leading space after the first; special tokens vanish.

import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DetokenizerOptions, IncrementalDetokenizer, Tokenizer } from '../../src/tokenizer/index.ts';
import { FIXTURE } from './dirs.ts';
import { spmModelDir } from './spm.ts';

const hf: { cases: { text: string; ids: number[]; decoded: string }[] } = JSON.parse(readFileSync(join(FIXTURE, 'cases.json'), 'utf8'));
const tok = await Tokenizer.load(FIXTURE);

/** Every push's text, then flush's. */
function stream(t: Tokenizer, ids: readonly number[], prompt: readonly number[] = [], options?: DetokenizerOptions): string[] {
  const d = new IncrementalDetokenizer(t, prompt, options);
  return [...ids.map((id) => d.push(id)), d.flush()];
}

/** Random ids, weighted towards the awkward ones: special tokens, pieces of a character, ids past the vocabulary. */
function ids(t: Tokenizer, maxLength = 40): fc.Arbitrary<number[]> {
  const all = Array.from({ length: t.vocabSize }, (_, id) => id);
  const special = all.filter((id) => t.isSpecial(id));
  const partial = all.filter((id) => !t.isSpecial(id) && t.decode([id]).includes('\uFFFD'));
  const id = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: t.vocabSize - 1 }) },
    { weight: 1, arbitrary: fc.constantFrom(...special) },
    { weight: 2, arbitrary: partial.length ? fc.constantFrom(...partial) : fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: t.vocabSize, max: t.vocabSize + 8 }) },
  );
  return fc.array(id, { maxLength });
}

describe('the HF fixture tokenizer (byte-level BPE)', () => {
  it.each(hf.cases)('streams $text to the text HF decodes, with no partial character in any piece', ({ ids: caseIds, decoded }) => {
    const pieces = stream(tok, caseIds);
    expect(pieces.join('')).toBe(decoded);
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
  });

  it('holds a character back until its last byte, then emits it whole', () => {
    const emoji = hf.cases.find((c) => c.text === '🙂🚀')!.ids; // [BOS, 3 pieces of 🙂, 3 of 🚀]
    expect(stream(tok, emoji)).toEqual(['', '', '', '🙂', '', '', '🚀', '']);
  });

  it('lets flush() give an unfinished character as decode() does (U+FFFD)', () => {
    const first2 = hf.cases.find((c) => c.text === '🙂🚀')!.ids.slice(1, 3);
    expect(stream(tok, first2)).toEqual(['', '', '\uFFFD']);
    expect(tok.decode(first2)).toBe('\uFFFD');
  });

  it('drops special tokens and ids it does not know, or keeps specials when asked', () => {
    const [bos, eos, user] = [1, 2, 4];
    const hello = hf.cases[0].ids.slice(1);
    expect(stream(tok, [bos, ...hello.slice(0, 3), user, 999, ...hello.slice(3), eos]).join('')).toBe('hello world');
    expect(stream(tok, [bos, ...hello, eos], [], { skipSpecialTokens: false }).join('')).toBe('<s>hello world</s>');
  });

  it('equals decode() for random ids: special tokens, lone pieces of characters, unknown ids', () => {
    fc.assert(
      fc.property(ids(tok), fc.boolean(), (sequence, skipSpecialTokens) => {
        expect(stream(tok, sequence, [], { skipSpecialTokens }).join('')).toBe(tok.decode(sequence, { skipSpecialTokens }));
      }),
      { numRuns: 500 },
    );
  });

  it('rebuilds random text piece by piece, never emitting part of a character', () => {
    const text = fc.string({ unit: 'binary', maxLength: 30 }).filter((s) => !s.includes('<') && !s.includes('\uFFFD'));
    fc.assert(
      fc.property(text, (s) => {
        const pieces = stream(tok, tok.encode(s));
        expect(pieces.join('')).toBe(s);
        for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
      }),
      { numRuns: 300 },
    );
  });

  it("continues a prompt: the pieces are what decode(prompt + generated) has after decode(prompt)", () => {
    // the greedy continuations HF computed for the tiny-llama fixture (random weights: arbitrary tokens)
    const ref: { refs: { ids: number[]; greedy: number[] }[] } = JSON.parse(readFileSync(join(FIXTURE, '..', 'tiny-llama', 'ref.json'), 'utf8'));
    for (const { ids: prompt, greedy } of ref.refs) {
      const whole = tok.decode([...prompt, ...greedy]);
      expect(whole.startsWith(tok.decode(prompt))).toBe(true);
      expect(stream(tok, greedy, prompt).join('')).toBe(whole.slice(tok.decode(prompt).length));
    }
    fc.assert(
      fc.property(ids(tok, 20), ids(tok, 20), (prompt, generated) => {
        const before = tok.decode(prompt);
        const whole = tok.decode([...prompt, ...generated]);
        fc.pre(whole.startsWith(before)); // else the prompt ended inside a character the output completes
        expect(stream(tok, generated, prompt).join('')).toBe(whole.slice(before.length));
      }),
      { numRuns: 300 },
    );
  });
});

describe.each(['metaspace', 'llama2'] as const)('a SentencePiece-style tokenizer (%s layout)', (layout) => {
  const load = (config?: object) => Tokenizer.load(spmModelDir(layout, config));

  it("gives every word after the first its leading space, as it streams", async () => {
    const t = await load();
    const ids = t.encode('Hello world the cat');
    expect(ids.map((id) => t.idToToken(id))).toEqual(['<s>', '▁Hello', '▁world', '▁the', '▁cat']);
    expect(t.decode(ids)).toBe('Hello world the cat');
    expect(stream(t, ids)).toEqual(['', 'Hello', ' world', ' the', ' cat', '']);
  });

  it('keeps the leading space of the first generated word after a prompt', async () => {
    const t = await load();
    const prompt = t.encode('Hello');
    const generated = t.encode('world', { addSpecialTokens: false }); // ['▁world']
    expect(t.decode(generated)).toBe('world');
    expect(stream(t, generated, prompt)).toEqual([' world', '']);
    expect(stream(t, generated)).toEqual(['world', '']);
  });

  it('equals decode() for random ids', async () => {
    const t = await load();
    fc.assert(
      fc.property(ids(t), (sequence) => {
        expect(stream(t, sequence).join('')).toBe(t.decode(sequence));
      }),
      { numRuns: 300 },
    );
  });
});

describe('a SentencePiece tokenizer with byte fallback (Llama 2)', () => {
  it('streams characters outside the vocabulary whole, from their byte tokens', async () => {
    const t = await Tokenizer.load(spmModelDir('llama2'));
    const ids = t.encode('é🙂 cat');
    expect(ids.map((id) => t.idToToken(id))).toEqual(['<s>', '▁', '<0xC3>', '<0xA9>', '<0xF0>', '<0x9F>', '<0x99>', '<0x82>', '▁cat']);
    expect(t.decode(ids)).toBe('é🙂 cat');
    expect(stream(t, ids).filter(Boolean)).toEqual(['é', '🙂', ' cat']);
  });
});
