// Shared by the model tests that run one step on a device with a property or two replaced.

import type { Device } from '../../src/device/index.ts';
import type { StepInput } from '../../src/model/llama.ts';

/** One prefill step of prompts of these lengths (blocks of 4 in order). */
export function prefill(lens: number[]): StepInput {
  const tokenIds: number[] = [];
  const positions: number[] = [];
  const slotMapping: number[] = [];
  let block = 0;
  const seqs = lens.map((n, s) => {
    const table = Array.from({ length: Math.ceil(n / 4) }, () => block++);
    for (let p = 0; p < n; p++) {
      tokenIds.push((s * 37 + p * 11 + 5) % 200);
      positions.push(p);
      slotMapping.push(table[Math.floor(p / 4)] * 4 + (p % 4));
    }
    return { queryLen: n, contextLen: n, blockTable: table };
  });
  return { tokenIds, positions, slotMapping, seqs };
}

/** dev with the properties in `over` in place of its own; everything else is dev's (methods bound to it). */
export function overriding<D extends object>(dev: D, over: Partial<Record<keyof Device, unknown>>): D {
  return new Proxy(dev, {
    get(t, key) {
      if (Object.hasOwn(over, key)) return (over as Record<string | symbol, unknown>)[key];
      const v = Reflect.get(t, key, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}
