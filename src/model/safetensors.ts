// Reading safetensors checkpoints (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, and an
// optional "__metadata__": {string: string}}, then the data region, which the tensors' byte
// ranges must tile exactly (no holes, no overlaps: the format forbids both so that a file cannot
// hide a second payload). Only the header is parsed here; tensor bytes are streamed in chunks
// by TensorReader (src/model/reader.ts) so that a multi-GB shard never sits in the JS heap.

import { type FileHandle, open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { WeightDType } from '../device/ops.ts';

/** A bad or unreadable checkpoint, naming the file and, where one is at fault, the tensor. */
export class WeightsError extends Error {
  override name = 'WeightsError';
  constructor(
    readonly file: string,
    readonly tensor: string | undefined,
    detail: string,
  ) {
    super(`${file}${tensor !== undefined ? `: tensor '${tensor}'` : ''}: ${detail}`);
  }
}

/** One tensor of a checkpoint: where its bytes are and what they hold. */
export interface TensorInfo {
  name: string;
  /** Path of the file holding it. */
  file: string;
  dtype: WeightDType;
  shape: number[];
  /** Byte range [start, end) in the file (absolute: header included). */
  start: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  /** File size in bytes. */
  size: number;
  /** Where the data region starts: 8 + header length. */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** The reference implementation refuses headers past 100 MB: a bigger one is not a real checkpoint. */
export const MAX_HEADER_BYTES = 100_000_000;

const DTYPES: Record<string, { dtype: WeightDType; bytes: number }> = {
  F32: { dtype: 'f32', bytes: 4 },
  F16: { dtype: 'f16', bytes: 2 },
  BF16: { dtype: 'bf16', bytes: 2 },
};
/** The rest of the format's dtypes: named in the error so that the user knows the file is fine, just not loadable. */
const OTHER_DTYPES = ['F64', 'I64', 'U64', 'I32', 'U32', 'I16', 'U16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64'];

/** The header length from the first 8 bytes, checked against the file size. */
export function headerLength(path: string, first8: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || first8.byteLength < 8) throw new WeightsError(path, undefined, `truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new WeightsError(path, undefined, `header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file, or a corrupt one`);
  if (8n + n > BigInt(fileSize)) throw new WeightsError(path, undefined, `header length ${n} runs past the end of the file (${fileSize} bytes): truncated file?`);
  if (n < 2n) throw new WeightsError(path, undefined, `header length ${n} is too short for a JSON object`);
  return Number(n);
}

/** Parses and validates the header JSON of a file of fileSize bytes. */
export function parseHeader(path: string, json: Uint8Array, fileSize: number): SafetensorsFile {
  const fail = (tensor: string | undefined, detail: string): never => {
    throw new WeightsError(path, tensor, detail);
  };
  const dataStart = 8 + json.byteLength;
  const dataLen = fileSize - dataStart;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    return fail(undefined, 'header is not valid UTF-8');
  }
  // the format requires the JSON to start with '{' (trailing spaces may pad it)
  if (!text.startsWith('{')) fail(undefined, `header does not start with '{' (got ${JSON.stringify(text.slice(0, 16))}): not a safetensors file`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(undefined, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail(undefined, 'header is not a JSON object');

  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(name, 'entry is not an object {dtype, shape, data_offsets}');
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string') return fail(name, `dtype must be a string, got ${JSON.stringify(dtype)}`);
    const dt = Object.hasOwn(DTYPES, dtype) ? DTYPES[dtype] : undefined;
    if (!dt) {
      const known = OTHER_DTYPES.includes(dtype) ? `dtype ${dtype} is not supported` : `unknown dtype ${JSON.stringify(dtype)}`;
      return fail(name, `${known}; supported: F32, F16, BF16 (quantized or integer checkpoints cannot be loaded)`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return fail(name, `shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      return fail(name, `data_offsets must be [begin, end] byte offsets, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(name, `data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLen) fail(name, `data_offsets [${begin}, ${end}] run past the end of the data region (${dataLen} bytes): truncated file?`);
    let bytes = dt.bytes;
    for (const d of shape as number[]) {
      bytes *= d;
      if (!Number.isSafeInteger(bytes)) fail(name, `shape [${shape}] is too large`);
    }
    if (bytes !== end - begin) fail(name, `shape [${shape}] ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    tensors.set(name, { name, file: path, dtype: dt.dtype, shape: [...(shape as number[])], start: dataStart + begin, end: dataStart + end });
  }
  checkTiling(tensors, dataStart, dataLen, fail);
  return { path, size: fileSize, dataStart, tensors, metadata };
}

function parseMetadata(entry: unknown, fail: (t: string | undefined, d: string) => never): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail(undefined, '__metadata__ must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== 'string') fail(undefined, `__metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
    out[k] = v;
  }
  return out;
}

/** The tensors' ranges must cover [0, dataLen) exactly once (a duplicate JSON key, which JSON.parse drops, shows up as a hole). */
function checkTiling(tensors: Map<string, TensorInfo>, dataStart: number, dataLen: number, fail: (t: string | undefined, d: string) => never): void {
  const sorted = [...tensors.values()].sort((a, b) => a.start - b.start || a.end - b.end);
  let cursor = 0;
  let prev: TensorInfo | undefined;
  for (const t of sorted) {
    const begin = t.start - dataStart;
    if (begin < cursor) fail(t.name, `data_offsets [${begin}, ${t.end - dataStart}] overlap tensor '${prev!.name}' (which ends at ${cursor})`);
    if (begin > cursor) fail(t.name, `data_offsets start at ${begin}, leaving bytes [${cursor}, ${begin}) of the data region unindexed`);
    cursor = t.end - dataStart;
    prev = t;
  }
  if (cursor !== dataLen) fail(undefined, `data region is ${dataLen} bytes but its tensors cover only ${cursor}: trailing bytes [${cursor}, ${dataLen}) are unindexed`);
}

/** Parses a whole safetensors file held in memory (tests and small files). */
export function parseSafetensors(path: string, bytes: Uint8Array): SafetensorsFile {
  const n = headerLength(path, bytes, bytes.byteLength);
  return parseHeader(path, bytes.subarray(8, 8 + n), bytes.byteLength);
}

/** Reads and validates the header of a safetensors file; the data stays on disk. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new WeightsError(path, undefined, `cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  try {
    const { size } = await fh.stat();
    const first8 = new Uint8Array(8);
    await readFully(fh, first8, 0, path);
    const n = headerLength(path, first8, size);
    const json = new Uint8Array(n);
    await readFully(fh, json, 8, path);
    return parseHeader(path, json, size);
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await fh.read(buf, done, buf.byteLength - done, position + done);
    if (bytesRead === 0) throw new WeightsError(path, undefined, `file ended at byte ${position + done}: truncated`);
    done += bytesRead;
  }
}

/** A checkpoint directory: one model.safetensors or shards listed by model.safetensors.index.json. */
export interface Checkpoint {
  dir: string;
  /** The index file, or the single file: what errors about the checkpoint as a whole name. */
  source: string;
  files: SafetensorsFile[];
  tensors: Map<string, TensorInfo>;
  /** Bytes of tensor data over all files. */
  totalBytes: number;
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Finds and validates the checkpoint of a model directory (headers only). */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const indexPath = join(dir, INDEX_FILE);
  let files: SafetensorsFile[];
  let source = indexPath;
  if (await exists(indexPath)) files = await readSharded(dir, indexPath);
  else if (await exists(join(dir, SINGLE_FILE))) {
    source = join(dir, SINGLE_FILE);
    files = [await readSafetensors(source)];
  } else {
    const bin = (await exists(join(dir, 'pytorch_model.bin'))) || (await exists(join(dir, 'pytorch_model.bin.index.json')));
    throw new WeightsError(
      dir,
      undefined,
      bin
        ? `only a PyTorch .bin checkpoint is here: convert it to safetensors (e.g. save_pretrained(..., safe_serialization=True))`
        : `no ${SINGLE_FILE} or ${INDEX_FILE}: is this a Hugging Face model directory?`,
    );
  }
  const tensors = new Map<string, TensorInfo>();
  for (const f of files) for (const [name, t] of f.tensors) tensors.set(name, t);
  const totalBytes = files.reduce((s, f) => s + f.size - f.dataStart, 0);
  return { dir, source, files, tensors, totalBytes };
}

async function readSharded(dir: string, indexPath: string): Promise<SafetensorsFile[]> {
  const fail = (tensor: string | undefined, detail: string): never => {
    throw new WeightsError(indexPath, tensor, detail);
  };
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    return fail(undefined, `not readable as JSON (${(e as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) return fail(undefined, 'has no weight_map object {tensor name: shard file}');
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap)) {
    // a shard is a file beside the index: a path could reach outside the model directory
    if (typeof shard !== 'string' || shard === '' || basename(shard) !== shard || shard === '..' || shard === '.') {
      fail(name, `weight_map gives ${JSON.stringify(shard)}, which is not a file name in the model directory`);
    }
    const names = byShard.get(shard as string) ?? [];
    names.push(name);
    byShard.set(shard as string, names);
  }
  for (const [shard, names] of byShard) {
    if (!(await exists(join(dir, shard)))) fail(names[0], `weight_map lists shard '${shard}' for it (and ${names.length - 1} more), but that file is missing`);
  }
  const files = await Promise.all([...byShard.keys()].map((shard) => readSafetensors(join(dir, shard))));
  for (const f of files) {
    const listed = byShard.get(basename(f.path))!;
    for (const name of listed) {
      if (!f.tensors.has(name)) throw new WeightsError(f.path, name, `${INDEX_FILE} maps it to this shard, but the shard does not hold it`);
    }
    for (const name of f.tensors.keys()) {
      const mapped = (weightMap as Record<string, unknown>)[name];
      if (!Object.hasOwn(weightMap, name)) throw new WeightsError(f.path, name, `in this shard but not in ${INDEX_FILE}'s weight_map`);
      if (mapped !== basename(f.path)) throw new WeightsError(f.path, name, `in this shard but ${INDEX_FILE} maps it to '${String(mapped)}'`);
    }
  }
  return files;
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
