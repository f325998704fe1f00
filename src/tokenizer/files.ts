// Reading the tokenizer files of a Hugging Face model directory, as transformers' from_pretrained
// finds them:
//   tokenizer.json                 the tokenizer itself (required; the tokenizers library format)
//   tokenizer_config.json          special tokens, add_bos_token, chat_template (string or named list)
//   chat_template.jinja            the default chat template (transformers >= 4.50 saves it here,
//                                  and it wins over tokenizer_config.json's)
//   additional_chat_templates/*.jinja   further named templates ("tool_use", ...)
//   generation_config.json         eos_token_id (one id or a list) and bos_token_id; config.json's
//                                  are used when it does not give them
// Every failure a user can cause comes out as a TokenizerError naming the file.

import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TokenizerError } from './errors.ts';

type Json = Record<string, unknown>;

export interface NamedTemplate {
  name: string;
  /** The file it was read from, for error messages. */
  source: string;
  text: string;
}

export interface TokenizerFiles {
  dir: string;
  tokenizerJson: Json;
  /** tokenizer_config.json, or {} when the directory has none. */
  config: Json;
  /** From generation_config.json, else config.json; [] when neither gives eos_token_id. */
  eosTokenIds: number[];
  bosTokenId: number | undefined;
  /** The default template (if any) first. */
  chatTemplates: NamedTemplate[];
}

export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const info = await stat(dir).catch(() => undefined);
  if (!info) throw new TokenizerError('missing_file', dir, 'model directory not found', 'Pass the path of a local Hugging Face model directory');
  if (!info.isDirectory()) throw new TokenizerError('missing_file', dir, 'is not a directory', 'Pass the directory that holds tokenizer.json, not a file in it');

  const tokenizerJson = await readJsonObject(join(dir, 'tokenizer.json'));
  if (!tokenizerJson) throw new TokenizerError('missing_file', join(dir, 'tokenizer.json'), 'not found', await missingTokenizerHint(dir));
  if (typeof tokenizerJson.model !== 'object' || tokenizerJson.model === null) {
    throw new TokenizerError('bad_json', join(dir, 'tokenizer.json'), 'has no "model" object, so it is not a tokenizers-library file', 'Replace it with the tokenizer.json from the model repository');
  }
  const config = (await readJsonObject(join(dir, 'tokenizer_config.json'))) ?? {};

  // generation_config.json's ids, else config.json's (from which transformers derives the former)
  const sources = [join(dir, 'generation_config.json'), join(dir, 'config.json')];
  const jsons = [await readJsonObject(sources[0]), await readJsonObject(sources[1])];
  const ids = (field: string): number[] => {
    const i = jsons.findIndex((json) => json?.[field] != null);
    return i < 0 ? [] : tokenIds(jsons[i]![field], sources[i], field);
  };

  return {
    dir,
    tokenizerJson,
    config,
    eosTokenIds: ids('eos_token_id'),
    bosTokenId: ids('bos_token_id')[0],
    chatTemplates: await readChatTemplates(dir, config),
  };
}

/** Parses a JSON object file; undefined when the file does not exist. */
async function readJsonObject(path: string): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerError('missing_file', path, `cannot be read (${(e as Error).message})`, 'Check the file and its permissions');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError('bad_json', path, `is not valid JSON (${(e as Error).message})`, 'The file is damaged or was cut short: download it again from the model repository');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerError('bad_json', path, 'is not a JSON object', 'Download it again from the model repository');
  }
  return value as Json;
}

async function missingTokenizerHint(dir: string): Promise<string> {
  const names = new Set(await readdir(dir).catch(() => [] as string[]));
  if (names.has('tokenizer.model') || (names.has('vocab.json') && names.has('merges.txt'))) {
    return 'parallm reads only tokenizer.json; this directory has the slow-tokenizer files, so write tokenizer.json from them with ' +
      "transformers: AutoTokenizer.from_pretrained(dir).save_pretrained(dir)";
  }
  return 'Download tokenizer.json from the model repository into this directory';
}

/** eos_token_id / bos_token_id: absent, one id, or a list of ids. */
function tokenIds(value: unknown, file: string, field: string): number[] {
  if (value == null) return [];
  const ids = Array.isArray(value) ? value : [value];
  for (const id of ids) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new TokenizerError('bad_json', file, `${field} must be a token id or a list of them, got ${JSON.stringify(value)}`, `Fix ${field} in the file`);
    }
  }
  return ids as number[];
}

async function readChatTemplates(dir: string, config: Json): Promise<NamedTemplate[]> {
  const templates = new Map<string, NamedTemplate>();
  const configPath = join(dir, 'tokenizer_config.json');
  const value = config.chat_template;
  if (typeof value === 'string') {
    templates.set('default', { name: 'default', source: configPath, text: value });
  } else if (Array.isArray(value)) {
    for (const entry of value) {
      const { name, template } = (entry ?? {}) as Json;
      if (typeof name !== 'string' || typeof template !== 'string') {
        throw new TokenizerError('bad_json', configPath, 'chat_template must be a string or a list of {"name", "template"} objects', 'Fix chat_template in the file');
      }
      templates.set(name, { name, source: configPath, text: template });
    }
  } else if (value != null) {
    throw new TokenizerError('bad_json', configPath, 'chat_template must be a string or a list of {"name", "template"} objects', 'Fix chat_template in the file');
  }

  const jinja = join(dir, 'chat_template.jinja');
  const text = await readText(jinja);
  if (text !== undefined) templates.set('default', { name: 'default', source: jinja, text });

  const extraDir = join(dir, 'additional_chat_templates');
  for (const file of (await readdir(extraDir).catch(() => [] as string[])).sort()) {
    if (!file.endsWith('.jinja')) continue;
    const path = join(extraDir, file);
    const body = await readText(path);
    if (body !== undefined) templates.set(file.slice(0, -'.jinja'.length), { name: file.slice(0, -'.jinja'.length), source: path, text: body });
  }

  const all = [...templates.values()];
  return all.sort((a, b) => Number(b.name === 'default') - Number(a.name === 'default'));
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerError('missing_file', path, `cannot be read (${(e as Error).message})`, 'Check the file and its permissions');
  }
}
