"""Golden vectors for the Marian and fairseq/M2M100 sinusoidal tables.

A line-by-line transcription into numpy of transformers' code (5.x):

* `MarianSinusoidalPositionalEmbedding._init_weight` (modeling_marian.py), which already
  computes in numpy float64 and only stores float32: the table here is that numpy
  computation, kept in float64.
* `M2M100SinusoidalPositionalEmbedding.get_embedding` (modeling_m2m_100.py), which
  computes in torch float32; here the same operations run in float64 (as the other
  reference files were made: "the reference code with its hard-coded float32 switched to
  float64"), and the float32 version is stored beside it.

Run: python3 tests/reference/generated/sinusoidal_variants.py (rewrites the JSON files
beside it). tests/reference/ itself holds only the shared PyTorch/HuggingFace vectors.
"""

import json
import math
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent


def marian(n_pos, dim):
    # MarianSinusoidalPositionalEmbedding._init_weight
    position_enc = np.array(
        [[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)]
    )
    out = np.zeros((n_pos, dim))
    sentinel = dim // 2 if dim % 2 == 0 else (dim // 2) + 1
    out[:, 0:sentinel] = np.sin(position_enc[:, 0::2])
    out[:, sentinel:] = np.cos(position_enc[:, 1::2])
    return out


def m2m100(num_embeddings, embedding_dim, padding_idx, dtype):
    # M2M100SinusoidalPositionalEmbedding.get_embedding
    half_dim = embedding_dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = np.exp(np.arange(half_dim, dtype=np.int64).astype(dtype) * dtype(-emb))
    emb = np.arange(num_embeddings, dtype=np.int64).astype(dtype)[:, None] * emb[None, :]
    emb = np.concatenate([np.sin(emb), np.cos(emb)], axis=1).reshape(num_embeddings, -1)
    if embedding_dim % 2 == 1:
        emb = np.concatenate([emb, np.zeros((num_embeddings, 1), dtype=dtype)], axis=1)
    if padding_idx is not None:
        emb[padding_idx, :] = 0
    return emb


def tensor(array, dtype="float64"):
    return {"dtype": dtype, "shape": list(array.shape), "data": [float(x) for x in array.ravel()]}


def write(case, kind, description, config, expected, tolerance):
    doc = {
        "case": case,
        "kind": kind,
        "description": description,
        "dtype": "float64",
        "reference": "numpy transcription of transformers' code (tests/reference/generated/sinusoidal_variants.py)",
        "config": config,
        "inputs": {},
        "expected": expected,
        "tolerance": tolerance,
        "generator": {"numpy": np.__version__},
    }
    (OUT / f"{case}.json").write_text(json.dumps(doc, indent=1) + "\n")


for dim in (16, 15):
    write(
        f"sin_marian_d{dim}_f64",
        "sinusoidal",
        f"MarianSinusoidalPositionalEmbedding, d_model {dim}, 12 positions: [sin | cos] halves "
        "with Vaswani's frequencies 10000^(2i/d); an odd d has one more sin column",
        {"d_model": dim, "base": 10000.0, "positions": list(range(12)), "layout": "marian"},
        {"pe": tensor(marian(12, dim))},
        {"abs": 1e-14},
    )
    table64 = m2m100(14, dim, 1, np.float64)
    table32 = m2m100(14, dim, 1, np.float32)
    write(
        f"sin_m2m100_d{dim}_f64",
        "sinusoidal",
        f"M2M100SinusoidalPositionalEmbedding.get_embedding, 14 rows, d_model {dim}, padding_idx 1: "
        "frequencies exp(-i*ln(10000)/(half-1)), [sin | cos], an odd d ends with a zero column, "
        "the padding row is zero; real positions start at padding_idx + 1",
        {"d_model": dim, "base": 10000.0, "table_rows": 14, "padding_idx": 1, "layout": "fairseq"},
        {
            "pe": tensor(table64),
            "expected_hf_native_float32": tensor(table32.astype(np.float64), "float32"),
        },
        {"abs": 1e-14, "float32_vs_float64": float(np.abs(table32 - table64).max())},
    )
