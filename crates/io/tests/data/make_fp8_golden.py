"""Golden values for tokenloom's FP8 safetensors reading, from ml_dtypes (the reference
float8 types of JAX; PyTorch's `float8_e4m3fn`, `float8_e5m2` and `float8_e8m0fnu` convert
to float32 to the same, exact values).

Writes `fp8_golden.safetensors` beside this script:
- `all.{e4m3,e5m2,e8m0}`: the 256 bytes as that dtype, shape (16, 16), and
  `….f32`: their float32 values;
- `blocked.weight` (F8_E4M3, (10, 20)) with `blocked.weight_scale_inv` (F32, (3, 3): blocks
  of (4, 8), partial at the edges), `blocked.f32` = f32(weight) * scale per block, and
  `blocked.bf16` = that product rounded to bfloat16 (DeepSeek-V3's `weight_dequant`).

Run: python3 crates/io/tests/data/make_fp8_golden.py   (needs numpy, ml_dtypes)
"""

import json
import pathlib
import struct

import ml_dtypes
import numpy as np

NAMES = {ml_dtypes.float8_e4m3fn: "F8_E4M3", ml_dtypes.float8_e5m2: "F8_E5M2",
         ml_dtypes.float8_e8m0fnu: "F8_E8M0", np.float32: "F32", ml_dtypes.bfloat16: "BF16"}


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors:
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": NAMES[array.dtype.type], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    rng = np.random.default_rng(20261204)
    tensors = []
    every = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for suffix, ty in [("e4m3", ml_dtypes.float8_e4m3fn), ("e5m2", ml_dtypes.float8_e5m2),
                       ("e8m0", ml_dtypes.float8_e8m0fnu)]:
        tensors.append((f"all.{suffix}", every.view(ty)))
        tensors.append((f"all.{suffix}.f32", every.view(ty).astype(np.float32)))
    weight = rng.normal(0, 100, size=(10, 20)).astype(ml_dtypes.float8_e4m3fn)
    scale_inv = rng.uniform(1e-4, 1e-2, size=(3, 3)).astype(np.float32)
    block = (4, 8)
    full = np.repeat(np.repeat(scale_inv, block[0], axis=0), block[1], axis=1)[:10, :20]
    product = weight.astype(np.float32) * full
    tensors += [("blocked.weight", weight), ("blocked.weight_scale_inv", scale_inv),
                ("blocked.f32", product), ("blocked.bf16", product.astype(ml_dtypes.bfloat16))]
    write(pathlib.Path(__file__).with_name("fp8_golden.safetensors"), tensors)


if __name__ == "__main__":
    main()
