"""Golden vectors for PyTorch's EmbeddingBag (forward and backward), from torch itself.

Each case calls `torch.embedding_bag(weight, input, offsets, scale_grad_by_freq, mode,
sparse=False, per_sample_weights, include_last_offset, padding_idx)` — what
`nn.EmbeddingBag` and `F.embedding_bag` call — and keeps its output and `max_indices`,
then back-propagates a random `grad_out` to the weight (and the per-sample weights).
Modes: sum, mean, max; bags from offsets (with empty bags, `include_last_offset`) or a
2-D input; `per_sample_weights`; `padding_idx` (also a bag of padding only); tied maxima
(two equal rows: the first id of the bag wins); `scale_grad_by_freq`. The float64 cases
run in float64, the float32 ones in float32.

`scale_grad_by_freq`: torch 2.13's CPU kernel divides by the count of the wrong id
(pytorch/pytorch#190063, fixed upstream by #190264); the expected gradient of those cases
is the documented one (built with the embedding backward, which is right), and torch's
CPU value is kept beside it as `grad_weight_torch_cpu_bug_190063`.

Run: /work/venv/bin/python tests/reference/generated/embedding_bag.py
(torch 2.x; rewrites embedding_bag.json beside it).
"""

import json
import pathlib

import torch
import torch.nn.functional

OUT = pathlib.Path(__file__).resolve().parent
MODES = {"sum": 0, "mean": 1, "max": 2}


def case(name, dtype, gen, ids, offsets=None, mode="mean", psw=False, padding_idx=None,
         include_last_offset=False, scale_grad_by_freq=False, vocab_size=9, n_embd=4,
         tie=None):
    weight = torch.randn(vocab_size, n_embd, generator=gen, dtype=torch.float64)
    if tie is not None:
        weight[tie[1]] = weight[tie[0]]
    weight = weight.to(dtype).requires_grad_(True)
    ids_t = torch.tensor(ids, dtype=torch.long)
    if offsets is None:
        # A 2-D input is one bag per row: F.embedding_bag flattens it with these offsets.
        n_bags, bag_len = ids_t.shape
        offsets_t = torch.arange(0, n_bags * bag_len, bag_len)
        ids_t = ids_t.reshape(-1)
    else:
        offsets_t = torch.tensor(offsets, dtype=torch.long)
    weights = None
    if psw:
        weights = torch.randn(ids_t.shape, generator=gen, dtype=torch.float64).to(dtype)
        weights.requires_grad_(True)
    out, _, _, max_indices = torch.embedding_bag(
        weight, ids_t, offsets_t, scale_grad_by_freq, MODES[mode], False, weights,
        include_last_offset, padding_idx)
    # The public function gives the same output (it is what users call).
    public = torch.nn.functional.embedding_bag(
        ids_t, weight, offsets_t, mode=mode, scale_grad_by_freq=scale_grad_by_freq,
        per_sample_weights=weights, include_last_offset=include_last_offset,
        padding_idx=padding_idx)
    assert torch.equal(public, out), name
    grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(dtype)
    out.backward(grad_out)
    grad_weight = weight.grad
    torch_cpu = None
    if scale_grad_by_freq:
        # torch <= 2.13's CPU backward divides by the wrong count (pytorch/pytorch#190063,
        # fixed by #190264): the documented gradient — each token's share summed per id and
        # divided by the id's count, as nn.Embedding, CUDA and MPS compute it — is built
        # from the per-token shares with the (correct) embedding backward.
        torch_cpu = grad_weight.tolist()
        bag_of = torch.repeat_interleave(
            torch.arange(len(offsets_t)), torch.diff(offsets_t, append=torch.tensor([len(ids_t)])))
        shares = grad_out[bag_of]
        if mode == "mean":
            keep = ids_t != (-1 if padding_idx is None else padding_idx)
            sizes = torch.zeros(len(offsets_t), dtype=dtype).index_add_(0, bag_of, keep.to(dtype))
            shares = shares / sizes[bag_of].clamp(min=1).unsqueeze(1)
        grad_weight = torch.ops.aten.embedding_dense_backward(
            shares, ids_t, vocab_size, -1 if padding_idx is None else padding_idx, True)
    record = {
        "name": name,
        "dtype": str(dtype).removeprefix("torch."),
        "mode": mode,
        "weight": weight.detach().tolist(),
        "ids": ids,
        "offsets": offsets,
        "include_last_offset": include_last_offset,
        "padding_idx": padding_idx,
        "scale_grad_by_freq": scale_grad_by_freq,
        "per_sample_weights": None if weights is None else weights.detach().tolist(),
        "output": out.detach().tolist(),
        "grad_out": grad_out.tolist(),
        "grad_weight": grad_weight.tolist(),
        "grad_weight_torch_cpu_bug_190063": torch_cpu,
        "grad_per_sample_weights": None if weights is None else weights.grad.tolist(),
        "max_indices": max_indices.tolist() if mode == "max" else None,
    }
    return record


def main():
    gen = torch.Generator().manual_seed(20261205)
    flat = [1, 4, 4, 0, 7, 2, 4, 8, 3, 3, 1, 6, 5]
    cases = []
    for dtype in (torch.float64, torch.float32):
        suffix = "f64" if dtype == torch.float64 else "f32"
        cases += [
            case(f"sum_offsets_empty_bag_{suffix}", dtype, gen, flat, [0, 3, 3, 7, 10], "sum"),
            case(f"mean_include_last_offset_{suffix}", dtype, gen, flat, [0, 4, 4, 9, 13], "mean",
                 include_last_offset=True),
            case(f"max_2d_tied_rows_{suffix}", dtype, gen,
                 [[3, 5, 1, 5], [5, 3, 3, 0], [2, 2, 2, 2]], None, "max", tie=(3, 5)),
            case(f"sum_per_sample_weights_{suffix}", dtype, gen, flat, [0, 5, 6, 11], "sum",
                 psw=True),
        ]
    cases += [
        case("mean_padding_idx_f64", torch.float64, gen, [2, 4, 2, 2, 2, 7, 1, 2], [0, 3, 5, 6],
             "mean", padding_idx=2),
        case("sum_padding_idx_per_sample_weights_f64", torch.float64, gen,
             [2, 4, 2, 2, 7, 1, 2], [0, 3, 4], "sum", psw=True, padding_idx=2),
        case("max_padding_idx_f64", torch.float64, gen, [[2, 4, 6], [2, 2, 2], [6, 2, 1]], None,
             "max", padding_idx=2),
        case("sum_scale_grad_by_freq_f64", torch.float64, gen, flat, [0, 2, 8], "sum",
             scale_grad_by_freq=True),
        case("mean_2d_scale_grad_by_freq_f64", torch.float64, gen,
             [[1, 1, 4], [4, 1, 8]], None, "mean", scale_grad_by_freq=True),
    ]
    meta = {"generator": "tests/reference/generated/embedding_bag.py",
            "torch": torch.__version__, "cases": cases}
    (OUT / "embedding_bag.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
