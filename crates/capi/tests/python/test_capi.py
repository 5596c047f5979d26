"""The tokenloom C API from Python (ctypes + numpy), checked against the PyTorch and
HuggingFace reference vectors of tests/reference/ and against numpy.

Run (as .ci/run does), after `cargo build --release -p tokenloom-capi`:
    python3 crates/capi/tests/python/test_capi.py target/release/libtokenloom_capi.so
The last line is `python ctypes: N checks passed`.
"""

import ctypes
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[4]
# The reference copies: tests/reference, and the cases the conformance kit ships.
REFERENCE_DIRS = [ROOT / "tests" / "reference", ROOT / "crates" / "testkit" / "reference"]


def reference_case(name):
    for folder in REFERENCE_DIRS:
        path = folder / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"{name}.json is in none of {REFERENCE_DIRS}")

MAX_RANK = 8
DTYPES = {np.float32: 0, np.float64: 1, np.float16: 2, np.uint32: 4, np.int32: 5, np.int64: 6}
OK, TOKEN_OUT_OF_RANGE, MISALIGNED, ALIASED, BAD_SHAPE = 0, 6, 2, 3, 5
HALF_SPLIT, INTERLEAVED = 1, 0
BATCH_SEQ_HEADS, BATCH_HEADS_SEQ = 0, 1
FORWARD, INVERSE, BACKWARD = 0, 1, 2


class Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("rank", ctypes.c_size_t),
        ("dims", ctypes.c_size_t * MAX_RANK),
    ]


def describe(array):
    """A descriptor of a C-contiguous numpy array: its own memory, no copy."""
    assert array.flags["C_CONTIGUOUS"], "the API takes contiguous arrays"
    t = Tensor()
    t.data = array.ctypes.data
    t.dtype = DTYPES[array.dtype.type]
    t.rank = array.ndim
    for i, d in enumerate(array.shape):
        t.dims[i] = d
    return ctypes.byref(t)


def load(path):
    lib = ctypes.CDLL(path)
    P = ctypes.c_void_p
    lib.tokenloom_last_error_message.restype = ctypes.c_char_p
    for name, args in {
        "tokenloom_lookup": [P, P, P],
        "tokenloom_backward_dense": [P, P, P, ctypes.c_bool, ctypes.c_int64, ctypes.c_bool, ctypes.c_bool],
        "tokenloom_logits": [P, P, ctypes.c_double, P],
        "tokenloom_rope_cos_sin_hf": [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, P, P],
        "tokenloom_rope": [P, P, P, P, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                           ctypes.c_double, ctypes.c_size_t, P],
        "tokenloom_embedding_bag": [P, P, P, ctypes.c_bool, P, ctypes.c_int32, ctypes.c_bool,
                                    ctypes.c_int64, P, P],
        "tokenloom_embedding_bag_backward": [P, P, ctypes.c_bool, P, P, P, ctypes.c_int32,
                                             ctypes.c_bool, ctypes.c_int64, ctypes.c_bool, P,
                                             ctypes.c_bool],
        "tokenloom_adamw_step": [P, P, P, P, P, P, P, ctypes.c_bool, ctypes.c_int64],
    }.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ctypes.c_int
    return lib


def tensor(case, key):
    t = case["inputs"].get(key) if key in case["inputs"] else case["expected"][key]
    dtype = {"float64": np.float64, "float32": np.float32, "int64": np.int64}[t["dtype"]]
    return np.array(t["data"], dtype=dtype).reshape(t["shape"])


class Checks:
    def __init__(self):
        self.count = 0

    def __call__(self, condition, what):
        if not condition:
            raise AssertionError(what)
        self.count += 1


def main(path):
    lib = load(path)
    check = Checks()

    # Lookup and dense backward against PyTorch, with PyTorch's int64 ids, in float64.
    for name in ["emb_fwd_basic_f64", "emb_fwd_odd_batch_repeated_f64", "emb_backward_dense_f64"]:
        case = reference_case(name)
        weight, ids = tensor(case, "weight"), tensor(case, "ids")
        grad_output = tensor(case, "grad_output")
        out = np.zeros(ids.shape + (weight.shape[1],))
        check(lib.tokenloom_lookup(describe(weight), describe(ids), describe(out)) == OK, name)
        check(np.array_equal(out, tensor(case, "output")), f"{name}: lookup is exact")
        grad = np.full(weight.shape, np.nan)
        status = lib.tokenloom_backward_dense(describe(ids), describe(grad_output), describe(grad),
                                              False, 0, False, False)
        check(status == OK, f"{name}: backward")
        check(np.allclose(grad, tensor(case, "grad_weight"), rtol=0, atol=1e-12), f"{name}: grad")

    # A negative id: the status and the message.
    weight = np.zeros((4, 3), dtype=np.float32)
    ids = np.array([[0, 1], [2, -1]], dtype=np.int64)
    out = np.zeros((2, 2, 3), dtype=np.float32)
    check(lib.tokenloom_lookup(describe(weight), describe(ids), describe(out)) == TOKEN_OUT_OF_RANGE, "negative id")
    message = lib.tokenloom_last_error_message().decode()
    check(message == "token id -1 at batch 1, position 1 is outside vocab_size 4", message)

    # Tied logits against numpy, one row (decode) and many (GEMM).
    rng = np.random.default_rng(0)
    table = rng.standard_normal((300, 64)).astype(np.float32)
    for rows in (1, 40):
        hidden = rng.standard_normal((rows, 64)).astype(np.float32)
        logits = np.zeros((rows, 300), dtype=np.float32)
        check(lib.tokenloom_logits(describe(hidden), describe(table), 0.125, describe(logits)) == OK, "logits")
        want = 0.125 * (hidden.astype(np.float64) @ table.T.astype(np.float64))
        check(np.allclose(logits, want, rtol=1e-5, atol=1e-5), f"logits of {rows} rows")

    # RoPE with HuggingFace's own numbers: cos/sin from the config (default and YaRN),
    # q of shape (batch, heads, seq, head_dim) with explicit position ids, out of place.
    for name in ["rope_hf_default_f64", "rope_hf_yarn_f64", "rope_hf_offset_batch3_f64"]:
        case = reference_case(name)
        c = case["config"]
        config = json.dumps({
            "model_type": "llama", "hidden_size": c["head_dim"] * c["num_heads"],
            "head_dim": c["head_dim"], "num_attention_heads": c["num_heads"],
            "num_key_value_heads": c["num_kv_heads"],
            "max_position_embeddings": c["max_position_embeddings"],
            "rope_parameters": c["rope_parameters"],
        }).encode()
        q, position_ids = tensor(case, "q"), tensor(case, "position_ids").astype(np.uint32)
        rows = int(position_ids.max()) + 1
        half = c["head_dim"] // 2
        cos, sin = np.zeros((rows, half)), np.zeros((rows, half))
        status = lib.tokenloom_rope_cos_sin_hf(config, rows, 0, describe(cos), describe(sin))
        check(status == OK, f"{name}: cos/sin {lib.tokenloom_last_error_message()}")
        out = np.zeros_like(q)
        status = lib.tokenloom_rope(describe(q), describe(out), describe(cos), describe(sin), HALF_SPLIT,
                                    BATCH_HEADS_SEQ, FORWARD, 1.0, 0, describe(position_ids))
        check(status == OK, f"{name}: rope {lib.tokenloom_last_error_message()}")
        diff = np.abs(out - tensor(case, "q_embed")).max()
        check(diff <= case["tolerance"]["abs"], f"{name}: q_embed differs by {diff}")

    # EmbeddingBag against torch.embedding_bag's own numbers (every float64 case).
    golden = json.loads((ROOT / "tests" / "reference" / "generated" / "embedding_bag.json").read_text())
    for case in golden["cases"]:
        if case["dtype"] != "float64":
            continue
        name, mode = case["name"], {"sum": 0, "mean": 1, "max": 2}[case["mode"]]
        weight, ids = np.array(case["weight"]), np.array(case["ids"], dtype=np.int64)
        offsets = None if case["offsets"] is None else np.array(case["offsets"], dtype=np.int64)
        psw = None if case["per_sample_weights"] is None else np.array(case["per_sample_weights"])
        opt = lambda a: None if a is None else describe(a)
        padding = case["padding_idx"] is not None
        padding_idx = case["padding_idx"] or 0
        out = np.zeros(np.array(case["output"]).shape)
        max_indices = np.zeros(out.shape, dtype=np.int64) if mode == 2 else None
        status = lib.tokenloom_embedding_bag(describe(weight), describe(ids), opt(offsets),
                                             case["include_last_offset"], opt(psw), mode, padding,
                                             padding_idx, describe(out), opt(max_indices))
        check(status == OK, f"{name}: {lib.tokenloom_last_error_message()}")
        check(np.allclose(out, case["output"], rtol=0, atol=1e-12), f"{name}: output")
        grad = np.full(weight.shape, np.nan)
        status = lib.tokenloom_embedding_bag_backward(
            describe(ids), opt(offsets), case["include_last_offset"], opt(psw),
            describe(np.array(case["grad_out"])), opt(max_indices), mode, padding, padding_idx,
            case["scale_grad_by_freq"], describe(grad), False)
        check(status == OK, f"{name}: backward {lib.tokenloom_last_error_message()}")
        check(np.allclose(grad, case["grad_weight"], rtol=0, atol=1e-12), f"{name}: grad_weight")

    # Two AdamW steps with the moments in numpy arrays, against torch.optim.AdamW's update
    # written out in numpy.
    class AdamW(ctypes.Structure):
        _fields_ = [(f, ctypes.c_double) for f in ("lr", "beta1", "beta2", "eps", "weight_decay")]

    hyper = AdamW(0.01, 0.9, 0.999, 1e-8, 0.1)
    weight = rng.standard_normal((6, 4))
    want = weight.copy()
    m, v = np.zeros((6, 4), dtype=np.float32), np.zeros((6, 4), dtype=np.float32)
    m_ref, v_ref = np.zeros((6, 4)), np.zeros((6, 4))
    steps = ctypes.c_uint64(0)
    for t in (1, 2):
        grad = rng.standard_normal((6, 4))
        status = lib.tokenloom_adamw_step(describe(weight), describe(grad), None, describe(m), describe(v),
                                          ctypes.byref(steps), ctypes.byref(hyper), False, 0)
        check(status == OK, f"adamw step {t}: {lib.tokenloom_last_error_message()}")
        want -= hyper.lr * hyper.weight_decay * want
        m_ref = (0.9 * m_ref + 0.1 * grad).astype(np.float32).astype(np.float64)
        v_ref = (0.999 * v_ref + 0.001 * grad * grad).astype(np.float32).astype(np.float64)
        m_hat, v_hat = m_ref / (1 - 0.9 ** t), v_ref / (1 - 0.999 ** t)
        want -= hyper.lr * m_hat / (np.sqrt(v_hat) + hyper.eps)
    check(steps.value == 2, "the step count comes back")
    # (tokenloom steps with the f64 moments and stores them as f32; the model rounds first.)
    check(np.allclose(weight, want, rtol=0, atol=1e-8), f"adamw differs by {np.abs(weight - want).max()}")

    # Pointer errors: an output overlapping its input, a misaligned buffer.
    x = np.zeros((1, 2, 1, 4), dtype=np.float32)
    cos = np.ones((2, 2), dtype=np.float32)
    status = lib.tokenloom_rope(describe(x), describe(x), describe(cos), describe(cos), HALF_SPLIT,
                                BATCH_SEQ_HEADS, FORWARD, 1.0, 0, None)
    check(status == ALIASED, "aliased")
    raw = np.zeros(13, dtype=np.uint8)
    misaligned = Tensor()
    misaligned.data = raw.ctypes.data + 1
    misaligned.dtype = DTYPES[np.float32]
    misaligned.rank = 1
    misaligned.dims[0] = 2
    status = lib.tokenloom_lookup(ctypes.byref(misaligned), describe(ids), describe(out))
    check(status == MISALIGNED, "misaligned")

    print(f"python ctypes: {check.count} checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
