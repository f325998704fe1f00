// What a user can get wrong: a bad model directory or file, a chat request the model's template
// rejects or cannot serve. Each is a TokenizerError naming the file, with a code the server maps
// to its answer.

import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tokenizer, TokenizerError, type TokenizerErrorCode } from '../../src/tokenizer/index.ts';
import { FIXTURE, fixtureCopy } from './dirs.ts';

const config = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer_config.json'), 'utf8'));
const user = [{ role: 'user', content: 'hi' }];

async function loadError(dir: string): Promise<TokenizerError> {
  const error = await Tokenizer.load(dir).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(TokenizerError);
  return error as TokenizerError;
}

function expectError(error: TokenizerError, code: TokenizerErrorCode, file: string, text: RegExp): void {
  expect(error.code).toBe(code);
  expect(error.file).toBe(file);
  expect(error.message).toContain(file);
  expect(error.message).toMatch(text);
}

describe('loading', () => {
  it('a directory that does not exist, or a file given for the directory', async () => {
    const missing = join(tmpdir(), 'parallm-no-such-model');
    expectError(await loadError(missing), 'missing_file', missing, /model directory not found/);
    const file = join(FIXTURE, 'tokenizer.json');
    expectError(await loadError(file), 'missing_file', file, /not a directory/);
  });

  it('no tokenizer.json, with a hint for directories that have only the slow-tokenizer files', async () => {
    const dir = fixtureCopy({ 'tokenizer.json': null });
    expectError(await loadError(dir), 'missing_file', join(dir, 'tokenizer.json'), /not found\. Download tokenizer\.json/);
    const slow = fixtureCopy({ 'tokenizer.json': null, 'tokenizer.model': 'sentencepiece bytes' });
    expectError(await loadError(slow), 'missing_file', join(slow, 'tokenizer.json'), /save_pretrained/);
  });

  it('a tokenizer.json cut short, not an object, or without a model', async () => {
    const text = readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8');
    const cut = fixtureCopy({ 'tokenizer.json': text.slice(0, text.length / 2) });
    expectError(await loadError(cut), 'bad_json', join(cut, 'tokenizer.json'), /is not valid JSON .*download it again/);
    const list = fixtureCopy({ 'tokenizer.json': '[]' });
    expectError(await loadError(list), 'bad_json', join(list, 'tokenizer.json'), /is not a JSON object/);
    const noModel = fixtureCopy({ 'tokenizer.json': { version: '1.0' } });
    expectError(await loadError(noModel), 'bad_json', join(noModel, 'tokenizer.json'), /no "model" object/);
  });

  it('a tokenizer.json the library cannot build', async () => {
    const json = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8'));
    const dir = fixtureCopy({ 'tokenizer.json': { ...json, pre_tokenizer: { type: 'NoSuchPreTokenizer' } } });
    expectError(await loadError(dir), 'unsupported_tokenizer', join(dir, 'tokenizer.json'), /cannot be loaded \(Unknown PreTokenizer type: NoSuchPreTokenizer\)/);
  });

  it('a malformed tokenizer_config.json or generation_config.json', async () => {
    const cfg = fixtureCopy({ 'tokenizer_config.json': '{"bos_token": "<s>",' });
    expectError(await loadError(cfg), 'bad_json', join(cfg, 'tokenizer_config.json'), /is not valid JSON/);
    const gen = fixtureCopy({ 'generation_config.json': { eos_token_id: 'two' } });
    expectError(await loadError(gen), 'bad_json', join(gen, 'generation_config.json'), /eos_token_id must be a token id or a list of them, got "two"/);
    const template = fixtureCopy({ 'tokenizer_config.json': { ...config, chat_template: 42 } });
    expectError(await loadError(template), 'bad_json', join(template, 'tokenizer_config.json'), /chat_template must be a string or a list/);
  });
});

function thrown(fn: () => unknown): TokenizerError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TokenizerError);
    return e as TokenizerError;
  }
  throw new Error('expected a TokenizerError');
}

describe('chat requests', () => {
  it('a model without a chat template still encodes, but a chat request is refused', async () => {
    const dir = fixtureCopy({ 'chat_template.jinja': null });
    const t = await Tokenizer.load(dir);
    expect(t.encode('hello world')).toHaveLength(8);
    expectError(thrown(() => t.applyChatTemplate(user)), 'no_chat_template', dir, /has no chat template.*plain completion/);
  });

  it('a template that does not parse fails when used, naming its file', async () => {
    const dir = fixtureCopy({ 'chat_template.jinja': '{% for m in messages %}{{ m.content }}' });
    const t = await Tokenizer.load(dir);
    expectError(thrown(() => t.applyChatTemplate(user)), 'chat_template_error', join(dir, 'chat_template.jinja'), /does not parse/);
  });

  it("a template's raise_exception() reaches the caller with the template's words", async () => {
    const dir = fixtureCopy({
      'chat_template.jinja': "{% if messages[0].role != 'system' %}{{ raise_exception('The first message must be the system prompt') }}{% endif %}ok",
    });
    const t = await Tokenizer.load(dir);
    expect(t.applyChatTemplate([{ role: 'system', content: 's' }])).toBe('ok');
    expectError(thrown(() => t.applyChatTemplate(user)), 'chat_template_error', join(dir, 'chat_template.jinja'),
      /failed to render these messages: The first message must be the system prompt/);
  });

  it('an unknown template name, or several templates and no default', async () => {
    const dir = fixtureCopy({
      'chat_template.jinja': null,
      'tokenizer_config.json': { ...config, chat_template: [{ name: 'a', template: 'A' }, { name: 'b', template: 'B' }] },
    });
    const t = await Tokenizer.load(dir);
    expect(t.applyChatTemplate(user, { chatTemplate: 'b' })).toBe('B');
    expectError(thrown(() => t.applyChatTemplate(user, { chatTemplate: 'c' })), 'unknown_chat_template', dir, /no chat template named 'c'.*one of: a, b/);
    expectError(thrown(() => t.applyChatTemplate(user)), 'unknown_chat_template', dir, /none is named 'default'/);
  });
});
