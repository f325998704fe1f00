"""Trains parallm's embedded default model, models/tiny-kjv (issue: a real embedded default model).

A LLaMA of a few million parameters (GQA, tied embeddings) and its own byte-level BPE tokenizer,
trained on the King James Bible (public domain; Debian's bible-kjv-text, fetched by
scripts/get_kjv.sh into data/kjv.txt) for a fixed wall-clock budget on one GPU. Run where torch,
transformers and tokenizers are installed (the GPU machine; no internet needed):

    python3 scripts/train_tiny.py --smoke --out /tmp/smoke     # 20 steps, every save step, ~30 s
    python3 scripts/train_tiny.py --out models/tiny-kjv         # the real run, --minutes 4

Writes into --out a standard HF model directory: config.json, model.safetensors (f16),
tokenizer.json, tokenizer_config.json (with a chat template), generation_config.json, README.md
(the model card), and reference.json, which parallm's quality tests read:
  heldout   a few windows of held-out token ids, each evaluated on its own (fresh context, every
            position but the first predicted), with transformers' summed negative log-likelihood
            per window and the perplexity over all of them, in f32 from the saved f16 weights
  greedy    for a few prompts: the prompt ids, 24 greedy new ids (EOS not stopping), their text,
            and the smallest top-1/top-2 logit margin along the way
  heldout_split  the perplexity of the whole held-out split (for the model card; not re-run)

Data: chapters are documents (verse numbers and book/chapter headings dropped, verses joined by a
space); every 50th chapter (index % 50 == 25) is held out. Reproduce a model with the command its
model card records (it names --steps, so the run does not depend on the GPU's speed).
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import time

SPECIALS = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
HELDOUT_EVERY, HELDOUT_AT = 50, 25
# Candidate prompts; the ones whose greedy continuation is decided by the widest logit margins are
# kept, so that f16 arithmetic on another backend does not flip a near-tie.
PROMPTS = [
    "In the beginning",
    "And the LORD said unto Moses,",
    "Blessed are the",
    "The kingdom of heaven is like",
    "And it came to pass, when",
    "For God so loved the world,",
    "Then answered Jesus and said unto them,",
    "The LORD is my shepherd;",
]
KEEP_PROMPTS = 4
NEW_TOKENS = 24


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/kjv.txt", help="output of scripts/get_kjv.sh")
    p.add_argument("--out", default="models/tiny-kjv")
    p.add_argument("--minutes", type=float, default=4.0, help="training wall budget (ignored with --steps)")
    p.add_argument("--epochs", type=float, default=50, help="at most this many passes over the training tokens")
    p.add_argument("--steps", type=int, default=0, help="train exactly this many steps (reproducible; overrides the two above)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=768)
    p.add_argument("--seq", type=int, default=512, help="training context (= max_position_embeddings)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1, help="on embeddings and MLP outputs, in training only")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=250, help="steps between held-out checks (best one kept)")
    p.add_argument("--ref-windows", type=int, default=4, help="held-out windows in reference.json")
    p.add_argument("--ref-window", type=int, default=256, help="tokens per held-out window in reference.json")
    p.add_argument("--smoke", action="store_true", help="tiny model, small data, 20 steps, every save step")
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.vocab, a.hidden, a.layers, a.heads, a.kv_heads, a.intermediate = 20, 512, 64, 2, 4, 2, 128
        a.seq, a.batch, a.warmup, a.eval_every, a.ref_windows, a.ref_window = 128, 8, 5, 10, 2, 64
    return a


# ---------------------------------------------------------------------------------------------
# data: pure Python, no torch


def read_chapters(path):
    """data/kjv.txt (the `bible` program's output: a "Book N" heading, then "  v text" lines) ->
    [(heading, text)], one per chapter, verses joined by a space."""
    chapters, verses, heading = [], [], None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            m = re.match(r"^\s+(\d+) (.*\S)\s*$", line)
            if m and heading is not None:
                verses.append(clean_verse(m.group(2)))
                continue
            if re.match(r"^\S.* \d+$", line):
                if heading is not None:
                    chapters.append((heading, " ".join(verses)))
                heading, verses = line, []
                continue
            raise SystemExit(f"{path}:{n}: neither a chapter heading nor a verse: {line[:80]!r}")
    if heading is not None:
        chapters.append((heading, " ".join(verses)))
    if len(chapters) < 100:
        raise SystemExit(f"{path}: only {len(chapters)} chapters; run scripts/get_kjv.sh")
    return chapters


def clean_verse(v):
    return re.sub(r"\s+", " ", v).strip()


def split_chapters(chapters):
    """Deterministic held-out split: every HELDOUT_EVERY-th chapter, at index % 50 == 25."""
    train = [t for i, (_, t) in enumerate(chapters) if i % HELDOUT_EVERY != HELDOUT_AT]
    held = [(h, t) for i, (h, t) in enumerate(chapters) if i % HELDOUT_EVERY == HELDOUT_AT]
    return train, held


# ---------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer(texts, vocab, out):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    kw = dict(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    try:
        fast = PreTrainedTokenizerFast(**kw, additional_special_tokens=SPECIALS[3:])
    except (TypeError, ValueError):  # a transformers that renamed it
        fast = PreTrainedTokenizerFast(**kw, extra_special_tokens=SPECIALS[3:])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    # transformers >= 4.50 writes the template to chat_template.jinja; keep it in
    # tokenizer_config.json as well, where older readers look
    cfg_path = os.path.join(out, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    if cfg.get("chat_template") is None:
        cfg["chat_template"] = CHAT_TEMPLATE
        json.dump(cfg, open(cfg_path, "w"), ensure_ascii=False, indent=2)
    return fast, bos, eos


def encode_docs(fast, texts, eos):
    """Each text -> <s> ids </s> (the post-processor adds <s>)."""
    enc = fast(texts, add_special_tokens=True)["input_ids"]
    return [list(ids) + [eos] for ids in enc]


# ---------------------------------------------------------------------------------------------
# model and training


def build_model(a, vocab, bos, eos):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      max_position_embeddings=a.seq, rms_norm_eps=1e-5, tie_word_embeddings=True,
                      initializer_range=0.02, bos_token_id=bos, eos_token_id=eos, pad_token_id=None,
                      use_cache=False)
    model = LlamaForCausalLM(cfg)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model


def add_dropout(model, p):
    """Dropout on the token embeddings and on each MLP's output while training (LlamaForCausalLM has
    none of its own but attention dropout): 1M training tokens and tens of epochs overfit without it.
    Forward hooks, so the saved model is a plain LlamaForCausalLM."""
    import torch.nn.functional as F

    def hook(mod, inp, out):
        return F.dropout(out, p, training=mod.training)

    model.get_input_embeddings().register_forward_hook(hook)
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        print("no model.model.layers: dropout on embeddings only", flush=True)
        return
    for layer in layers:
        layer.mlp.register_forward_hook(hook)


def lr_at(step, total, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = min(1.0, (step - a.warmup) / max(1, total - a.warmup))
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def nll_windows(model, windows, device, autocast=None):
    """Summed NLL (float64) and predicted-token count of each window, each evaluated on its own."""
    import torch
    import torch.nn.functional as F

    out = []
    model.eval()
    with torch.no_grad():
        for w in windows:
            ids = torch.tensor([w], device=device)
            if autocast is not None:
                with autocast():
                    logits = model(input_ids=ids).logits
            else:
                logits = model(input_ids=ids).logits
            lp = F.log_softmax(logits[0, :-1].double(), dim=-1)
            nll = -lp.gather(1, ids[0, 1:, None]).sum().item()
            out.append((nll, len(w) - 1))
    return out


def windows_of(stream, width):
    return [stream[i:i + width] for i in range(0, len(stream) - width + 1, width)]


def ppl(pairs):
    # capped: an untrained (smoke) model must not overflow math.exp at the very end
    return math.exp(min(700.0, sum(n for n, _ in pairs) / sum(c for _, c in pairs)))


def train(a, model, train_stream, val_windows, device):
    import torch
    import torch.nn.functional as F

    data = torch.tensor(train_stream, dtype=torch.long, device=device)
    offsets = torch.arange(a.seq, device=device)
    gen = torch.Generator().manual_seed(a.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    except (TypeError, RuntimeError):
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95))
    use_bf16 = device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else None

    budget = a.minutes * 60
    total = a.steps if a.steps else None
    t0, step, losses, best = time.time(), 0, [], (float("inf"), None, -1)
    while True:
        if total is None and step == 50:  # time per step measured after warm-up -> fixed step count
            per = (time.time() - t0) / 50
            by_epochs = int(a.epochs * len(train_stream) / (a.batch * a.seq))
            total = max(100, min(int(budget / per), by_epochs))
            print(f"{per * 1000:.1f} ms/step; {a.minutes} min or {a.epochs} epochs ({by_epochs} steps): {total} steps", flush=True)
        horizon = total if total is not None else 10 ** 9
        if step >= horizon:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, horizon if total is not None else 10 ** 6, a)
        starts = torch.randint(0, len(data) - a.seq - 1, (a.batch, 1), generator=gen).to(device)
        x = data[starts + offsets]  # [batch, seq]
        model.train()
        if autocast is not None:
            with autocast():
                logits = model(input_ids=x).logits
        else:
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 10 == 0:
            losses.append((step, loss.item()))
        step += 1
        if step % a.eval_every == 0 or step == horizon:
            v = math.log(ppl(nll_windows(model, val_windows, device, autocast)))
            recent = [l for _, l in losses[-10:]]
            print(f"step {step:6d}  train {sum(recent) / len(recent):.4f}  held-out {v:.4f}"
                  f"  lr {opt.param_groups[0]['lr']:.2e}  {time.time() - t0:6.1f}s", flush=True)
            if v < best[0]:
                best = (v, {k: t.detach().clone() for k, t in model.state_dict().items()}, step)
    if best[1] is not None:
        model.load_state_dict(best[1])
    return {"steps": step, "best_step": best[2], "best_heldout_loss": best[0], "seconds": time.time() - t0,
            "loss_curve": [[s, round(l, 4)] for s, l in sorted(set(losses[::max(1, len(losses) // 20)] + losses[-1:]))]}


# ---------------------------------------------------------------------------------------------
# saving and references


def greedy(model, ids, n):
    """n greedy ids after ids, by full recomputation (no cache), EOS not stopping; and the smallest
    top-1 minus top-2 logit margin met on the way."""
    import torch

    seq, margin = list(ids), float("inf")
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1].double()
            top = torch.topk(logits, 2)
            margin = min(margin, (top.values[0] - top.values[1]).item())
            seq.append(int(top.indices[0]))
    return seq[len(ids):], margin


def save_and_reference(a, model, fast, bos, eos, ref_windows, held_split_windows, info):
    import torch
    from hf_rope import exact_rope
    from transformers import GenerationConfig, LlamaForCausalLM

    out = a.out
    model = model.to("cpu").to(torch.float16)
    model.config.use_cache = True
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    cfg_path = os.path.join(out, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    if cfg.get("chat_template") is None:
        cfg["chat_template"] = CHAT_TEMPLATE
        json.dump(cfg, open(cfg_path, "w"), ensure_ascii=False, indent=2)
    GenerationConfig(bos_token_id=bos, eos_token_id=eos).save_pretrained(out)
    del model

    # references from the saved f16 file, computed in f32 on the CPU (what parallm's tests load)
    ref = LlamaForCausalLM.from_pretrained(out).to("cpu").float().eval()
    print(f"rope inv_freq: largest relative change after undoing f16 rounding {exact_rope(ref):.2e}")
    cpu = torch.device("cpu")
    win_nll = nll_windows(ref, ref_windows, cpu)
    split_nll = nll_windows(ref, held_split_windows, cpu)
    cands = []
    for p in PROMPTS:
        ids = list(fast(p, add_special_tokens=True)["input_ids"])
        new, margin = greedy(ref, ids, NEW_TOKENS)
        cands.append({"prompt": p, "ids": ids, "greedy": new, "text": fast.decode(new), "min_margin": round(margin, 4)})
    kept = sorted(cands, key=lambda c: -c["min_margin"])[:KEEP_PROMPTS]
    kept.sort(key=lambda c: PROMPTS.index(c["prompt"]))
    try:  # cross-check the hand-rolled loop against transformers' own greedy search
        c = kept[0]
        g = ref.generate(torch.tensor([c["ids"]]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                         do_sample=False, eos_token_id=None, pad_token_id=eos)
        same = g[0, len(c["ids"]):].tolist() == c["greedy"]
        print("generate() agrees with the greedy loop:", same)
    except Exception as e:  # noqa: BLE001  (only a cross-check)
        print("generate() cross-check skipped:", type(e).__name__, e)

    import transformers
    reference = {
        "model": os.path.basename(os.path.normpath(out)),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype": "float32 compute from the float16 weights",
        "heldout": {
            "about": "each window evaluated on its own from a fresh context; every position but the first is predicted; "
                     "perplexity = exp(sum nll / sum count)",
            "windows": ref_windows,
            "nll": [round(n, 6) for n, _ in win_nll],
            "count": [c for _, c in win_nll],
            "perplexity": ppl(win_nll),
        },
        "heldout_split": {"tokens": sum(len(w) for w in held_split_windows), "window": len(held_split_windows[0]),
                          "perplexity": ppl(split_nll)},
        "greedy": {"new_tokens": NEW_TOKENS, "eos_stops": False, "prompts": kept},
        "vocab": len(fast),
        "training": info,
    }
    text = json.dumps(reference, ensure_ascii=False, indent=1)
    # one line per list of numbers, not one line per number
    text = re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text)
    json.loads(text)
    with open(os.path.join(out, "reference.json"), "w") as f:
        f.write(text + "\n")
    return reference


def model_card(a, n_params, info, reference, cmd, data_info):
    g = "\n".join(f"- `{c['prompt']}` -> `{c['text']}`" for c in reference["greedy"]["prompts"])
    return f"""# tiny-kjv

parallm's embedded default model: a {n_params / 1e6:.1f}M-parameter LLaMA (`LlamaForCausalLM`, {a.layers} layers,
hidden {a.hidden}, {a.heads} heads / {a.kv_heads} key-value heads, intermediate {a.intermediate}, tied
embeddings, context {a.seq}) with its own byte-level BPE tokenizer of {reference['vocab']} tokens, trained
from scratch by `scripts/train_tiny.py` in this repository. It writes King-James-Bible-like English; it
is not instruction-tuned (the chat template exists so that chat requests run).

## Data and licence

The King James Version of the Bible (1611), as packaged by Debian in `bible-kjv-text`
(fetched and unpacked by `scripts/get_kjv.sh`). The copyright of the KJV text has expired (the
package's copyright file: "The copyright for the King James Version text of the Bible is expired");
the text is in the public domain. The weights are part of parallm, under its licence (Apache-2.0). Verse numbers and chapter headings are
dropped; each chapter is one document `<s> ... </s>`. Every {HELDOUT_EVERY}th chapter (index % {HELDOUT_EVERY} == {HELDOUT_AT})
is held out: {data_info['held_chapters']} chapters, {data_info['held_tokens']} tokens; training has
{data_info['train_tokens']} tokens.

## Training

Seed {a.seed}; dropout {a.dropout} on embeddings and MLP outputs while training; AdamW (lr {a.lr}, betas 0.9/0.95, weight decay {a.weight_decay}), {a.warmup} warm-up steps, cosine
to 10%; batch {a.batch} x {a.seq} tokens; bf16 autocast; {info['steps']} steps in {info['seconds']:.0f} s; the
weights are those of step {info['best_step']}, the best held-out loss seen. Saved in float16.

Reproduce (after `bash scripts/get_kjv.sh`):

    {cmd}

## Measured by transformers {reference['transformers']} (f32 from the f16 weights)

- held-out split perplexity ({reference['heldout_split']['tokens']} tokens, windows of {reference['heldout_split']['window']}): {reference['heldout_split']['perplexity']:.3f}
- reference.json's held-out windows ({len(reference['heldout']['windows'])} x {len(reference['heldout']['windows'][0])} tokens): {reference['heldout']['perplexity']:.3f}

Greedy continuations ({NEW_TOKENS} tokens):

{g}
"""


def main(argv):
    a = parse_args(argv)
    import torch  # noqa: F401  (fail here, before any work, when torch is missing)
    import transformers

    t_start = time.time()
    torch.manual_seed(a.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}", flush=True)

    chapters = read_chapters(a.data)
    if a.smoke:
        chapters = chapters[:160]
    train_texts, held = split_chapters(chapters)
    print(f"{len(chapters)} chapters: {len(train_texts)} train, {len(held)} held out", flush=True)

    if os.path.isdir(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    fast, bos, eos = train_tokenizer(train_texts, a.vocab, a.out)
    vocab = len(fast)
    train_docs = encode_docs(fast, train_texts, eos)
    held_docs = encode_docs(fast, [t for _, t in held], eos)
    train_stream = [i for d in train_docs for i in d]
    held_stream = [i for d in held_docs for i in d]
    print(f"vocab {vocab}; train {len(train_stream)} tokens, held out {len(held_stream)} tokens "
          f"({sum(len(t) for t in train_texts) / len(train_stream):.2f} chars/token)", flush=True)

    # reference windows: the first ref_window tokens of held-out chapters (each starts with <s>)
    ref_windows = [d[:a.ref_window] for d in held_docs if len(d) >= a.ref_window][:a.ref_windows]
    if len(ref_windows) < a.ref_windows:
        raise SystemExit(f"only {len(ref_windows)} held-out chapters of >= {a.ref_window} tokens")
    held_split_windows = windows_of(held_stream, a.seq)
    val_windows = held_split_windows[:64]  # for choosing the best step; the split's value is measured at the end

    model = build_model(a, vocab, bos, eos).to(device)
    if a.dropout > 0:
        add_dropout(model, a.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters", flush=True)
    info = train(a, model, train_stream, val_windows, device)
    print(f"trained {info['steps']} steps in {info['seconds']:.0f} s; best held-out loss {info['best_heldout_loss']:.4f} "
          f"at step {info['best_step']}", flush=True)
    print("loss curve:", " ".join(f"{s}:{l}" for s, l in info["loss_curve"]), flush=True)

    info = dict(info, seed=a.seed, data="Debian bible-kjv-text (King James Version, public domain)",
                heldout_rule=f"chapter index % {HELDOUT_EVERY} == {HELDOUT_AT}")
    reference = save_and_reference(a, model, fast, bos, eos, ref_windows, held_split_windows, info)
    args = ["python3", "scripts/train_tiny.py"]  # this run's arguments, with the step count it ran
    skip = False
    for x in argv:
        if skip:
            skip = False
        elif x in ("--minutes", "--epochs", "--steps"):
            skip = True
        elif not x.startswith(("--minutes=", "--epochs=", "--steps=")):
            args.append(x)
    if not a.smoke:
        args += ["--steps", str(info["steps"])]
    data_info = {"held_chapters": len(held), "held_tokens": len(held_stream), "train_tokens": len(train_stream)}
    with open(os.path.join(a.out, "README.md"), "w") as f:
        f.write(model_card(a, n_params, info, reference, " ".join(args), data_info))

    print(f"held-out split perplexity {reference['heldout_split']['perplexity']:.3f}; "
          f"reference windows {reference['heldout']['perplexity']:.3f}", flush=True)
    for c in reference["greedy"]["prompts"]:
        print(f"  {c['prompt']!r} -> {c['text']!r}  (min margin {c['min_margin']})", flush=True)
    sizes = {f: os.path.getsize(os.path.join(a.out, f)) for f in sorted(os.listdir(a.out))}
    print("wrote", a.out, sizes, f"in {time.time() - t_start:.0f} s total", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
