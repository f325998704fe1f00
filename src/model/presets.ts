// Named configs with the published shapes of well-known checkpoints: dummy weights and
// benchmarks at real sizes without downloading anything.

import type { ModelConfig } from './config.ts';

export type PresetName = 'llama-2-7b' | 'llama-2-13b' | 'llama-2-70b' | 'llama-3-8b';

type Shape = Pick<ModelConfig, 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads' | 'numKvHeads'>;

/** A Llama-2 config.json as meta-llama publishes it, with the given shape. */
function llama2(shape: Shape): ModelConfig {
  return {
    architecture: 'LlamaForCausalLM',
    vocabSize: 32000,
    ...shape,
    headDim: shape.hiddenSize / shape.numHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: { type: 'none' },
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false,
    attentionBias: false,
    oProjBias: false,
    torchDtype: 'f16',
    bosTokenId: 1,
    eosTokenIds: [2],
  };
}

/** The published shapes of the meta-llama checkpoints (their config.json), for dummy weights and benchmarks. */
export const PRESETS: Readonly<Record<PresetName, Readonly<ModelConfig>>> = {
  'llama-2-7b': llama2({ hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: 32 }),
  'llama-2-13b': llama2({ hiddenSize: 5120, intermediateSize: 13824, numLayers: 40, numHeads: 40, numKvHeads: 40 }),
  'llama-2-70b': llama2({ hiddenSize: 8192, intermediateSize: 28672, numLayers: 80, numHeads: 64, numKvHeads: 8 }),
  'llama-3-8b': {
    ...llama2({ hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8 }),
    vocabSize: 128256,
    ropeTheta: 500000,
    maxPositionEmbeddings: 8192,
    torchDtype: 'bf16',
    bosTokenId: 128000,
    eosTokenIds: [128001],
  },
};
