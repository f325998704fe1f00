"""Peers of `parallm bench throughput`, measured on the same GPU and workload (GPU machine):

    python3 scripts/peers_throughput.py --out peers.json [--num-prompts 1000] [--input-len 256] [--output-len 256]

A LLaMA-2-7B-shaped model with random f16 weights (as parallm's --dummy llama-2-7b), the fixed
workload of random prompt ids, EOS ignored, exactly output-len new tokens each:
  - hf-generate-static: transformers `generate` over static batches of --batch (default 64,
    left-padded), sampling at temperature 1 like vLLM's benchmark;
  - hf-generate-batch: transformers' continuous batching (`generate_batch`), once per
    attn_implementation in --cb-attn (default "paged|sdpa"; transformers 5.17 rejects "sdpa_paged"),
    where this transformers has it.
Writes one JSON with total and output tokens/s and requests/min for each.
"""
import argparse
import json
import time

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM


def workload(n, input_len, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (input_len,), generator=g).tolist() for _ in range(n)]


def result(name, prompts, output_len, seconds, extra=None):
    p = sum(len(x) for x in prompts)
    o = len(prompts) * output_len
    r = {"peer": name, "seconds": round(seconds, 2), "totalTokensPerS": round((p + o) / seconds, 1),
         "outputTokensPerS": round(o / seconds, 1), "requestsPerMin": round(len(prompts) / seconds * 60, 1)}
    r.update(extra or {})
    print(json.dumps(r), flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="peers.json")
    ap.add_argument("--num-prompts", type=int, default=1000)
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--cb-attn", default="paged|sdpa")
    ap.add_argument("--which", default="static,batch", help="peers to run: static (generate), batch (generate_batch); "
                    "one per call when a call cannot hold both at 1000 requests")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).half().eval()
    prompts = workload(a.num_prompts, a.input_len, cfg.vocab_size, 0)
    out = {"gpu": torch.cuda.get_device_name(0), "transformers": __import__("transformers").__version__,
           "workload": f"fixed-{a.input_len}-{a.output_len}", "requests": a.num_prompts, "peers": []}

    gen = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=a.output_len,
               min_new_tokens=a.output_len, pad_token_id=0, eos_token_id=None)
    which = a.which.split(",")
    torch.cuda.synchronize()
    t0 = time.time()
    with torch.no_grad():
        for i in range(0, len(prompts) if "static" in which else 0, a.batch):
            ids = torch.tensor(prompts[i:i + a.batch], device="cuda")  # equal lengths: no padding needed
            model.generate(ids, attention_mask=torch.ones_like(ids), **gen)
    torch.cuda.synchronize()
    if "static" in which:
        out["peers"].append(result("hf-generate-static", prompts, a.output_len, time.time() - t0, {"batch": a.batch}))
        json.dump(out, open(a.out, "w"), indent=2)  # kept if what follows runs out of time

    if hasattr(model, "generate_batch") and "batch" in which:
        for attn in a.cb_attn.split(","):
            try:
                model.set_attn_implementation(attn) if hasattr(model, "set_attn_implementation") else None
                gc = GenerationConfig(max_new_tokens=a.output_len, min_new_tokens=a.output_len, do_sample=True, temperature=1.0,
                                      eos_token_id=None, pad_token_id=0)
                torch.cuda.synchronize()
                t0 = time.time()
                with torch.no_grad():
                    model.generate_batch(inputs=prompts, generation_config=gc)
                torch.cuda.synchronize()
                out["peers"].append(result("hf-generate-batch", prompts, a.output_len, time.time() - t0, {"attn": attn}))
            except Exception as e:  # record why, keep the static figure
                out["peers"].append({"peer": "hf-generate-batch", "attn": attn, "error": repr(e)[:300]})
            json.dump(out, open(a.out, "w"), indent=2)
    json.dump(out, open(a.out, "w"), indent=2)


if __name__ == "__main__":
    main()
