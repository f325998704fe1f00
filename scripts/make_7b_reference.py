"""A LLaMA-2-7B-shaped model with random weights, written by HF transformers, and its reference
logits, for bench/compare-7b.ts (run both on the GPU machine; see docs/gpu-machine.md):

    python3 scripts/make_7b_reference.py /tmp/llama7b

Writes /tmp/llama7b/{config.json, model-*.safetensors (f16, sharded), ref.json}. ref.json holds
prompts of random token ids (lengths 7, 64, 300) and each prompt's last-token logits computed
by transformers in float32 on the GPU from the same f16 weights (TF32 off) and in float64,
plus the time save_pretrained took.
"""
import json
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_rope import exact_rope


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      rms_norm_eps=1e-5, rope_theta=10000.0, torch_dtype="float16", bos_token_id=1, eos_token_id=2)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).half().eval()
    t0 = time.time()
    model.save_pretrained(out, safe_serialization=True, max_shard_size="5GB")
    save_s = time.time() - t0
    # the reference computes in f32 from exactly the f16 weights parallm loads
    model = model.float()
    print(f"rope inv_freq: largest relative change after undoing the f16 rounding {exact_rope(model):.2e}")
    g = torch.Generator().manual_seed(1)
    refs = []
    prompts = [torch.randint(3, cfg.vocab_size, (1, n), generator=g) for n in (7, 64, 300)]
    for ids in prompts:
        with torch.no_grad():
            logits = model(ids.cuda()).logits[0, -1].double().cpu()
        refs.append({"ids": ids[0].tolist(), "last_logits": [round(x, 5) for x in logits.tolist()],
                     "argmax": int(logits.argmax())})
    # float64 too, to tell how far transformers' own float32 result is from exact
    model = model.double()
    for ids, r in zip(prompts, refs):
        with torch.no_grad():
            exact = model(ids.cuda()).logits[0, -1].cpu()
        f32 = torch.tensor(r["last_logits"], dtype=torch.float64)
        r["last_logits_f64"] = [round(x, 6) for x in exact.tolist()]
        r["hf_f32_relerr_vs_f64"] = float((f32 - exact).norm() / exact.norm())
    json.dump({"config": "llama-2-7b shape, random init, f16 weights", "save_s": round(save_s, 1),
               "gpu": torch.cuda.get_device_name(0), "transformers": __import__("transformers").__version__,
               "refs": refs}, open(os.path.join(out, "ref.json"), "w"))
    print(f"saved in {save_s:.1f} s; argmax {[r['argmax'] for r in refs]}")


if __name__ == "__main__":
    main()
