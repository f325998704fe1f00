// A tiny hand-built SentencePiece-style tokenizer.json (BPE over '▁'-marked words, the way Llama 2
// and Mistral ship theirs) for tests of leading spaces and byte fallback. Two layouts:
//   'metaspace'  pre_tokenizer and decoder Metaspace (prepend_scheme "first"), as the tokenizers
//                library writes them today (Mistral v0.3 and later conversions)
//   'llama2'     Llama 2's file: normalizer Prepend('▁') + Replace(' ' -> '▁'), no pre-tokenizer,
//                byte_fallback BPE with <0x00>..<0xFF> tokens, decoder Replace / ByteFallback /
//                Fuse / Strip(1 leading space)
// tokenizer.test.ts holds the ids HF tokenizers (Rust) gives for these exact files: a change to
// the vocabulary or merges here must redo them.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type SpmLayout = 'metaspace' | 'llama2';

const SPECIALS = ['<unk>', '<s>', '</s>'];
const BYTES = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
const CHARS = ['▁', ...'abcdefghijklmnopqrstuvwxyzHW,.!'];
/** Each merge adds its concatenation to the vocabulary, in this (priority) order. */
const MERGES: [string, string][] = [
  ['▁', 'H'], ['e', 'l'], ['el', 'l'], ['ell', 'o'], ['▁H', 'ello'],
  ['▁', 'w'], ['o', 'r'], ['▁w', 'or'], ['▁wor', 'l'], ['▁worl', 'd'],
  ['▁', 't'], ['h', 'e'], ['▁t', 'he'], ['▁', 'a'], ['▁', 'c'], ['a', 't'], ['▁c', 'at'],
];

export function spmVocab(): Record<string, number> {
  const vocab: Record<string, number> = {};
  for (const piece of [...SPECIALS, ...BYTES, ...CHARS, ...MERGES.map(([a, b]) => a + b)]) vocab[piece] ??= Object.keys(vocab).length;
  return vocab;
}

export function spmTokenizerJson(layout: SpmLayout): object {
  const added = SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const template = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  };
  const model = {
    type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: layout === 'llama2', ignore_merges: false, vocab: spmVocab(), merges: MERGES,
  };
  if (layout === 'metaspace') {
    return {
      version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
      post_processor: template,
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
      model,
    };
  }
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: template,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model,
  };
}

/** A model directory holding the tokenizer (and a Llama-2-style tokenizer_config.json). */
export function spmModelDir(layout: SpmLayout, config: object = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `parallm-spm-${layout}-`));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(spmTokenizerJson(layout)));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', ...config }));
  return dir;
}
