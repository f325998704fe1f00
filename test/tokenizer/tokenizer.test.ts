// The tokenizer against HF transformers: the fixture's cases.json (ids, decoded text, a rendered
// chat) and the model fixtures' prompt ids were written by transformers 5 (scripts/
// make_hf_fixtures.py). Then what tokenizer_config.json / generation_config.json can say.

import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '../../src/tokenizer/index.ts';
import { FIXTURE, fixtureCopy } from './dirs.ts';
import { spmModelDir } from './spm.ts';

interface Cases {
  cases: { text: string; ids: number[]; decoded: string }[];
  chat: { messages: { role: string; content: string }[]; rendered: string; ids: number[] };
}
const hf: Cases = JSON.parse(readFileSync(join(FIXTURE, 'cases.json'), 'utf8'));
const tok = await Tokenizer.load(FIXTURE);

describe('the HF fixture tokenizer', () => {
  it.each(hf.cases)('encodes $text as HF does, BOS first', ({ text, ids }) => {
    expect(tok.encode(text)).toEqual(ids);
    expect(tok.encode(text, { addSpecialTokens: false })).toEqual(ids.slice(1));
  });

  it.each(hf.cases)('decodes the ids of $text back to HF text', ({ ids, decoded }) => {
    expect(tok.decode(ids)).toBe(decoded);
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe(`<s>${decoded}`);
  });

  it('renders the chat byte for byte as transformers, and tokenizes it to the same ids', () => {
    expect(tok.applyChatTemplate(hf.chat.messages)).toBe(hf.chat.rendered);
    expect(tok.applyChatTemplate(hf.chat.messages, { tokenize: true })).toEqual(hf.chat.ids);
    expect(tok.applyChatTemplate(hf.chat.messages, { addGenerationPrompt: false })).toBe(hf.chat.rendered.replace(/<\|assistant\|>\n$/, ''));
  });

  it('knows its stop and start tokens, size and special tokens', () => {
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.vocabSize).toBe(384);
    expect([0, 1, 2, 3, 4, 5, 6, 383].map((id) => tok.isSpecial(id))).toEqual([true, true, true, true, true, true, false, false]);
    expect(tok.tokenToId('<|assistant|>')).toBe(5);
    expect(tok.idToToken(5)).toBe('<|assistant|>');
    expect(tok.chatTemplateNames).toEqual(['default']);
  });

  it('decodes ids it does not know (a padded embedding) to nothing, and [] to ""', () => {
    expect(tok.decode([...hf.cases[0].ids, 384, 100_000])).toBe(hf.cases[0].decoded);
    expect(tok.decode([])).toBe('');
    expect(tok.decode([1, 2, 3])).toBe('');
  });
});

describe('the model fixtures', () => {
  it.each(['tiny-llama', 'tiny-llama31', 'tiny-mistral', 'tiny-qwen2'])('%s encodes its reference prompts to the ids HF ran', async (name) => {
    const dir = join(FIXTURE, '..', name);
    const t = await Tokenizer.load(dir);
    const ref: { refs: { prompt: string; ids: number[] }[] } = JSON.parse(readFileSync(join(dir, 'ref.json'), 'utf8'));
    for (const { prompt, ids } of ref.refs) expect(t.encode(prompt)).toEqual(ids);
    expect(t.applyChatTemplate(hf.chat.messages)).toBe(hf.chat.rendered);
    expect(t.eosTokenIds).toEqual([2]);
  });
});

describe('the SentencePiece-style tokenizers of spm.ts', () => {
  // ids and text from HF tokenizers 0.23.2 (Rust) on the same tokenizer.json files
  const HF = {
    metaspace: [
      ['Hello world the cat', [1, 295, 300, 303, 307], 'Hello world the cat'],
      [' Hello', [1, 295], 'Hello'],
      ['the  cat', [1, 303, 259, 307], 'the  cat'],
      ['é🙂 cat', [1, 259, 0, 307], ' cat'],
      ['Hello\nworld', [1, 295, 0, 282, 297, 271, 263], 'Helloworld'],
    ],
    llama2: [
      ['Hello world the cat', [1, 295, 300, 303, 307], 'Hello world the cat'],
      [' Hello', [1, 259, 295], ' Hello'],
      ['the  cat', [1, 303, 259, 307], 'the  cat'],
      ['é🙂 cat', [1, 259, 198, 172, 243, 162, 156, 133, 307], 'é🙂 cat'],
      ['Hello\nworld', [1, 295, 13, 282, 297, 271, 263], 'Hello\nworld'],
    ],
  } as const;

  it.each(['metaspace', 'llama2'] as const)('encode and decode as HF tokenizers (%s layout)', async (layout) => {
    const t = await Tokenizer.load(spmModelDir(layout));
    for (const [text, ids, decoded] of HF[layout]) {
      expect(t.encode(text)).toEqual(ids);
      expect(t.decode(ids)).toBe(decoded);
    }
  });
});

describe('generation_config.json and config.json', () => {
  it('takes a list of eos ids, and adds the tokenizer eos_token after them', async () => {
    const t = await Tokenizer.load(fixtureCopy({ 'generation_config.json': { bos_token_id: 1, eos_token_id: [5, 4] } }));
    expect(t.eosTokenIds).toEqual([5, 4, 2]);
  });

  it('falls back to config.json, then to the tokenizer alone', async () => {
    const fromModel = await Tokenizer.load(fixtureCopy({ 'generation_config.json': null, 'config.json': { eos_token_id: 4, bos_token_id: 1 } }));
    expect(fromModel.eosTokenIds).toEqual([4, 2]);
    const alone = await Tokenizer.load(fixtureCopy({ 'generation_config.json': null }));
    expect(alone.eosTokenIds).toEqual([2]);
    expect(alone.bosTokenId).toBe(1);
  });

  it('a directory with tokenizer.json alone: the post-processor still adds BOS, nothing says when to stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parallm-tok-'));
    copyFileSync(join(FIXTURE, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const t = await Tokenizer.load(dir);
    expect(t.encode('hello world')).toEqual(hf.cases[0].ids);
    expect(t.eosTokenIds).toEqual([]);
    expect(t.bosTokenId).toBeUndefined();
    expect(t.chatTemplateNames).toEqual([]);
  });
});

describe('tokenizer_config.json', () => {
  const config = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer_config.json'), 'utf8'));

  it('add_bos_token / add_eos_token leave it to the post-processor, as in transformers 5.17', async () => {
    const noBos = await Tokenizer.load(fixtureCopy({ 'tokenizer_config.json': { ...config, add_bos_token: false } }));
    expect(noBos.encode('hello world')).toEqual(hf.cases[0].ids);
    const both = await Tokenizer.load(fixtureCopy({ 'tokenizer_config.json': { ...config, add_bos_token: true, add_eos_token: true } }));
    expect(both.encode('hello world')).toEqual(hf.cases[0].ids);
  });

  it('reads special tokens saved as AddedToken objects', async () => {
    const t = await Tokenizer.load(fixtureCopy({
      'tokenizer_config.json': { ...config, eos_token: { __type: 'AddedToken', content: '<|assistant|>', special: true } },
    }));
    expect(t.eosTokenIds).toEqual([2, 5]);
  });

  it('clean_up_tokenization_spaces: true leaves BPE output alone, as transformers 5.17 does (Llama 3 sets it)', async () => {
    const t = await Tokenizer.load(fixtureCopy({ 'tokenizer_config.json': { ...config, clean_up_tokenization_spaces: true } }));
    expect(t.decode(t.encode("do n't stop , ok ?"))).toBe("do n't stop , ok ?");
  });
});

describe('chat templates', () => {
  const config = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer_config.json'), 'utf8'));
  const user = [{ role: 'user', content: 'hi' }];

  it('reads chat_template from tokenizer_config.json when there is no chat_template.jinja', async () => {
    const t = await Tokenizer.load(fixtureCopy({
      'chat_template.jinja': null,
      'tokenizer_config.json': { ...config, chat_template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}' },
    }));
    expect(t.applyChatTemplate(user)).toBe('<s>[user]hi</s>');
  });

  it('prefers chat_template.jinja over tokenizer_config.json, as transformers', async () => {
    const t = await Tokenizer.load(fixtureCopy({ 'tokenizer_config.json': { ...config, chat_template: 'old' } }));
    expect(t.applyChatTemplate(hf.chat.messages)).toBe(hf.chat.rendered);
  });

  it('picks among named templates: tool_use when tools are given, else default, or one by name', async () => {
    const t = await Tokenizer.load(fixtureCopy({
      'chat_template.jinja': null,
      'tokenizer_config.json': {
        ...config,
        chat_template: [
          { name: 'default', template: 'plain:{{ messages[0].content }}' },
          { name: 'tool_use', template: 'tools:{{ tools | length }}:{{ messages[0].content }}' },
        ],
      },
      'additional_chat_templates/rag.jinja': 'rag:{{ documents[0].text }}',
    }));
    expect(t.chatTemplateNames).toEqual(['default', 'tool_use', 'rag']);
    expect(t.applyChatTemplate(user)).toBe('plain:hi');
    expect(t.applyChatTemplate(user, { tools: [{ type: 'function' }, { type: 'function' }] })).toBe('tools:2:hi');
    expect(t.applyChatTemplate(user, { chatTemplate: 'rag', documents: [{ text: 'doc' }] })).toBe('rag:doc');
    expect(t.applyChatTemplate(user, { chatTemplate: '{{ messages | length }} message' })).toBe('1 message');
  });

  it('passes the special tokens, tools (none by default) and extra variables to the template', async () => {
    const t = await Tokenizer.load(fixtureCopy({
      'chat_template.jinja': '{{ bos_token }}|{{ unk_token }}|{% if tools is none %}no tools{% endif %}|' +
        '{% if not enable_thinking %}no thinking{% endif %}|{% if add_generation_prompt %}prompt{% endif %}',
    }));
    expect(t.applyChatTemplate(user, { kwargs: { enable_thinking: false } })).toBe('<s>|<unk>|no tools|no thinking|prompt');
    const named = await Tokenizer.load(fixtureCopy({
      'chat_template.jinja': '{{ image_token }}',
      'tokenizer_config.json': { ...config, extra_special_tokens: { image_token: '<|user|>' } },
    }));
    expect(named.applyChatTemplate(user)).toBe('<|user|>');
    expect(named.isSpecial(4)).toBe(true);
  });
});
