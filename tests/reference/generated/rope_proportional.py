"""Golden vectors for transformers' "proportional" RoPE (Gemma 4's full-attention layers).

transformers' own code, run in float64: `ROPE_INIT_FUNCTIONS["proportional"]`
(`_compute_proportional_rope_parameters` in modeling_rope_utils.py) with `torch.float`
rebound to `torch.float64` while it runs, then the cos/sin of `LlamaRotaryEmbedding.forward`
(cat(freqs, freqs), times the attention scaling) and `apply_rotary_pos_emb` of
modeling_llama.py, in float64. The float32 frequencies transformers computes natively are
stored beside them.

Run (needs torch and transformers 5.x): python3 tests/reference/generated/rope_proportional.py
(rewrites rope_hf_proportional_f64.json beside it).
"""

import json
import pathlib

import torch
import transformers
import transformers.modeling_rope_utils as rope_utils
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

OUT = pathlib.Path(__file__).resolve().parent
NAME = "rope_hf_proportional_f64"


def tensor(t):
    return {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "data": t.flatten().tolist()}


def main():
    rope_parameters = {"rope_type": "proportional", "rope_theta": 1_000_000.0, "partial_rotary_factor": 0.25}
    head_dim, num_heads, num_kv_heads, max_pos = 16, 2, 1, 8192
    config = LlamaConfig(
        head_dim=head_dim,
        hidden_size=head_dim * num_heads,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_pos,
        rope_parameters=dict(rope_parameters),
    )
    init = rope_utils.ROPE_INIT_FUNCTIONS["proportional"]
    inv_freq32, _ = init(config, "cpu")
    saved = torch.float
    torch.float = torch.float64
    try:
        inv_freq, attention_scaling = init(config, "cpu")
    finally:
        torch.float = saved
    assert inv_freq.dtype == torch.float64

    gen = torch.Generator().manual_seed(7)
    position_ids = torch.tensor([[0, 1, 2, 100, 2047, 2048, 4096, 8191]])
    seq = position_ids.shape[1]
    q = torch.randn(1, num_heads, seq, head_dim, generator=gen, dtype=torch.float64)
    k = torch.randn(1, num_kv_heads, seq, head_dim, generator=gen, dtype=torch.float64)
    # LlamaRotaryEmbedding.forward, in float64.
    freqs = position_ids[:, :, None].to(torch.float64) * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * attention_scaling, emb.sin() * attention_scaling
    q_embed, k_embed = apply_rotary_pos_emb(q, k, cos, sin)

    case = {
        "case": NAME,
        "kind": "rope_hf",
        "description": "proportional (Gemma 4): the first partial_rotary_factor·head_dim/2 pairs at theta^(-2i/head_dim), the rest frequency 0",
        "layout": "hf_half_split (rotate_half: pairs (i, i+rot/2))",
        "dtype": "float64",
        "reference": f"transformers {transformers.__version__}: ROPE_INIT_FUNCTIONS['proportional'] with torch.float rebound to float64; LlamaRotaryEmbedding.forward's cos/sin and modeling_llama.apply_rotary_pos_emb in float64",
        "config": {
            "head_dim": head_dim,
            "num_heads": num_heads,
            "num_kv_heads": num_kv_heads,
            "max_position_embeddings": max_pos,
            "rope_parameters": rope_parameters,
            "q_layout": "(batch, heads, seq, head_dim)",
        },
        "inputs": {"q": tensor(q), "k": tensor(k), "position_ids": tensor(position_ids)},
        "expected": {
            "inv_freq": tensor(inv_freq),
            "attention_scaling": float(attention_scaling),
            "cos": tensor(cos),
            "sin": tensor(sin),
            "q_embed": tensor(q_embed),
            "k_embed": tensor(k_embed),
        },
        "expected_hf_native_float32": {"inv_freq": tensor(inv_freq32)},
        "tolerance": {"abs": 1e-11, "note": "for a float64 implementation vs expected"},
        "generator": {"script": "tests/reference/generated/rope_proportional.py", "torch": torch.__version__, "transformers": transformers.__version__},
    }
    (OUT / f"{NAME}.json").write_text(json.dumps(case) + "\n")


if __name__ == "__main__":
    main()
