// The model that `generate`, `serve` and `bench throughput` run when no --model is given:
// models/tiny-kjv, a small LLaMA trained on the King James Bible by scripts/train_tiny.py and
// shipped in the package. Resolved from this file, not the working directory, so that
// `npx parallm generate "..."` works from anywhere.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelConfigError } from '../model/config.ts';

export const DEFAULT_MODEL_NAME = 'tiny-kjv';
export const DEFAULT_MODEL_DIR = join(import.meta.dirname, '..', '..', 'models', DEFAULT_MODEL_NAME);

/** `model` if given, else the embedded model's directory; a missing embedded model is a user error. */
export function modelOrDefault(model: string | undefined): string {
  if (model) return model;
  const config = join(DEFAULT_MODEL_DIR, 'config.json');
  if (!existsSync(config)) {
    throw new ModelConfigError('config.json', 'missing: no --model was given and the embedded model is not there; pass --model DIR or reinstall parallm', [], DEFAULT_MODEL_DIR);
  }
  return DEFAULT_MODEL_DIR;
}
