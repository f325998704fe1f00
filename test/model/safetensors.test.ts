// The safetensors reader: header parsing and validation (every bad input is a WeightsError
// naming the file and, where one is at fault, the tensor), sharded checkpoints, chunked reads,
// and a fuzz test of the parser.

import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TensorReader } from '../../src/model/reader.ts';
import { MAX_HEADER_BYTES, type SafetensorsFile, WeightsError, openCheckpoint, parseSafetensors, readSafetensors } from '../../src/model/safetensors.ts';
import { encodeSafetensors, rawFile, tempDir, tensorOf } from './safetensors_writer.ts';

const F = 'bad.safetensors';

/** The WeightsError that parsing bytes throws; fails the test if it parses or throws anything else. */
function parseError(bytes: Uint8Array): WeightsError {
  try {
    parseSafetensors(F, bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    expect((e as WeightsError).file).toBe(F);
    expect((e as Error).message.startsWith(F)).toBe(true);
    return e as WeightsError;
  }
  throw new Error('expected a WeightsError');
}

const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

describe('safetensors header', () => {
  it('parses names, dtypes, shapes, absolute byte ranges and metadata', () => {
    const a = tensorOf([2, 3], 'f32', 1);
    const b = tensorOf([5], 'bf16', 2);
    const c = tensorOf([0, 4], 'f16', 3); // empty tensors are allowed
    const bytes = encodeSafetensors({ a, b, c }, { format: 'pt' });
    const f = parseSafetensors(F, bytes);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect([...f.tensors.keys()]).toEqual(['a', 'b', 'c']);
    expect(f.tensors.get('b')).toEqual({ name: 'b', file: F, dtype: 'bf16', shape: [5], start: f.dataStart + 24, end: f.dataStart + 34 });
    expect(f.dataStart % 8).toBe(0); // the writer pads the header as the reference writer does
    expect(f.tensors.get('c')!.end - f.tensors.get('c')!.start).toBe(0);
    expect(bytes.subarray(f.tensors.get('a')!.start, f.tensors.get('a')!.end)).toEqual(a.data);
  });

  it('truncated file, absurd or overlong header length', () => {
    expect(parseError(new Uint8Array(5)).message).toMatch(/truncated/);
    expect(parseError(rawFile('{}', new Uint8Array(0), 1000)).message).toMatch(/runs past the end of the file/);
    expect(parseError(rawFile('{}', new Uint8Array(0), BigInt(MAX_HEADER_BYTES) + 1n)).message).toMatch(/over the 100000000-byte limit/);
    expect(parseError(rawFile('{}', new Uint8Array(0), 2n ** 64n - 1n)).message).toMatch(/limit/);
    expect(parseError(rawFile('{}', new Uint8Array(0), 0)).message).toMatch(/too short/);
  });

  it('header that is not JSON, not an object, or not UTF-8', () => {
    expect(parseError(rawFile('{"a": ')).message).toMatch(/not valid JSON/);
    expect(parseError(rawFile('[1, 2]')).message).toMatch(/does not start with '\{'/);
    const bad = rawFile('{"x":1}');
    bad[10] = 0xff;
    expect(parseError(bad).message).toMatch(/UTF-8/);
    expect(parseError(rawFile({ __metadata__: { n: 1 } })).message).toMatch(/__metadata__/);
  });

  it('entries: unsupported dtype, bad shape or offsets, byte size mismatch', () => {
    const e1 = parseError(rawFile({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)));
    expect(e1.tensor).toBe('ids');
    expect(e1.message).toMatch(/dtype I64 is not supported; supported: F32, F16, BF16/);
    expect(parseError(rawFile({ w: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1))).message).toMatch(/unknown dtype "Q4"/);
    expect(parseError(rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1))).tensor).toBe('w');
    expect(parseError(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, f32(1))).message).toMatch(/data_offsets must be/);
    expect(parseError(rawFile({ w: [1, 2] }, f32(1))).tensor).toBe('w');
    const e2 = parseError(rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(1, 2)));
    expect(e2.tensor).toBe('w');
    expect(e2.message).toMatch(/needs 12 bytes but data_offsets \[0, 8\] hold 8/);
    expect(parseError(rawFile({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, f32(1))).message).toMatch(/too large/);
  });

  it('data_offsets out of range, overlapping, leaving holes or trailing bytes', () => {
    const out = parseError(rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1)));
    expect([out.tensor, out.message]).toEqual(['w', expect.stringMatching(/run past the end of the data region \(4 bytes\)/)]);
    const overlap = parseError(
      rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(1, 2, 3)),
    );
    expect([overlap.tensor, overlap.message]).toEqual(['b', expect.stringMatching(/overlap tensor 'a'/)]);
    const hole = parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, f32(1, 2, 3)));
    expect([hole.tensor, hole.message]).toEqual(['b', expect.stringMatching(/bytes \[4, 8\) of the data region unindexed/)]);
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2))).tensor).toBe('a');
    const trailing = parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1, 2)));
    expect(trailing.message).toMatch(/trailing bytes \[4, 8\)/);
    expect(parseError(rawFile({}, f32(1))).message).toMatch(/trailing/);
    expect(parseError(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1))).message).toMatch(/end before they begin/);
  });
});

describe('safetensors checkpoints on disk', () => {
  it('reads the header only, then streams a tensor in chunks', async () => {
    const dir = tempDir();
    const t = tensorOf([1001], 'f16', 7); // 2002 bytes: an uneven last chunk
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors({ t }));
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.files.length).toBe(1);
    expect(ckpt.totalBytes).toBe(2002);
    const reader = new TensorReader(256);
    const got = new Uint8Array(2002);
    const offsets: number[] = [];
    await reader.read(ckpt.tensors.get('t')!, (chunk, off) => {
      expect(chunk.byteLength).toBeLessThanOrEqual(256);
      got.set(chunk, off);
      offsets.push(off);
    });
    await reader.close();
    expect(got).toEqual(t.data);
    expect(offsets.length).toBe(8);
  });

  it('a file truncated after its header was read fails the read, naming file and tensor', async () => {
    const dir = tempDir();
    const path = join(dir, 'model.safetensors');
    writeFileSync(path, encodeSafetensors({ a: tensorOf([16], 'f32', 1), b: tensorOf([16], 'f32', 2) }));
    const f = await readSafetensors(path);
    truncateSync(path, f.tensors.get('b')!.start + 10);
    const reader = new TensorReader();
    const err = await reader.read(f.tensors.get('b')!, () => {}).catch((e) => e);
    await reader.close();
    expect(err).toBeInstanceOf(WeightsError);
    expect([err.file, err.tensor]).toEqual([path, 'b']);
    expect(err.message).toMatch(/truncated/);
    await expect(readSafetensors(path)).rejects.toThrow(/run past the end of the data region/);
  });

  it('sharded: the index maps names to shards; missing shards and mismatches are named', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 's1.safetensors'), encodeSafetensors({ a: tensorOf([4], 'f32', 1) }));
    writeFileSync(join(dir, 's2.safetensors'), encodeSafetensors({ b: tensorOf([4], 'bf16', 2), c: tensorOf([2], 'f16', 3) }));
    const index = (m: Record<string, string>) => writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: m }));
    index({ a: 's1.safetensors', b: 's2.safetensors', c: 's2.safetensors' });
    const ckpt = await openCheckpoint(dir);
    expect([...ckpt.tensors.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(ckpt.tensors.get('c')!.file).toBe(join(dir, 's2.safetensors'));

    const fails = async (m: Record<string, string>, file: string, tensor: string, msg: RegExp) => {
      index(m);
      const err = await openCheckpoint(dir).catch((e) => e);
      expect(err).toBeInstanceOf(WeightsError);
      expect([err.file, err.tensor]).toEqual([join(dir, file), tensor]);
      expect(err.message).toMatch(msg);
    };
    await fails({ a: 's1.safetensors', b: 's3.safetensors', c: 's2.safetensors' }, 'model.safetensors.index.json', 'b', /shard 's3.safetensors'.*missing/);
    await fails({ a: 's1.safetensors', b: 's2.safetensors', c: 's2.safetensors', d: 's1.safetensors' }, 's1.safetensors', 'd', /does not hold it/);
    await fails({ a: 's1.safetensors', b: 's2.safetensors' }, 's2.safetensors', 'c', /not in model.safetensors.index.json/);
    await fails({ a: 's1.safetensors', b: 's2.safetensors', c: 's1.safetensors' }, 's1.safetensors', 'c', /does not hold it/);
    await fails({ a: '../s1.safetensors', b: 's2.safetensors', c: 's2.safetensors' }, 'model.safetensors.index.json', 'a', /not a file name in the model directory/);
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": 3}');
    await expect(openCheckpoint(dir)).rejects.toThrow(/no weight_map object/);
  });

  it('a directory without safetensors says what it found', async () => {
    const dir = tempDir();
    await expect(openCheckpoint(dir)).rejects.toThrow(/no model.safetensors or model.safetensors.index.json/);
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    await expect(openCheckpoint(dir)).rejects.toThrow(/PyTorch .bin checkpoint.*convert it to safetensors/);
  });
});

/** What a successful parse must satisfy: entries inside the file, sized by dtype and shape, tiling the data exactly. */
function checkConsistent(f: SafetensorsFile, size: number): void {
  expect(f.size).toBe(size);
  const bytes = { f32: 4, f16: 2, bf16: 2 };
  const ranges = [...f.tensors.values()].map((t) => {
    expect(t.start).toBeGreaterThanOrEqual(f.dataStart);
    expect(t.end).toBeLessThanOrEqual(size);
    expect(t.end - t.start).toBe(t.shape.reduce((a, b) => a * b, bytes[t.dtype]));
    return [t.start, t.end];
  });
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cursor = f.dataStart;
  for (const [s, e] of ranges) {
    expect(s).toBe(cursor);
    cursor = e;
  }
  expect(cursor).toBe(size);
}

function parsesOrWeightsError(bytes: Uint8Array): boolean {
  try {
    checkConsistent(parseSafetensors(F, bytes), bytes.byteLength);
    return true;
  } catch (e) {
    if (e instanceof WeightsError && e.file === F) return true;
    throw e;
  }
}

describe('safetensors header fuzz', () => {
  const valid = encodeSafetensors({ 'model.w': tensorOf([3, 5], 'bf16', 1), b: tensorOf([5], 'f32', 2), e: tensorOf([0], 'f16', 3) }, { format: 'pt' });

  it('arbitrary bytes parse consistently or throw WeightsError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), parsesOrWeightsError), { numRuns: 2000 });
    // with a plausible header length, so that the JSON stage is reached
    const withLen = fc.uint8Array({ maxLength: 200 }).map((body) => rawFile(new TextDecoder().decode(body)));
    fc.assert(fc.property(withLen, parsesOrWeightsError), { numRuns: 1000 });
  });

  it('mutated valid files (byte edits, truncation, extension) parse consistently or throw WeightsError', () => {
    const edits = fc.array(fc.tuple(fc.nat(valid.byteLength - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 });
    const mutated = fc.tuple(edits, fc.integer({ min: -valid.byteLength, max: 16 })).map(([es, resize]) => {
      const out = new Uint8Array(Math.max(0, valid.byteLength + resize));
      out.set(valid.subarray(0, out.byteLength));
      for (const [i, b] of es) if (i < out.byteLength) out[i] = b;
      return out;
    });
    fc.assert(fc.property(mutated, parsesOrWeightsError), { numRuns: 3000 });
  });

  it('generated headers (random dtypes, shapes and offsets, some valid) parse consistently or throw WeightsError', () => {
    const entry = fc.record({
      dtype: fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'U8', 'x'),
      shape: fc.array(fc.integer({ min: -1, max: 6 }), { maxLength: 3 }),
      data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), fc.array(fc.anything(), { maxLength: 3 })),
    });
    const header = fc.dictionary(fc.oneof(fc.string(), fc.constant('__metadata__')), fc.oneof(entry, fc.anything()), { maxKeys: 5 });
    // also files laid out correctly from shapes, so that the success path is exercised
    const tiled = fc.array(fc.tuple(fc.constantFrom('F32', 'F16', 'BF16'), fc.array(fc.nat(4), { maxLength: 3 })), { maxLength: 5 }).map((ts) => {
      let off = 0;
      const h: Record<string, unknown> = {};
      ts.forEach(([dtype, shape], i) => {
        const n = shape.reduce((a, b) => a * b, dtype === 'F32' ? 4 : 2);
        h[`t${i}`] = { dtype, shape, data_offsets: [off, off + n] };
        off += n;
      });
      return rawFile(h, new Uint8Array(off));
    });
    const generated = fc.tuple(header, fc.nat(80)).map(([h, n]) => rawFile(h, new Uint8Array(n)));
    let parsed = 0;
    fc.assert(
      fc.property(fc.oneof(generated, tiled), (bytes) => {
        const ok = parsesOrWeightsError(bytes);
        try {
          parseSafetensors(F, bytes);
          parsed++;
        } catch {}
        return ok;
      }),
      { numRuns: 3000 },
    );
    expect(parsed).toBeGreaterThan(300); // the success path was exercised, not only rejections
  });
});
