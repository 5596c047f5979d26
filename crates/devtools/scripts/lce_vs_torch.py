"""The loss head, forward and backward: tokenloom's fused `linear_cross_entropy` (through
its C API, on torch's buffers) against PyTorch's unfused path (`F.linear` +
`F.cross_entropy`, autograd) and PyTorch's own chunked `F.linear_cross_entropy(...,
options=nn.LinearCrossEntropyOptions())`, in f32 on the CPU.

Time: one process, contenders interleaved in shuffled order, median and minimum per
call; the losses and gradients are checked against each other first. Memory: each
contender again in its own process, peak RSS growth over its inputs and gradient
buffers (the peak RSS, VmHWM, reset before the call, minus the RSS before it), against the unfused logits + their
gradient (2 · N · V · 4 bytes).

Run, with a Python that has torch:
    cargo build --release -p tokenloom-capi
    RAYON_NUM_THREADS=2 python crates/devtools/scripts/lce_vs_torch.py \
        target/release/libtokenloom_capi.so 2 2048 2048 32000 5
    RAYON_NUM_THREADS=2 python crates/devtools/scripts/lce_vs_torch.py \
        target/release/libtokenloom_capi.so 2 8192 256 128256 3
Arguments: library, threads, N, n_embd, vocab_size, rounds. LCE_DTYPE=bf16 runs every
contender on bf16 hidden states and head (PyTorch's logits are then bf16; tokenloom's are
f32, its gradients rounded to bf16 once) and checks both against the f32 computation on
the same values. TOKENLOOM_CHUNK_TOKENS=T
sets tokenloom's chunk (default: 32 MiB of logits); `--chunks 32,64,128` after the
arguments measures tokenloom alone at each chunk size (how the default was chosen).
docs/benchmarks/loss-head.md quotes the output.
"""

import ctypes
import os
import pathlib
import random
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "capi" / "tests" / "python"))
from test_capi import Tensor  # noqa: E402


class Options(ctypes.Structure):
    _fields_ = [
        ("has_ignore_index", ctypes.c_int32),
        ("ignore_index", ctypes.c_int64),
        ("label_smoothing", ctypes.c_double),
        ("z_loss", ctypes.c_double),
        ("logit_scale_kind", ctypes.c_int32),
        ("logit_scale", ctypes.c_double),
        ("softcap", ctypes.c_double),
        ("reduction", ctypes.c_int32),
        ("chunk_tokens", ctypes.c_size_t),
        ("grad_scale", ctypes.c_double),
        ("accumulate", ctypes.c_int32),
    ]


def describe(t, dtype):
    assert t.is_contiguous()
    d = Tensor()
    d.data = t.data_ptr()
    d.dtype = dtype
    d.rank = t.dim()
    for i, n in enumerate(t.shape):
        d.dims[i] = n
    return d


BF16 = os.environ.get("LCE_DTYPE", "f32") == "bf16"
DTYPE_TAG = 3 if BF16 else 0  # TOKENLOOM_DTYPE_BF16 / _F32
ELEMENT_BYTES = 2 if BF16 else 4


def setup(n, e, v):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, e, generator=gen) * 0.5
    head = torch.randn(v, e, generator=gen) * (1.0 / e**0.5)
    targets = torch.randint(0, v, (n,), generator=gen)
    targets[::17] = -100
    if BF16:
        hidden, head = hidden.to(torch.bfloat16), head.to(torch.bfloat16)
    return hidden, head, targets


def contenders(lib, hidden, head, targets):
    """name -> function returning (loss, grad_hidden, grad_head)."""
    gh, gw = torch.zeros_like(hidden), torch.zeros_like(head)
    gh.fill_(0.0)
    gw.fill_(0.0)
    lib.tokenloom_cross_entropy_options_default.restype = Options
    options = lib.tokenloom_cross_entropy_options_default()
    options.chunk_tokens = int(os.environ.get("TOKENLOOM_CHUNK_TOKENS", "0"))  # 0: default
    P = ctypes.c_void_p
    lib.tokenloom_linear_cross_entropy.argtypes = [P] * 11
    lib.tokenloom_linear_cross_entropy.restype = ctypes.c_int
    dh, dw, dt = describe(hidden, DTYPE_TAG), describe(head, DTYPE_TAG), describe(targets, 6)
    dgh, dgw = describe(gh, DTYPE_TAG), describe(gw, DTYPE_TAG)
    loss = ctypes.c_double()
    args = [ctypes.byref(dh), ctypes.byref(dw), ctypes.byref(dt), None, ctypes.byref(options),
            ctypes.byref(dgh), ctypes.byref(dgw), ctypes.byref(loss), None, None, None]

    def tokenloom():
        status = lib.tokenloom_linear_cross_entropy(*args)
        assert status == 0, status
        return loss.value, gh, gw

    def torch_path(chunked):
        def run():
            h = hidden.detach().requires_grad_(True)
            w = head.detach().requires_grad_(True)
            if chunked:
                out = F.linear_cross_entropy(h, w, targets, options=nn.LinearCrossEntropyOptions())
            else:
                out = F.cross_entropy(F.linear(h, w), targets)
            out.backward()
            return out.item(), h.grad, w.grad
        return run

    return {
        "tokenloom_fused": tokenloom,
        "pytorch_unfused": torch_path(False),
        "pytorch_chunked": torch_path(True),
    }


def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def memory_child(lib_path, threads, n, e, v, name):
    torch.set_num_threads(threads)
    hidden, head, targets = setup(n, e, v)
    run = contenders(ctypes.CDLL(lib_path), hidden, head, targets)[name]
    # torch's gradients are fresh tensors: count them as outputs, not extra.
    outputs = (hidden.numel() + head.numel()) * ELEMENT_BYTES // 1024 if name != "tokenloom_fused" else 0
    # Reset the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0), then measure the call.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS")
    run()
    extra = status_kib("VmHWM") - before - outputs
    print(max(extra, 0) * 1024)


def memory_of(lib_path, threads, n, e, v, name, env=None):
    out = subprocess.run(
        [sys.executable, __file__, lib_path, str(threads), str(n), str(e), str(v), "1",
         "--memory-child", name],
        capture_output=True, text=True, check=True, env=env or os.environ)
    return int(out.stdout.strip().splitlines()[-1])


def sweep_chunks(lib_path, threads, n, e, v, rounds, chunks):
    logits_and_grad = 2 * n * v * ELEMENT_BYTES
    for chunk in chunks.split(","):
        env = dict(os.environ, TOKENLOOM_CHUNK_TOKENS=chunk)
        os.environ["TOKENLOOM_CHUNK_TOKENS"] = chunk
        hidden, head, targets = setup(n, e, v)
        run = contenders(ctypes.CDLL(lib_path), hidden, head, targets)["tokenloom_fused"]
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        extra = memory_of(lib_path, threads, n, e, v, "tokenloom_fused", env)
        print(f"chunk {chunk:>5} tokens: min {min(times):.3f} s, peak extra memory "
              f"{extra / 2**20:.1f} MiB ({100 * extra / logits_and_grad:.2f} %)")


def main():
    lib_path, threads = sys.argv[1], int(sys.argv[2])
    n, e, v, rounds = (int(x) for x in sys.argv[3:7])
    if len(sys.argv) > 7 and sys.argv[7] == "--memory-child":
        memory_child(lib_path, threads, n, e, v, sys.argv[8])
        return
    if len(sys.argv) > 7 and sys.argv[7] == "--chunks":
        sweep_chunks(lib_path, threads, n, e, v, rounds, sys.argv[8])
        return
    torch.set_num_threads(threads)
    hidden, head, targets = setup(n, e, v)
    runs = contenders(ctypes.CDLL(lib_path), hidden, head, targets)
    results = {}
    for name, run in runs.items():
        loss, gh, gw = run()
        results[name] = (loss, gh.clone(), gw.clone())
    if BF16:
        # The reference: the f32 computation on the same (bf16) values.
        h = hidden.float().requires_grad_(True)
        w = head.float().requires_grad_(True)
        out = F.cross_entropy(F.linear(h, w), targets)
        out.backward()
        ref = (out.item(), h.grad, w.grad)
        reference = "f32 on the same values"
    else:
        ref = results["pytorch_unfused"]
        reference = "unfused"
    for name, (loss, gh, gw) in results.items():
        gh, gw = gh.float(), gw.float()
        dl = abs(loss - ref[0]) / abs(ref[0])
        dh = ((gh - ref[1]).abs().max() / ref[1].abs().max()).item()
        dw = ((gw - ref[2]).abs().max() / ref[2].abs().max()).item()
        print(f"{name:16s} loss {loss:.6f}  rel. diff vs {reference}: loss {dl:.1e}, "
              f"grad_hidden {dh:.1e}, grad_head {dw:.1e}")
        if not BF16:
            assert dl < 1e-5 and dh < 1e-4 and dw < 1e-4, name
        elif name == "tokenloom_fused":
            assert dl < 1e-5 and dh < 2**-8 and dw < 2**-8, name
    samples = {name: [] for name in runs}
    names = list(runs)
    rng = random.Random(7)
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            runs[name]()
            samples[name].append(time.perf_counter() - start)
    stats = {k: (sorted(s)[len(s) // 2], min(s)) for k, s in samples.items()}
    logits_and_grad = 2 * n * v * ELEMENT_BYTES
    print(f"N={n} n_embd={e} V={v}, {'bf16' if BF16 else 'f32'}, {threads} thread(s), "
          f"{rounds} interleaved rounds; "
          f"unfused logits + gradient = {logits_and_grad / 2**20:.0f} MiB")
    for name, (med, mn) in stats.items():
        extra = memory_of(lib_path, threads, n, e, v, name)
        print(f"  {name:16s} median {med:.3f} s  min {mn:.3f} s  peak extra memory "
              f"{extra / 2**20:.1f} MiB ({100 * extra / logits_and_grad:.2f} % of logits + gradient)")
    t, u = stats["tokenloom_fused"], stats["pytorch_unfused"]
    c = stats["pytorch_chunked"]
    print(f"  tokenloom / pytorch unfused: median {t[0] / u[0]:.2f}x  min {t[1] / u[1]:.2f}x; "
          f"tokenloom / pytorch chunked: median {t[0] / c[0]:.2f}x  min {t[1] / c[1]:.2f}x")


if __name__ == "__main__":
    main()
