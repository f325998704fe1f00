// Test-side safetensors writer: spec-compliant files (8-byte LE header length, JSON header padded
// with spaces to a multiple of 8 as the reference writer does, data tiled in order), sharded
// checkpoints with an index, and raw builders for corrupt files.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DType, encode } from '../../src/device/dtype.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { weightSpecs } from '../../src/model/weights.ts';

export type StDType = 'F32' | 'F16' | 'BF16';
export const ST: Record<'f32' | 'f16' | 'bf16', StDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

export interface RawTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

export function tempDir(prefix = 'parallm-st-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Bytes of a file whose header is exactly `header` (object or raw text) followed by `data`. */
export function rawFile(header: object | string, data: Uint8Array = new Uint8Array(0), headerLength?: number | bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

/** A valid safetensors file of the given tensors, in insertion order. */
export function encodeSafetensors(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const data = new Uint8Array(offset);
  offset = 0;
  for (const t of Object.values(tensors)) {
    data.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return rawFile(json, data);
}

/** A tensor of `shape` with values exactly representable in dtype (multiples of 1/64 below 2). */
export function tensorOf(shape: number[], dtype: 'f32' | 'f16' | 'bf16', seed: number): RawTensor & { values: number[] } {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: n }, (_, i) => (((i * 37 + seed * 101) % 127) - 63) / 64);
  return { dtype: ST[dtype], shape, data: encode(values, dtype as DType), values };
}

/**
 * Writes a checkpoint of config into dir: one model.safetensors, or `shards` files with a
 * model.safetensors.index.json. Returns every tensor written (name -> tensor with values).
 */
export function writeModel(dir: string, config: ModelConfig, dtype: 'f32' | 'f16' | 'bf16', shards = 1, extra: Record<string, RawTensor> = {}) {
  const tensors: Record<string, RawTensor & { values?: number[] }> = {};
  weightSpecs(config).forEach((s, i) => (tensors[s.name] = tensorOf(s.shape, dtype, i)));
  Object.assign(tensors, extra);
  const names = Object.keys(tensors);
  if (shards === 1) {
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    return tensors;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(names.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part: Record<string, RawTensor> = {};
    for (const name of names.slice(s * per, (s + 1) * per)) {
      part[name] = tensors[name];
      weightMap[name] = file;
    }
    writeFileSync(join(dir, file), encodeSafetensors(part, { format: 'pt' }));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return tensors;
}
