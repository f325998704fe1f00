// The tokenizer layer: a model directory's tokenizer (encode, decode, chat templates, stop ids)
// and streaming detokenization. Everything a user can get wrong comes out as a TokenizerError.

export { type ChatMessage, type ChatTemplateOptions } from './chat_template.ts';
export { type DetokenizerOptions, IncrementalDetokenizer } from './detokenizer.ts';
export { TokenizerError, type TokenizerErrorCode } from './errors.ts';
export { type NamedTemplate, type TokenizerFiles, readTokenizerFiles } from './files.ts';
export { type DecodeOptions, type EncodeOptions, Tokenizer } from './tokenizer.ts';
