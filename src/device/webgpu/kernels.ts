// WGSL kernels: sources from shaders/*.wgsl, a tiny preprocessor (#include, #if/#elif/#else/#endif
// on named flags), bind-group and params layouts derived from the source by wgsl_reflect, and
// a pipeline cache keyed by file, flags and override constants.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';

export const SHADER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shaders');

export interface Binding {
  name: string;
  binding: number;
  kind: 'uniform' | 'read' | 'read_write';
}

export interface ParamField {
  name: string;
  offset: number;
  type: 'u32' | 'i32' | 'f32';
}

export interface Kernel {
  key: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Storage and uniform bindings of group 0 by name. */
  bindings: Binding[];
  /** The `params` uniform struct, when the kernel has one. */
  params?: { binding: number; size: number; fields: ParamField[] };
}

/** Flag that turns every read-only storage binding into read_write (see KernelCache.build). */
export const RW_ALL = 'RW_ALL';

const sourceCache = new Map<string, string>();

function readShader(file: string): string {
  let s = sourceCache.get(file);
  if (s === undefined) {
    s = readFileSync(join(SHADER_DIR, file), 'utf8');
    sourceCache.set(file, s);
  }
  return s;
}

/**
 * Expands `#include "file"` and keeps the lines of `#if FLAG` / `#elif FLAG` / `#else` /
 * `#endif` blocks whose flag is set. Flags are plain names; `!FLAG` negates.
 */
export function preprocess(file: string, flags: ReadonlySet<string>, depth = 0): string {
  if (depth > 8) throw new Error(`#include nesting too deep at ${file}`);
  const out: string[] = [];
  // stack of [this branch active, some branch already taken, parent active]
  const stack: [boolean, boolean, boolean][] = [];
  const active = () => (stack.length ? stack[stack.length - 1][0] : true);
  const test = (expr: string) => (expr.startsWith('!') ? !flags.has(expr.slice(1)) : flags.has(expr));
  const lines = readShader(file).split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const m = /^\s*#(include|if|elif|else|endif)\b\s*(.*?)\s*$/.exec(line);
    if (!m) {
      out.push(active() ? line : '');
      continue;
    }
    const [, dir, arg] = m;
    if (dir === 'include') {
      if (active()) out.push(preprocess(arg.replace(/^"|"$/g, ''), flags, depth + 1));
    } else if (dir === 'if') {
      const parent = active();
      const on = parent && test(arg);
      stack.push([on, on, parent]);
    } else if (dir === 'elif' || dir === 'else') {
      const top = stack[stack.length - 1];
      if (!top) throw new Error(`${file}:${i + 1}: #${dir} without #if`);
      const on = top[2] && !top[1] && (dir === 'else' || test(arg));
      top[0] = on;
      top[1] = top[1] || on;
    } else {
      if (!stack.pop()) throw new Error(`${file}:${i + 1}: #endif without #if`);
    }
    if (dir !== 'include') out.push('');
  }
  if (stack.length) throw new Error(`${file}: unterminated #if`);
  return out.join('\n');
}

export class KernelCache {
  private cache = new Map<string, Kernel>();
  /** pipelines built, and the host time their builds took (Dawn compiles synchronously) */
  readonly builds = { count: 0, ms: 0, keys: [] as string[] };
  constructor(private device: GPUDevice) {}

  get size(): number {
    return this.cache.size;
  }

  /**
   * The pipeline of `file` compiled with `flags` and override constants. `entry` defaults to
   * `main`. Compilation errors throw with the shader's messages.
   */
  get(file: string, flags: string[] = [], overrides: Record<string, number> = {}, entry = 'main'): Kernel {
    const flagKey = [...flags].sort().join(',');
    const ovKey = Object.entries(overrides)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const key = `${file}|${entry}|${flagKey}|${ovKey}`;
    let k = this.cache.get(key);
    if (!k) {
      const t0 = performance.now();
      k = this.build(key, file, new Set(flags), overrides, entry);
      this.builds.count++;
      this.builds.ms += performance.now() - t0;
      this.builds.keys.push(key);
      this.cache.set(key, k);
    }
    return k;
  }

  private build(key: string, file: string, flags: Set<string>, overrides: Record<string, number>, entry: string): Kernel {
    let code = preprocess(file, flags);
    // Given overrides become `const` declarations in the source rather than pipeline constants:
    // the driver's compiler then sees loop bounds and array indices as constants and can unroll
    // and keep small arrays in registers (with pipeline constants it kept them in memory).
    for (const [name, value] of Object.entries(overrides)) {
      const re = new RegExp(`override\\s+${name}\\s*:\\s*(\\w+)\\s*=\\s*[^;]+;`);
      if (!re.test(code)) throw new Error(`${file}: no override '${name}'`);
      code = code.replace(re, (_m, type: string) => `const ${name}: ${type} = ${type}(${value});`);
    }
    // WebGPU forbids a buffer bound both read-only and writable in one dispatch; where the
    // planner sees tensors of one buffer aliased so, every binding becomes read_write
    if (flags.has(RW_ALL)) code = code.replaceAll('var<storage, read>', 'var<storage, read_write>');
    const reflect = new WgslReflect(declarationsOnly(code));
    const bindings: Binding[] = [];
    let params: Kernel['params'];
    for (const group of reflect.getBindGroups()) {
      for (const b of group ?? []) {
        if (!b) continue;
        if (b.group !== 0) throw new Error(`${file}: only bind group 0 is supported (${b.name})`);
        const kind = b.resourceType === 0 ? 'uniform' : b.access === 'read' ? 'read' : 'read_write';
        bindings.push({ name: b.name, binding: b.binding, kind });
        if (kind === 'uniform') {
          const members = (b.type as any).members as { name: string; offset: number; type: { name: string } }[];
          params = {
            binding: b.binding,
            size: Math.max(16, b.size),
            fields: members.map((m) => {
              const t = m.type.name;
              if (t !== 'u32' && t !== 'i32' && t !== 'f32') throw new Error(`${file}: params.${m.name} has type ${t}; only scalars are supported`);
              return { name: m.name, offset: m.offset, type: t };
            }),
          };
        }
      }
    }
    const fn = reflect.entry.compute.find((e) => e.name === entry);
    if (!fn) throw new Error(`${file}: no @compute entry point '${entry}'`);
    const module = this.device.createShaderModule({ code, label: key });
    const entries: GPUBindGroupLayoutEntry[] = bindings.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: b.kind === 'uniform' ? 'uniform' : b.kind === 'read' ? 'read-only-storage' : 'storage' },
    }));
    const layout = this.device.createBindGroupLayout({ entries, label: key });
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: entry },
    });
    return { key, pipeline, layout, bindings, params };
  }
}

/**
 * The source with every function body emptied: reflection needs only declarations and entry
 * points, and wgsl_reflect's parser does not know newer builtins (subgroup matrix templates).
 */
export function declarationsOnly(code: string): string {
  const src = code.replace(/\/\/[^\n]*/g, '').replace(/^\s*diagnostic\s*\([^)]*\)\s*;/gm, '');
  // entry points keep their signatures (emptied bodies); other functions go entirely, since
  // their signatures may use types the parser lacks (subgroup_matrix_result<f32, 16, 16>)
  let out = '';
  let i = 0;
  const fnRe = /\bfn\s+\w+/g;
  for (let m = fnRe.exec(src); m; m = fnRe.exec(src)) {
    const open = src.indexOf('{', m.index);
    if (open < 0) break;
    let depth = 0;
    let j = open;
    for (; j < src.length; j++) {
      if (src[j] === '{') depth++;
      else if (src[j] === '}' && --depth === 0) break;
    }
    const isEntry = /@compute[^;{}]*$/.test(src.slice(Math.max(0, m.index - 200), m.index));
    out += src.slice(i, m.index) + (isEntry ? src.slice(m.index, open + 1) + '}' : '');
    i = j + 1;
    fnRe.lastIndex = i;
  }
  return out + src.slice(i);
}
