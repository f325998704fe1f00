// `parallm generate`: one-off prompts through the engine. One prompt streams to the terminal;
// several run as one continuous batch and print when done.

import { LLM } from '../engine/llm.ts';

export interface GenerateOptions {
  model: string;
  backend: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
  chat?: boolean;
  ignoreEos?: boolean;
  blockSize: number;
}

export async function generate(prompts: string[], o: GenerateOptions, write: (s: string) => void = (s) => process.stdout.write(s)): Promise<string[]> {
  const llm = await LLM.create({ model: o.model, backend: o.backend, blockSize: o.blockSize });
  const tok = llm.engine.tokenizer!;
  const inputs = prompts.map((p) => (o.chat ? (tok.applyChatTemplate([{ role: 'user', content: p }], { tokenize: true }) as number[]) : p));
  const params = { maxTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, ignoreEos: o.ignoreEos ?? false };
  try {
    if (inputs.length === 1) {
      let shown = 0;
      let text = '';
      for await (const out of llm.stream(inputs[0], params)) {
        text = out.outputs[0].text;
        write(text.slice(shown));
        shown = text.length;
      }
      write('\n');
      return [text];
    }
    const outs = await llm.generate(inputs, params);
    outs.forEach((out, i) => write(`[${i}] ${prompts[i]}${out.outputs[0].text}\n`));
    return outs.map((out) => out.outputs[0].text);
  } finally {
    await llm.close();
  }
}
