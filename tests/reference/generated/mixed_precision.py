"""Golden vectors for mixed precision: half tables and half gradients next to f32 masters,
with PyTorch's autocast path and an exact float64 reference.

Lookup: a bf16 / f16 table read into f32 (`F.embedding(ids, table).float()`, what a
model with a half table and f32 activations computes): exact, so tokenloom must equal it.

Backward: an f32 master table whose lookup feeds half-precision layers (autocast): the
upstream gradient arrives in bf16 / f16 and autograd casts it to f32 before the f32
embedding backward (`F.embedding(ids, w).to(half).backward(g)`). The ids repeat many times
(few distinct ids), so the f32 sums round. `expected` is the exact sum in float64;
`torch_max_abs_error` is how far the autocast path lands from it. tokenloom must land at
least as close. One case adds `padding_idx` and `scale_grad_by_freq`.

Run: /work/venv/bin/python tests/reference/generated/mixed_precision.py
(torch 2.x; rewrites mixed_precision.json beside it).
"""

import json
import pathlib

import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parent
VOCAB, N_EMBD = 12, 8


def backward_case(name, half, gen, padding_idx=None, scale=False):
    ids = torch.randint(0, 5, (2, 64), generator=gen)
    ids[0, :10] = torch.randint(5, VOCAB, (10,), generator=gen)
    # Gradients of very different sizes, so the f32 running sums lose bits.
    g = torch.randn(2, 64, N_EMBD, generator=gen, dtype=torch.float64)
    g = g * torch.exp2(torch.randint(-12, 12, (2, 64, 1), generator=gen).to(torch.float64))
    g = g.to(half)
    w = torch.randn(VOCAB, N_EMBD, generator=gen, dtype=torch.float32).requires_grad_(True)
    F.embedding(ids, w, padding_idx=padding_idx, scale_grad_by_freq=scale).to(half).backward(g)
    exact = torch.ops.aten.embedding_dense_backward(
        g.to(torch.float64), ids, VOCAB, -1 if padding_idx is None else padding_idx, scale)
    return {
        "name": name,
        "half": str(half).removeprefix("torch."),
        "ids": ids.tolist(),
        "grad_output": g.to(torch.float64).tolist(),
        "padding_idx": padding_idx,
        "scale_grad_by_freq": scale,
        "torch_autocast": w.grad.tolist(),
        "expected": exact.tolist(),
        "torch_max_abs_error": (w.grad.to(torch.float64) - exact).abs().max().item(),
    }


def lookup_case(name, half, gen):
    ids = torch.randint(0, VOCAB, (2, 7), generator=gen)
    table = (torch.randn(VOCAB, N_EMBD, generator=gen) * 3).to(half)
    return {
        "name": name,
        "half": str(half).removeprefix("torch."),
        "ids": ids.tolist(),
        "table": table.to(torch.float64).tolist(),
        "expected": F.embedding(ids, table).float().tolist(),
    }


def main():
    gen = torch.Generator().manual_seed(5122026)
    cases = {
        "backward": [
            backward_case("bf16_grad_into_f32", torch.bfloat16, gen),
            backward_case("f16_grad_into_f32", torch.float16, gen),
            backward_case("bf16_grad_padding_scaled", torch.bfloat16, gen, padding_idx=3,
                          scale=True),
        ],
        "lookup": [
            lookup_case("bf16_table_to_f32", torch.bfloat16, gen),
            lookup_case("f16_table_to_f32", torch.float16, gen),
        ],
    }
    meta = {"generator": "tests/reference/generated/mixed_precision.py",
            "torch": torch.__version__, **cases}
    (OUT / "mixed_precision.json").write_text(json.dumps(meta, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
