// Model directories for the tokenizer tests: the HF-written fixture (test/fixtures/hf/tokenizer,
// from scripts/make_hf_fixtures.py) copied into a temp dir with some files replaced or removed.

import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'hf', 'tokenizer');

/** Each override: an object (written as JSON), a string (written as is) or null (file removed). */
export function fixtureCopy(overrides: Record<string, object | string | null> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'parallm-tok-'));
  cpSync(FIXTURE, dir, { recursive: true });
  for (const [name, content] of Object.entries(overrides)) {
    const path = join(dir, name);
    if (content === null) {
      rmSync(path, { force: true });
      continue;
    }
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}
