"""The golden vectors used without Rust: plain numpy implementations of the lookup, its
backward, RoPE (HuggingFace half-split and Meta interleaved, on the reference's cos/sin),
the sinusoidal table and the tied logits, checked against every case of index.json they
apply to — what a Python, C++ or JAX implementation does with these files.

    python crates/testkit/golden/check_with_numpy.py    # needs numpy

Prints one line per case and `golden: N cases checked with numpy`; exits 1 on a mismatch.
"""

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]


def tensor(t):
    """A schema tensor as a numpy array (non-finite values are strings)."""
    data = [float(x) if isinstance(x, str) else x for x in t["data"]]
    kind = np.int64 if t["dtype"].startswith(("int", "uint")) else np.float64
    return np.asarray(data, dtype=kind).reshape(t["shape"])


def rotate_half_split(x, cos, sin):
    """HF: x of (batch, heads, seq, head_dim), cos/sin (batch, seq, rotary_dim) duplicated."""
    rot = cos.shape[-1]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = np.concatenate([-x_rot[..., half:], x_rot[..., :half]], axis=-1)
    cos, sin = cos[:, None], sin[:, None]
    return np.concatenate([x_rot * cos + rotated * sin, x_pass], axis=-1)


def rotate_interleaved(x, real, imag, start):
    """Meta: x of (batch, seq, heads, head_dim), freqs_cis (positions, head_dim/2) — or
    already the rows start .. start + seq, as model.py slices them."""
    seq = x.shape[1]
    c = real + 1j * imag
    if c.shape[0] != seq:
        c = c[start : start + seq]
    c = c[None, :, None, :]
    xc = x[..., 0::2] + 1j * x[..., 1::2]
    out = xc * c
    return np.stack([out.real, out.imag], axis=-1).reshape(x.shape)


def check(case):
    """Recomputes a case's expected tensors; returns the names checked, or [] if none apply."""
    kind, inp, exp = case["kind"], case.get("inputs", {}), case["expected"]
    tol = case.get("tolerance", {}).get("abs", 0.0)
    got = {}
    if kind == "embedding" and "weight" in inp and "max_norm" not in json.dumps(case["config"]).replace('"max_norm": null', ""):
        weight, ids = tensor(inp["weight"]), tensor(inp["ids"])
        got["output"] = weight[ids]
        # float32 sums depend on PyTorch's summation order: only the float64 gradients
        if "grad_output" in inp and "grad_weight" in exp and case["dtype"] == "float64":
            grad = np.zeros_like(weight)
            np.add.at(grad, ids.reshape(-1), tensor(inp["grad_output"]).reshape(-1, weight.shape[1]))
            padding = case["config"].get("padding_idx")
            if padding is not None:
                grad[padding] = 0.0
            got["grad_weight"] = grad
    elif kind == "rope_hf":
        cos, sin = tensor(exp["cos"]), tensor(exp["sin"])
        got["q_embed"] = rotate_half_split(tensor(inp["q"]), cos, sin)
        got["k_embed"] = rotate_half_split(tensor(inp["k"]), cos, sin)
    elif kind == "rope_meta":
        real, imag = tensor(exp["freqs_cis_real"]), tensor(exp["freqs_cis_imag"])
        start = case["config"]["start_pos"]
        got["xq_out"] = rotate_interleaved(tensor(inp["xq"]), real, imag, start)
        got["xk_out"] = rotate_interleaved(tensor(inp["xk"]), real, imag, start)
    elif kind == "sinusoidal" and "pe" in exp and not inp:
        c = case["config"]
        pos = np.asarray(c["positions"], dtype=np.float64)[:, None]
        i = np.arange(0, c["d_model"], 2, dtype=np.float64)
        angle = pos / c["base"] ** (i / c["d_model"])
        pe = np.zeros((len(c["positions"]), c["d_model"]))
        pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
        got["pe"] = pe
    elif kind == "tied_logits":
        e, h, g = tensor(inp["E"]), tensor(inp["h"]), tensor(inp["grad_logits"])
        got["logits"] = h @ e.T
        got["grad_h"] = g @ e
        got["grad_E"] = np.einsum("bsv,bsd->vd", g, h)
    for name, value in got.items():
        want = tensor(exp[name])
        diff = np.max(np.abs(value - want)) if value.size else 0.0
        if value.shape != want.shape or not diff <= tol:
            raise AssertionError(f"{case['case']}: {name} differs by {diff:e} (tolerance {tol:e})")
    return sorted(got)


def main():
    index = json.loads((ROOT / "crates/testkit/golden/index.json").read_text())
    checked = 0
    for entry in index["cases"]:
        case = json.loads((ROOT / entry["path"]).read_text())
        try:
            names = check(case)
        except AssertionError as err:
            print(f"MISMATCH {err}")
            return 1
        if names:
            checked += 1
            print(f"  ok {entry['case']}: {', '.join(names)}")
    print(f"golden: {checked} cases checked with numpy")
    return 0 if checked >= 12 else 1


if __name__ == "__main__":
    sys.exit(main())
