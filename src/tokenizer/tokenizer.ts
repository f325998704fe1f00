// A model's tokenizer: tokenizer.json run by @huggingface/tokenizers (the pure-JS port of HF's
// tokenizers library), with what transformers layers on top of it from tokenizer_config.json:
// the special tokens that decode() skips and the chat templates; and the stop tokens from
// generation_config.json. Text in and ids out agree with transformers' AutoTokenizer.
//
// Two tokenizer_config.json fields are read by transformers 5 (checked against 5.17) and still
// change nothing there, so not here either: add_bos_token / add_eos_token (tokenizer.json's
// post-processor alone decides what encode() adds), and clean_up_tokenization_spaces, ignored
// for BPE models (it would turn a generated "x ." into "x."), which all parallm's families are.

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { join } from 'node:path';
import { type ChatMessage, type ChatTemplateOptions, ChatTemplates } from './chat_template.ts';
import { TokenizerError } from './errors.ts';
import { type TokenizerFiles, readTokenizerFiles } from './files.ts';

export interface EncodeOptions {
  /** Add what the tokenizer adds around a sequence, usually BOS (default true). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special tokens (BOS, EOS, chat markers) (default true). */
  skipSpecialTokens?: boolean;
}

/** The special tokens transformers names in tokenizer_config.json. */
const NAMED_SPECIAL_TOKENS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;

/** A special token is saved either as its text or as an AddedToken object {"content": ...}. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

export class Tokenizer {
  /** Ids that end generation: generation_config.json's eos_token_id(s), then the tokenizer's eos_token. */
  readonly eosTokenIds: readonly number[];
  /** tokenizer_config.json's bos_token, else generation_config.json's bos_token_id. */
  readonly bosTokenId: number | undefined;
  /** One past the largest token id the tokenizer knows (HF's len(tokenizer)). */
  readonly vocabSize: number;
  private readonly hf: HfTokenizer;
  private readonly special: ReadonlySet<number>;
  private readonly templates: ChatTemplates;

  static async load(modelDir: string): Promise<Tokenizer> {
    return new Tokenizer(await readTokenizerFiles(modelDir));
  }

  constructor(files: TokenizerFiles) {
    const { config } = files;
    const json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...files.tokenizerJson };
    const extra = config.extra_special_tokens;
    const extraList = (Array.isArray(extra) ? extra : typeof extra === 'object' && extra !== null ? Object.values(extra) : [])
      .concat(Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : [])
      .map(tokenText)
      .filter((t): t is string => t !== undefined);
    try {
      this.hf = new HfTokenizer(json, { ...config, additional_special_tokens: extraList, clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new TokenizerError('unsupported_tokenizer', join(files.dir, 'tokenizer.json'), `cannot be loaded (${(e as Error).message})`,
        'The file may be damaged (download it again), or it uses a component @huggingface/tokenizers does not implement');
    }

    // Template variables: transformers passes its special_tokens_map, the named tokens (a list of
    // extra special tokens is not among them in 5.17). Named extra tokens ({"image_token": ...})
    // are attributes of a transformers 5 tokenizer, so they are variables too.
    const vars: Record<string, unknown> = {};
    for (const name of NAMED_SPECIAL_TOKENS) {
      const text = tokenText(config[name]);
      if (text !== undefined) vars[name] = text;
    }
    if (typeof extra === 'object' && extra !== null && !Array.isArray(extra)) {
      for (const [name, value] of Object.entries(extra)) vars[name] = tokenText(value);
    }
    this.templates = new ChatTemplates(files.chatTemplates, vars, files.dir);

    const special = new Set<number>();
    for (const t of json.added_tokens as { id: number; special?: boolean }[]) if (t.special) special.add(t.id);
    for (const text of [...NAMED_SPECIAL_TOKENS.map((n) => vars[n] as string | undefined), ...extraList]) {
      const id = text === undefined ? undefined : this.hf.token_to_id(text);
      if (id !== undefined) special.add(id);
    }
    this.special = special;

    const bos = this.tokenIdOf(vars.bos_token);
    const eos = this.tokenIdOf(vars.eos_token);
    this.bosTokenId = bos ?? files.bosTokenId;
    this.eosTokenIds = [...new Set([...files.eosTokenIds, ...(eos === undefined ? [] : [eos])])];
    let max = -1;
    for (const id of this.hf.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
  }

  encode(text: string, { addSpecialTokens = true }: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  /** Ids the tokenizer does not know (past vocabSize: a model's padded embedding rows) decode to nothing, as in HF. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    const kept = ids.filter((id) => this.idToToken(id) !== undefined && !(skip && this.special.has(id)));
    if (kept.length === 0) return '';
    return this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id) ?? undefined;
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Names of the model's chat templates ('default' first when there is one); [] when it has none. */
  get chatTemplateNames(): string[] {
    return this.templates.names;
  }

  /**
   * Renders messages with the model's chat template, as transformers' apply_chat_template: the
   * text, or with tokenize: true its ids, encoded without adding special tokens (the template
   * writes them).
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize?: boolean } = {}): string | number[] {
    const text = this.templates.render(messages, options);
    return options.tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }

  private tokenIdOf(text: unknown): number | undefined {
    return typeof text === 'string' ? this.hf.token_to_id(text) : undefined;
  }
}
