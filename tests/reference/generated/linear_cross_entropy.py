"""Golden vectors for the fused linear cross-entropy, from PyTorch's unfused path.

For each case: logits = F.linear(hidden, head), then the transforms transformers applies
(Cohere's `logits * logit_scale`, Granite's `logits / logits_scaling`, Gemma 2's
`cap * tanh(logits / cap)`), then `F.cross_entropy(..., ignore_index, label_smoothing,
reduction="none")`, Liger's z-loss `lse_square_scale * logsumexp(logits)**2` on the
tokens that count, token weights, and the reduction (mean: the weighted sum divided by
the sum of the weights of the tokens that count, which is PyTorch's mean when every
weight is 1). `(loss * grad_scale).backward()` gives the gradients of hidden and head.
The float64 file runs everything in float64, the float32 file in float32.

Run: /work/venv/bin/python tests/reference/generated/linear_cross_entropy.py
(torch 2.x; rewrites lce_f64.json and lce_f32.json beside it).
"""

import json
import pathlib

import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parent
N, E, V = 7, 5, 11


def case(name, dtype, gen, **opt):
    hidden = (torch.randn(N, E, generator=gen, dtype=torch.float64) * 1.5).to(dtype)
    head = (torch.randn(V, E, generator=gen, dtype=torch.float64) * 1.5).to(dtype)
    targets = torch.randint(0, V, (N,), generator=gen)
    ignore = opt.get("ignore_index", -100)
    for i in opt.get("ignored", []):
        targets[i] = ignore
    with torch.no_grad():
        raw = hidden @ head.T
    for i in opt.get("target_is_max", []):
        targets[i] = int(raw[i].argmax())
    weights = opt.get("weights")
    hidden.requires_grad_(True)
    head.requires_grad_(True)
    logits = F.linear(hidden, head)
    if "multiply" in opt:
        logits = logits * opt["multiply"]
    if "divide" in opt:
        logits = logits / opt["divide"]
    if "softcap" in opt:
        cap = opt["softcap"]
        logits = cap * torch.tanh(logits / cap)
    per = F.cross_entropy(
        logits,
        targets,
        ignore_index=ignore,
        label_smoothing=opt.get("label_smoothing", 0.0),
        reduction="none",
    )
    lse = torch.logsumexp(logits, dim=-1)
    mask = (targets != ignore).to(dtype)
    if opt.get("z_loss", 0.0):
        per = per + opt["z_loss"] * lse.pow(2) * mask
    w = torch.tensor(weights, dtype=dtype) if weights is not None else torch.ones(N, dtype=dtype)
    per = per * w
    reduction = opt.get("reduction", "mean")
    if reduction == "mean":
        loss = per.sum() / (w * mask).sum()
    else:
        loss = per.sum()
    grad_scale = opt.get("grad_scale", 1.0)
    (loss * grad_scale).backward()
    return {
        "name": name,
        "n_tokens": N,
        "n_embd": E,
        "vocab_size": V,
        "hidden": hidden.detach().double().flatten().tolist(),
        "head": head.detach().double().flatten().tolist(),
        "targets": targets.tolist(),
        "weights": weights,
        "ignore_index": ignore,
        "label_smoothing": opt.get("label_smoothing", 0.0),
        "z_loss": opt.get("z_loss", 0.0),
        "multiply": opt.get("multiply"),
        "divide": opt.get("divide"),
        "softcap": opt.get("softcap"),
        "reduction": reduction,
        "grad_scale": grad_scale,
        "loss": float(loss.detach()),
        "losses": per.detach().double().tolist(),
        "lse": lse.detach().double().tolist(),
        "argmax": logits.detach().argmax(dim=-1).tolist(),
        "grad_hidden": hidden.grad.double().flatten().tolist(),
        "grad_head": head.grad.double().flatten().tolist(),
    }


CASES = [
    ("plain", {}),
    ("ignore_index", {"ignored": [1, 4]}),
    ("ignore_a_whole_chunk", {"ignored": [2, 3]}),
    ("ignore_index_other_value", {"ignore_index": 3, "ignored": [0, 6]}),
    ("target_is_max", {"target_is_max": [0, 2, 5]}),
    ("label_smoothing", {"label_smoothing": 0.1}),
    ("z_loss", {"z_loss": 1e-2}),
    ("multiply", {"multiply": 0.0625}),
    ("divide", {"divide": 4.0}),
    ("softcap", {"softcap": 3.0}),
    ("weights", {"weights": [1.0, 0.5, 2.0, 0.0, 1.0, 3.0, 0.25]}),
    ("reduction_sum", {"reduction": "sum", "grad_scale": 0.5}),
    ("reduction_none", {"reduction": "none"}),
    (
        "everything",
        {
            "ignored": [3],
            "target_is_max": [1],
            "label_smoothing": 0.2,
            "z_loss": 1e-3,
            "divide": 2.0,
            "softcap": 5.0,
            "weights": [1.0, 0.5, 2.0, 1.0, 1.5, 3.0, 0.25],
            "grad_scale": 2.0,
        },
    ),
    (
        "everything_multiply_sum",
        {
            "ignored": [0, 5],
            "label_smoothing": 0.05,
            "z_loss": 1e-4,
            "multiply": 0.5,
            "softcap": 2.0,
            "reduction": "sum",
        },
    ),
]


def main():
    for dtype, suffix in [(torch.float64, "f64"), (torch.float32, "f32")]:
        gen = torch.Generator().manual_seed(20261203)
        cases = [case(name, dtype, gen, **opt) for name, opt in CASES]
        doc = {
            "generator": "tests/reference/generated/linear_cross_entropy.py",
            "torch": torch.__version__,
            "dtype": suffix,
            "cases": cases,
        }
        (OUT / f"lce_{suffix}.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
