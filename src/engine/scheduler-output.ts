// What one scheduler step hands the engine: the sequences to run with their token ranges, the
// block copies to do first, and the requests preempted or rejected. The model runner builds its
// inputs (positions, slot mapping, block tables) from `scheduled`.

import type { BlockPair } from './block-manager.ts';
import type { Sequence, SequenceGroup } from './sequence.ts';

export interface ScheduledSeq {
  group: SequenceGroup;
  seq: Sequence;
  /** This step computes tokens [numCachedTokens, numCachedTokens + numNewTokens) of seq.tokenIds. */
  numCachedTokens: number;
  numNewTokens: number;
  /** More than one token was left to compute (a prompt, or prompt + output after recompute). */
  isPrefill: boolean;
  /** The step reaches the sequence's last token: sample the next one from its logits. */
  sample: boolean;
}

export type IgnoreCode = 'prompt-too-long' | 'prompt-exceeds-budget' | 'too-many-seqs' | 'cannot-fit';

export interface IgnoredGroup {
  group: SequenceGroup;
  code: IgnoreCode;
  reason: string;
}

export interface SchedulerOutput {
  scheduled: ScheduledSeq[];
  numBatchedTokens: number;
  /** (device, host): copy first; this very step may reuse those device blocks. */
  blocksToSwapOut: BlockPair[];
  /** (host, device): copy after the swap-outs. */
  blocksToSwapIn: BlockPair[];
  /** (src, dst) device blocks, copy-on-write: after the swaps, before the model writes. */
  blocksToCopy: BlockPair[];
  preempted: SequenceGroup[];
  /** Finished with reason 'ignored': report the reason to the client. */
  ignored: IgnoredGroup[];
}
