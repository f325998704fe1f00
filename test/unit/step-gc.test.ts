// The engine's optional collections at step boundaries (src/util/step-gc.ts).
import { describe, expect, it } from 'vitest';
import { stepGcFromEnv } from '../../src/util/step-gc.ts';

describe('stepGcFromEnv', () => {
  it('is off unless a threshold is given, and rejects a bad one', () => {
    expect(stepGcFromEnv(undefined)).toBeUndefined();
    expect(stepGcFromEnv('')).toBeUndefined();
    expect(stepGcFromEnv('0')).toBeUndefined();
    expect(() => stepGcFromEnv('-3')).toThrow(/PARALLM_STEP_GC_MB=-3/);
    expect(() => stepGcFromEnv('lots')).toThrow(/expected a number/);
  });

  it('collects once the heap has grown past the threshold, and not before', () => {
    const g = stepGcFromEnv('4')!;
    expect(g.maybeCollect()).toBe(0);
    expect(g.collections).toBe(0);
    // ~16 MB of live arrays on the JS heap
    const keep: number[][] = [];
    for (let i = 0; i < 2000; i++) keep.push(Array.from({ length: 1000 }, (_, j) => j + i + 0.5));
    expect(g.maybeCollect()).toBeGreaterThan(0);
    expect(g.collections).toBe(1);
    expect(keep.length).toBe(2000);
    // measured from the heap after that collection: no growth, no collection
    expect(g.maybeCollect()).toBe(0);
    expect(g.collections).toBe(1);
  });
});
