"""A word-per-id tokenizer for models with random weights (the 7B-shaped benchmark checkpoint):
token id i >= 3 is the word "w<i>", so that any id a random model emits decodes to text and any
random prompt ids encode back to themselves. Needs no third-party package:

    python3 scripts/write_wordpiece_tokenizer.py /tmp/llama7b 32000

Writes tokenizer.json (a WordPiece model: tokenizers and @huggingface/tokenizers both read it),
tokenizer_config.json and, if absent, generation_config.json (bos 1, eos 2).
"""
import json
import os
import sys


def main():
    out, vocab_size = sys.argv[1], int(sys.argv[2])
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), vocab_size)})
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(specials)]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None,
           "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": False},
           "model": {"type": "WordPiece", "unk_token": "<unk>", "continuing_subword_prefix": "##",
                     "max_input_chars_per_word": 100, "vocab": vocab}}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": False, "model_max_length": 4096}, f, indent=1)
    gen = os.path.join(out, "generation_config.json")
    if not os.path.exists(gen):
        with open(gen, "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=1)
    print(f"wrote a {vocab_size}-word tokenizer to {out}")


if __name__ == "__main__":
    main()
