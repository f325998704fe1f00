// The one error type of the tokenizer layer: everything a user can cause by pointing parallm at
// a model directory (a missing or broken file) or by sending a chat request (a template that
// rejects the messages, no template at all). The server answers these with a 4xx, never a crash.

export type TokenizerErrorCode =
  /** A file the tokenizer needs is not there (tokenizer.json, or the model directory itself). */
  | 'missing_file'
  /** A file is there but is not valid JSON, or not the JSON object it should be. */
  | 'bad_json'
  /** tokenizer.json parses but the tokenizer library cannot build a tokenizer from it. */
  | 'unsupported_tokenizer'
  /** A chat request for a model without a chat template. */
  | 'no_chat_template'
  /** A chat template named by the request does not exist, or none is the default. */
  | 'unknown_chat_template'
  /** The chat template failed to parse or to render these messages. */
  | 'chat_template_error';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
  constructor(
    readonly code: TokenizerErrorCode,
    /** The file at fault (a path), or the model directory when no single file is. */
    readonly file: string,
    detail: string,
    /** What to do about it. */
    readonly hint: string,
  ) {
    super(`${file}: ${detail}. ${hint}`);
  }
}
