"""Out-of-place interleaved RoPE: tokenloom (through its C API) against PyTorch's complex
multiply with `out=` (Meta's `apply_rotary_emb`, without the allocation), on the same
f32 input, interleaved timing (shuffled order, 31 rounds, median and minimum per call).
Both outputs are checked against each other first.

Each of the two writes into each of two output buffers, A and B, allocated in the shared
harness's order (A, two more tensors of the same size, B), so that a difference between the buffers is not taken
for one between the kernels: in ../shared/peer-bench PyTorch writes into one buffer and
tokenloom into another, and on the project's AMD host the same kernel ran 3-8 % slower
into one of them (docs/benchmarks/spread-threads.md, "The one-thread RoPE gap").

Run, with a Python that has torch and numpy:
    cargo build --release -p tokenloom-capi
    RAYON_NUM_THREADS=1 python crates/devtools/scripts/rope_vs_torch.py target/release/libtokenloom_capi.so 1
    RAYON_NUM_THREADS=2 python crates/devtools/scripts/rope_vs_torch.py target/release/libtokenloom_capi.so 2
    RAYON_NUM_THREADS=1 python crates/devtools/scripts/rope_vs_torch.py target/release/libtokenloom_capi.so 1 8,512,32,128
The thread count argument is given to torch.set_num_threads; RAYON_NUM_THREADS sets
tokenloom's pool (read once per process). The optional shape is (batch, seq_len,
n_heads, head_dim), default 1,2048,32,128. docs/benchmarks/plain-loop.md and
spread-threads.md quote the output.
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
    shape = sys.argv[3] if len(sys.argv) > 3 else "1,2048,32,128"
    batch, seq_len, n_heads, head_dim = (int(n) for n in shape.split(","))
    half = head_dim // 2
    inv_freq = 10000.0 ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.arange(seq_len, dtype=np.float64), inv_freq)  # f64 angles
    cos = torch.from_numpy(np.cos(angles).astype(np.float32)).contiguous()
    sin = torch.from_numpy(np.sin(angles).astype(np.float32)).contiguous()
    freqs_cis = torch.complex(cos, sin).view(seq_len, 1, half)  # Meta's layout, broadcast over heads
    x = torch.randn(batch, seq_len, n_heads, head_dim, dtype=torch.float32)
    xc = torch.view_as_complex(x.view(batch, seq_len, n_heads, half, 2))
    # The harness's order: tokenloom's output, two scratch tensors, PyTorch's output.
    out_a = torch.empty_like(x)
    spacers = [torch.empty_like(x), torch.empty_like(x)]  # noqa: F841 (kept alive)
    outs = {"A": out_a, "B": torch.empty_like(x)}
    dx, dcos, dsin = describe(x), describe(cos), describe(sin)

    def torch_into(out):
        oc = torch.view_as_complex(out.view(batch, seq_len, n_heads, half, 2))
        return lambda: torch.mul(xc, freqs_cis, out=oc)

    def tokenloom_into(out):
        dout = describe(out)
        args = (ctypes.byref(dx), ctypes.byref(dout), ctypes.byref(dcos), ctypes.byref(dsin),
                0, 0, 0, 1.0, 0, None)  # interleaved pairs, (batch, seq, heads, dim), forward

        def run():
            status = lib.tokenloom_rope(*args)
            assert status == 0, status
        return run

    contenders = {}
    for buf, out in outs.items():
        contenders[f"pytorch_mul_out -> {buf}"] = torch_into(out)
        contenders[f"tokenloom_rope_into -> {buf}"] = tokenloom_into(out)
    contenders["pytorch_mul_out -> A"]()
    contenders["tokenloom_rope_into -> B"]()
    err = (outs["A"] - outs["B"]).abs().max().item()
    assert err < 1e-5, f"outputs differ by {err}"
    calls = max(1, int(0.03 / (x.numel() * 8 / 16e9)))  # about 30 ms a sample
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
    print(f"shape {shape}, {calls} calls a sample")
    for n, (med, mn) in stats.items():
        print(f"{threads} thread(s) {n:26s} median {med * 1e3:.3f} ms  min {mn * 1e3:.3f} ms")
    for tl_buf, pt_buf, what in (("A", "A", "same buffer"), ("B", "B", "same buffer"),
                                 ("A", "B", "tokenloom into the buffer allocated first, as in the harness")):
        (tm, tmin) = stats[f"tokenloom_rope_into -> {tl_buf}"]
        (pm, pmin) = stats[f"pytorch_mul_out -> {pt_buf}"]
        print(f"{threads} thread(s) tokenloom -> {tl_buf} / pytorch -> {pt_buf} ({what}): "
              f"median {tm / pm:.2f}x  min {tmin / pmin:.2f}x")
    print(f"(max |diff| {err:.1e})")

if __name__ == "__main__":
    main()
