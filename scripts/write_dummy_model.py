"""A model directory with no weights, for `parallm serve --load-format dummy` and benchmarks of a
model's shape without its checkpoint (the GPU machine has no internet): a Hugging Face
config.json of the preset and the word-per-id tokenizer of write_wordpiece_tokenizer.py.
Needs no third-party package:

    python3 scripts/write_dummy_model.py /tmp/llama-2-7b-dummy llama-2-7b
"""
import json
import os
import subprocess
import sys

# the LLaMA shapes of src/model/presets.ts, as transformers writes their config.json
PRESETS = {
    "llama-2-7b": dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_hidden_layers=32,
                       num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                       vocab_size=32000),
    "llama-2-13b": dict(hidden_size=5120, intermediate_size=13824, num_attention_heads=40, num_hidden_layers=40,
                        num_key_value_heads=40, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                        vocab_size=32000),
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in PRESETS:
        sys.exit(f"usage: write_dummy_model.py DIR {{{','.join(PRESETS)}}}")
    out, name = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "torch_dtype": "float16",
           "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False, **PRESETS[name]}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, os.path.join(here, "write_wordpiece_tokenizer.py"), out, str(cfg["vocab_size"])], check=True)
    print(f"{out}: config.json ({name}) and tokenizer.json; serve it with --load-format dummy")


if __name__ == "__main__":
    main()
