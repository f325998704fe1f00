// Streaming detokenization: the text of each generated token as soon as it is final, such that
// everything pushed plus flush() equals tokenizer.decode() of all the ids.
//
// Decoding token by token is wrong in two ways. A byte-level token may hold part of a UTF-8
// character ("🙂" is three tokens in the fixture tokenizer), which decodes to U+FFFD until the
// rest arrives. And a SentencePiece decoder drops the leading space of the first token it sees
// ("▁world" alone is "world", after "▁Hello" it is " world"). So, as in HF text-generation-inference
// and vLLM's detokenize_incrementally, each step decodes a small window: a few tokens already
// emitted (the prefix, for context) plus the new ones, and emits what the window's text has
// beyond the prefix's text, unless that ends in U+FFFD (wait for the rest of the character).
//
// Skipped special tokens never enter the window: decode() drops them before its decoder runs, so
// leaving them out changes nothing and keeps a run of them from growing the window.

import type { Tokenizer } from './tokenizer.ts';

/** Tokens of context before the first generated one (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET). */
const PROMPT_CONTEXT = 5;
const REPLACEMENT = '\uFFFD';

export interface DetokenizerOptions {
  /** As decode()'s (default true). */
  skipSpecialTokens?: boolean;
}

export class IncrementalDetokenizer {
  /** The window: ids[0, readOffset) are the prefix, already out as prefixText; the rest wait. */
  private ids: number[];
  private readOffset: number;
  private prefixText: string;
  private readonly skip: boolean;

  /**
   * promptIds give the first generated token its context, so that its text is what
   * decode(prompt + generated) has after decode(prompt) (a leading space included).
   */
  constructor(
    private readonly tokenizer: Tokenizer,
    promptIds: readonly number[] = [],
    options: DetokenizerOptions = {},
  ) {
    this.skip = options.skipSpecialTokens ?? true;
    this.ids = promptIds.filter((id) => this.decodes(id)).slice(-PROMPT_CONTEXT);
    this.readOffset = this.ids.length;
    this.prefixText = this.decode(0, this.readOffset);
  }

  /** Adds one generated id; returns the text that became final with it (often '', never a partial character). */
  push(id: number): string {
    if (!this.decodes(id)) return '';
    this.ids.push(id);
    const text = this.decode(0, this.ids.length);
    if (text.length <= this.prefixText.length || text.endsWith(REPLACEMENT)) return '';
    return this.emit(text.slice(this.prefixText.length));
  }

  /** The text still held back (an incomplete character comes out as U+FFFD, as decode() gives it). Ends the stream. */
  flush(): string {
    const text = this.decode(0, this.ids.length);
    return text.length > this.prefixText.length ? this.emit(text.slice(this.prefixText.length)) : '';
  }

  private emit(fresh: string): string {
    // The tokens just emitted become the next prefix; older ones are no longer needed.
    this.ids = this.ids.slice(this.readOffset);
    this.readOffset = this.ids.length;
    this.prefixText = this.decode(0, this.readOffset);
    return fresh;
  }

  /** Whether the id contributes to decode(): known to the tokenizer and not a skipped special token. */
  private decodes(id: number): boolean {
    return this.tokenizer.idToToken(id) !== undefined && !(this.skip && this.tokenizer.isSpecial(id));
  }

  private decode(start: number, end: number): string {
    return this.tokenizer.decode(this.ids.slice(start, end), { skipSpecialTokens: false });
  }
}
