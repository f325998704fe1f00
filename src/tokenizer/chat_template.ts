// Chat templates: picking one of a model's named Jinja templates and rendering messages with it,
// as transformers' apply_chat_template does (template chosen by get_chat_template's rules, the
// variables messages / tools / documents / add_generation_prompt plus the special tokens, and the
// caller's extra variables). Rendering is @huggingface/jinja, which already configures Jinja the
// way transformers does (trim_blocks, lstrip_blocks, raise_exception, strftime_now).
// Templates are parsed on first use, so a model whose template this renderer cannot parse still
// serves plain completions.

import { Template } from '@huggingface/jinja';
import { TokenizerError } from './errors.ts';
import type { NamedTemplate } from './files.ts';

/** One chat message; content is usually a string, but templates may accept parts or null. */
export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant header so that the model answers (default true). */
  addGenerationPrompt?: boolean;
  /** Tool (function) schemas; a model's "tool_use" template is chosen when they are given. */
  tools?: unknown[];
  /** Documents for retrieval-augmented templates. */
  documents?: unknown[];
  /**
   * The name of one of the model's templates, or the text of a Jinja template to use instead
   * (transformers' and vLLM's `chat_template` argument).
   */
  chatTemplate?: string;
  /** More template variables (vLLM's chat_template_kwargs, such as enable_thinking). */
  kwargs?: Record<string, unknown>;
}

const CALLER_SOURCE = 'chat template given by the caller';

export class ChatTemplates {
  private readonly parsed = new Map<string, Template>();

  constructor(
    private readonly templates: readonly NamedTemplate[],
    /** bos_token, eos_token, ... as template variables. */
    private readonly specialTokens: Readonly<Record<string, unknown>>,
    /** The model directory, for the error when it has no template. */
    private readonly dir: string,
  ) {}

  get names(): string[] {
    return this.templates.map((t) => t.name);
  }

  render(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const chosen = this.select(options.chatTemplate, options.tools !== undefined);
    const vars = {
      ...this.specialTokens,
      ...options.kwargs,
      messages,
      tools: options.tools ?? null,
      documents: options.documents ?? null,
      add_generation_prompt: options.addGenerationPrompt ?? true,
    };
    let template = this.parsed.get(chosen.text);
    try {
      if (!template) {
        template = new Template(chosen.text);
        this.parsed.set(chosen.text, template);
      }
    } catch (e) {
      throw new TokenizerError('chat_template_error', chosen.source, `chat template '${chosen.name}' does not parse (${(e as Error).message})`,
        'Fix the template, or pass another chat template');
    }
    try {
      return template.render(vars);
    } catch (e) {
      // raise_exception() in a template lands here too: its message says what the template wants
      // ("Conversation roles must alternate user/assistant/..."), so it is passed on unchanged.
      throw new TokenizerError('chat_template_error', chosen.source, `chat template '${chosen.name}' failed to render these messages: ${(e as Error).message}`,
        'Check the messages against what the template expects (roles, their order, content types)');
    }
  }

  /** transformers' get_chat_template: a named template, else tool_use when tools are given, else default. */
  private select(requested: string | undefined, withTools: boolean): NamedTemplate {
    if (requested !== undefined) {
      const named = this.templates.find((t) => t.name === requested);
      if (named) return named;
      if (/^[\w.-]+$/.test(requested)) {
        throw new TokenizerError('unknown_chat_template', this.dir, `the model has no chat template named '${requested}'`,
          `Use one of: ${this.names.join(', ') || '(none)'}, or pass the template text itself`);
      }
      return { name: 'custom', source: CALLER_SOURCE, text: requested };
    }
    if (this.templates.length === 0) {
      throw new TokenizerError('no_chat_template', this.dir, 'the model has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja)',
        'Send a plain completion request instead, or pass a chat template');
    }
    const pick = (withTools && this.templates.find((t) => t.name === 'tool_use')) || this.templates.find((t) => t.name === 'default');
    if (!pick) {
      throw new TokenizerError('unknown_chat_template', this.dir, `the model has several chat templates and none is named 'default'`,
        `Name one of: ${this.names.join(', ')}`);
    }
    return pick;
  }
}
