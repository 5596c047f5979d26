"""Out-of-place interleaved RoPE: tokenloom (through its C API) against PyTorch's complex
multiply with `out=` (Meta's `apply_rotary_emb`, without the allocation), on the same
(1, 2048, 32, 128) f32 tensor, interleaved timing (shuffled order, 31 rounds, median and
minimum per call). Both outputs are checked against each other first.

Run, with a Python that has torch and numpy:
    cargo build --release -p tokenloom-capi
    RAYON_NUM_THREADS=1 python crates/devtools/scripts/rope_vs_torch.py target/release/libtokenloom_capi.so 1
    RAYON_NUM_THREADS=2 python crates/devtools/scripts/rope_vs_torch.py target/release/libtokenloom_capi.so 2
The thread count argument is given to torch.set_num_threads; RAYON_NUM_THREADS sets
tokenloom's pool (read once per process). docs/benchmarks/plain-loop.md quotes the output.
"""

import ctypes
import pathlib
import random
import sys
import time

import numpy as np
import torch

# The C API's tensor descriptor, defined once, by the C API's own Python test.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "capi" / "tests" / "python"))
from test_capi import Tensor  # noqa: E402


def describe(t):
    assert t.is_contiguous() and t.dtype == torch.float32
    d = Tensor()
    d.data = t.data_ptr()
    d.dtype = 0
    d.rank = t.dim()
    for i, n in enumerate(t.shape):
        d.dims[i] = n
    return d


def main():
    lib = ctypes.CDLL(sys.argv[1])
    threads = int(sys.argv[2])
    torch.set_num_threads(threads)
    P = ctypes.c_void_p
    lib.tokenloom_rope.argtypes = [P, P, P, P, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                                   ctypes.c_double, ctypes.c_size_t, P]
    lib.tokenloom_rope.restype = ctypes.c_int
    batch, seq_len, n_heads, head_dim = 1, 2048, 32, 128
    half = head_dim // 2
    inv_freq = 10000.0 ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.arange(seq_len, dtype=np.float64), inv_freq)  # f64 angles
    cos = torch.from_numpy(np.cos(angles).astype(np.float32)).contiguous()
    sin = torch.from_numpy(np.sin(angles).astype(np.float32)).contiguous()
    freqs_cis = torch.complex(cos, sin).view(seq_len, 1, half)  # Meta's layout, broadcast over heads
    x = torch.randn(batch, seq_len, n_heads, head_dim, dtype=torch.float32)
    xc = torch.view_as_complex(x.view(batch, seq_len, n_heads, half, 2))
    out_torch = torch.empty_like(x)
    oc = torch.view_as_complex(out_torch.view(batch, seq_len, n_heads, half, 2))
    out_tl = torch.empty_like(x)
    dx, dout, dcos, dsin = describe(x), describe(out_tl), describe(cos), describe(sin)
    args = (ctypes.byref(dx), ctypes.byref(dout), ctypes.byref(dcos), ctypes.byref(dsin),
            0, 0, 0, 1.0, 0, None)  # interleaved pairs, (batch, seq, heads, dim), forward

    def run_torch():
        torch.mul(xc, freqs_cis, out=oc)

    def run_tokenloom():
        status = lib.tokenloom_rope(*args)
        assert status == 0, status

    run_torch()
    run_tokenloom()
    err = (out_torch - out_tl).abs().max().item()
    assert err < 1e-5, f"outputs differ by {err}"
    contenders = {"pytorch_mul_out": run_torch, "tokenloom_rope_into": run_tokenloom}
    calls = 100
    samples = {name: [] for name in contenders}
    names = list(contenders)
    rng = random.Random(7)
    for _ in range(31):
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            for _ in range(calls):
                contenders[name]()
            samples[name].append((time.perf_counter() - start) / calls)
    stats = {n: (sorted(s)[len(s) // 2], min(s)) for n, s in samples.items()}
    for n, (med, mn) in stats.items():
        print(f"{threads} thread(s) {n:22s} median {med * 1e3:.3f} ms  min {mn * 1e3:.3f} ms")
    (tm, tmin), (pm, pmin) = stats["tokenloom_rope_into"], stats["pytorch_mul_out"]
    print(f"{threads} thread(s) tokenloom / pytorch: median {tm / pm:.2f}x  min {tmin / pmin:.2f}x  (max |diff| {err:.1e})")


if __name__ == "__main__":
    main()
