"""HF reference fixtures for parallm's model tests (issue: LLaMA-family models).

Run where torch + transformers + tokenizers are installed (the GPU machine has them; a CPU is
enough):

    python3 scripts/make_hf_fixtures.py test/fixtures/hf

Writes, seeded and reproducible:
  tokenizer/          a byte-level BPE tokenizer.json trained here on the text below, with a
                      chat template (tokenizer_config.json) and generation_config.json
  tokenizer/cases.json  encodings of test strings (unicode, multi-byte, spaces) and a rendered
                      chat, as transformers' tokenizer produces them
  <model>/            config.json, model.safetensors (f32), the tokenizer files, and ref.json:
                      for each prompt its ids, the last-token logits and the greedy continuation
                      that HF transformers computes
Models: tiny-llama (GQA), tiny-llama31 (rope_scaling llama3, MHA, tied embeddings),
tiny-mistral, tiny-qwen2 (q/k/v bias, tied embeddings). Random weights with a wide init
(initializer_range 0.5) so that logits are well separated and greedy decoding is stable.
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (GenerationConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, PreTrainedTokenizerFast, Qwen2Config,
                          Qwen2ForCausalLM)

# Training text written for this fixture (no third-party text): plain English with numbers,
# punctuation and a little non-ASCII so that multi-byte tokens exist.
TEXT = """
The engine keeps a cache of keys and values in fixed blocks. Each request asks for blocks when
it needs them and gives them back when it ends, so many requests can share one GPU at a time.
A scheduler decides, step by step, which requests run: new prompts are split into chunks, and
running requests decode one token per step. When memory runs short, the newest request waits.
Numbers: 1, 2, 3, 16, 256, 4096, 11008. Tokens per second, requests per minute, latency in ms.
Café, naïve, über, déjà vu, 東京, 北京, emoji 🙂 and 🚀 travel as bytes through the tokenizer.
The quick brown fox jumps over the lazy dog while the model predicts the next word.
Questions and answers: What is a block? A block holds sixteen tokens of keys and values.
""" * 20

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]

PROMPTS = [
    "The engine keeps",
    "A scheduler decides, step by step, which requests run",
    "Café 東京 🙂",
    "What is a block? A block holds sixteen tokens of keys and values. When memory runs short,",
]
CONTINUE = 8


def train_tokenizer(out):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TEXT], trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=SPECIALS[3:])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    eos = tok.token_to_id("</s>")
    GenerationConfig(bos_token_id=bos, eos_token_id=eos).save_pretrained(out)
    cases = []
    for s in ["hello world", " leading space", "Café naïve über", "東京 and 北京", "🙂🚀", "tab\tnew\nline", "", "a  b   c",
              "Tokens per second: 4096!"]:
        cases.append({"text": s, "ids": fast(s)["input_ids"], "decoded": fast.decode(fast(s)["input_ids"], skip_special_tokens=True)})
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a block?"}]
    rendered = fast.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    chat_ids = fast.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
    chat_ids = list(chat_ids["input_ids"]) if hasattr(chat_ids, "keys") else list(chat_ids)  # transformers 5 returns a BatchEncoding
    json.dump({"cases": cases, "chat": {"messages": chat, "rendered": rendered, "ids": chat_ids}},
              open(os.path.join(out, "cases.json"), "w"), ensure_ascii=False, indent=1)
    return fast, bos, eos


def model_configs(vocab, bos, eos):
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  max_position_embeddings=512, rms_norm_eps=1e-5, initializer_range=0.5,
                  bos_token_id=bos, eos_token_id=eos, torch_dtype="float32")
    return {
        "tiny-llama": (LlamaConfig, LlamaForCausalLM,
                       dict(common, num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0)),
        "tiny-llama31": (LlamaConfig, LlamaForCausalLM,
                         dict(common, num_attention_heads=4, num_key_value_heads=4, rope_theta=500000.0, tie_word_embeddings=True,
                              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
        "tiny-mistral": (MistralConfig, MistralForCausalLM,
                         dict(common, num_attention_heads=4, num_key_value_heads=1, rope_theta=10000.0, sliding_window=None)),
        "tiny-qwen2": (Qwen2Config, Qwen2ForCausalLM,
                       dict(common, num_attention_heads=4, num_key_value_heads=2, rope_theta=1000000.0, tie_word_embeddings=True,
                            use_sliding_window=False)),
    }


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    tdir = os.path.join(out, "tokenizer")
    tok, bos, eos = train_tokenizer(tdir)
    vocab = len(tok)
    for i, (name, (cfg_cls, model_cls, kw)) in enumerate(model_configs(vocab, bos, eos).items()):
        torch.manual_seed(100 + i)
        cfg = cfg_cls(**kw)
        model = model_cls(cfg).eval().float()
        with torch.no_grad():
            # norms start at 1 in HF; spread them so that a wrong norm weight shows
            for n, p in model.named_parameters():
                if n.endswith("norm.weight"):
                    p.uniform_(0.5, 1.5)
                elif n.endswith(".bias"):
                    p.normal_(0.0, 0.5)
        mdir = os.path.join(out, name)
        model.save_pretrained(mdir, safe_serialization=True)
        tok.save_pretrained(mdir)
        GenerationConfig(bos_token_id=bos, eos_token_id=eos).save_pretrained(mdir)
        refs = []
        for p in PROMPTS:
            ids = tok(p, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                logits = model(ids).logits[0, -1].double()
                gen = model.generate(ids, max_new_tokens=CONTINUE, do_sample=False, min_new_tokens=CONTINUE,
                                     pad_token_id=eos, eos_token_id=None)
            top2 = torch.topk(logits, 2).values
            refs.append({"prompt": p, "ids": ids[0].tolist(), "last_logits": [round(x, 6) for x in logits.tolist()],
                         "greedy": gen[0, ids.shape[1]:].tolist(), "top_margin": float(top2[0] - top2[1])})
        json.dump({"model": name, "transformers": __import__("transformers").__version__, "torch": torch.__version__,
                   "refs": refs}, open(os.path.join(mdir, "ref.json"), "w"), indent=1)
        print(name, "vocab", vocab, "greedy", [r["greedy"] for r in refs])


if __name__ == "__main__":
    main()
