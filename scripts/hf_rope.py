"""HF transformers keeps a rotary embedding's inv_freq as a buffer, so model.half() (or loading
an f16 checkpoint) rounds it to f16, and every later model.float()/.double() computes the rope
angles from the rounded frequencies: an error proportional to the position (0.15 rad at position
300 for the fastest pair), which no kernel of parallm's makes. References must undo it.
"""
import torch


def exact_rope(model):
    """Recomputes every rotary inv_freq in float32 from the config; returns the largest change."""
    worst = 0.0
    for mod in model.modules():
        if not hasattr(mod, "inv_freq") or not isinstance(mod.inv_freq, torch.Tensor):
            continue
        old = mod.inv_freq
        if hasattr(mod, "rope_init_fn") and hasattr(mod, "config"):
            inv = mod.rope_init_fn(mod.config, old.device)[0]
        else:
            cfg = model.config
            theta = getattr(cfg, "rope_theta", None) or (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
            dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        inv = inv.to(device=old.device, dtype=torch.float32)
        worst = max(worst, float(((old.float() - inv).abs() / inv).max()))
        mod.inv_freq = inv
        if hasattr(mod, "original_inv_freq"):
            mod.original_inv_freq = inv
    return worst
