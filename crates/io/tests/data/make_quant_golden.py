"""Golden vectors for tokenloom's GGUF dequantizers, written by gguf-py itself.

For every block-quantized type tokenloom decodes, a GGUF file gets a tensor of random
blocks (random bytes, with every f16 scale field set to a sane random value) and a tensor
of that type's quantization of random floats (gguf-py's own quantizer, for the types it
can quantize), each beside `<name>.dequantized`: gguf-py's `gguf.quants.dequantize` of
it, as F32. The Rust test (crates/io/tests/quant_golden.rs) decodes every quantized
tensor and compares bit for bit.

Run: python3 crates/io/tests/data/make_quant_golden.py [OUT.gguf]
(default: crates/io/tests/data/quant_golden.gguf beside this script).
"""

import pathlib
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.quants import dequantize, quantize

# Byte offsets of the f16 scale fields within one block, per type.
SCALES = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
    Q.IQ4_NL: [0], Q.IQ4_XS: [0], Q.TQ2_0: [64],
    # MXFP4's E8M0 and NVFP4's UE4M3 scales are single bytes: every random byte is a
    # scale (the extremes included).
    Q.TQ1_0: [52], Q.MXFP4: [], Q.NVFP4: [],
    # The codebook formats: the others lead with d; IQ1_M's is spread over the top
    # nibbles of its four scale words (set in `random_blocks`).
    Q.IQ2_XXS: [0], Q.IQ2_XS: [0], Q.IQ2_S: [0], Q.IQ3_XXS: [0], Q.IQ3_S: [0], Q.IQ1_S: [0],
    Q.IQ1_M: [],
}
# gguf-py quantizes these itself.
QUANTIZABLE = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.TQ2_0, Q.TQ1_0, Q.MXFP4]
BLOCK = {Q.Q4_0: (32, 18), Q.Q4_1: (32, 20), Q.Q5_0: (32, 22), Q.Q5_1: (32, 24), Q.Q8_0: (32, 34),
         Q.Q2_K: (256, 84), Q.Q3_K: (256, 110), Q.Q4_K: (256, 144), Q.Q5_K: (256, 176),
         Q.Q6_K: (256, 210), Q.IQ4_NL: (32, 18), Q.IQ4_XS: (256, 136), Q.TQ2_0: (256, 66),
         Q.TQ1_0: (256, 54), Q.MXFP4: (32, 17), Q.NVFP4: (64, 36),
         Q.IQ2_XXS: (256, 66), Q.IQ2_XS: (256, 74), Q.IQ2_S: (256, 82), Q.IQ3_XXS: (256, 98),
         Q.IQ3_S: (256, 110), Q.IQ1_S: (256, 50), Q.IQ1_M: (256, 56)}


def random_blocks(rng, qtype, rows, blocks_per_row):
    size = BLOCK[qtype][1]
    data = rng.integers(0, 256, size=(rows * blocks_per_row, size), dtype=np.uint8)
    for at in SCALES[qtype]:
        # Sane scales: |d| in [1e-3, 0.1], either sign.
        d = (rng.uniform(1e-3, 0.1, size=rows * blocks_per_row) * rng.choice([-1, 1], size=rows * blocks_per_row))
        data[:, at:at + 2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    if qtype == Q.IQ1_M:
        # The f16 d is the top nibbles of the four scale words (bytes 48..56), first word
        # lowest: write a sane one there, keeping the 3-bit scales below.
        n = rows * blocks_per_row
        d = (rng.uniform(1e-3, 0.1, size=n) * rng.choice([-1, 1], size=n)).astype(np.float16).view(np.uint16)
        for i in range(4):
            nibble = ((d >> (4 * i)) & 0xF).astype(np.uint8)
            data[:, 49 + 2 * i] = (data[:, 49 + 2 * i] & 0x0F) | (nibble << 4)
    return data.reshape(rows, blocks_per_row * size)


def main(out):
    rng = np.random.default_rng(20261202)
    writer = GGUFWriter(str(out), arch="tokenloom-quant-golden")
    for qtype, (block_elems, _) in BLOCK.items():
        rows, blocks_per_row = 3, 2
        cols = block_elems * blocks_per_row
        cases = [("random", random_blocks(rng, qtype, rows, blocks_per_row))]
        if qtype in QUANTIZABLE:
            floats = rng.standard_normal((rows, cols)).astype(np.float32)
            cases.append(("quantized", quantize(floats, qtype)))
        for kind, blocks in cases:
            name = f"{qtype.name}.{kind}"
            writer.add_tensor(name, blocks, raw_shape=blocks.shape, raw_dtype=qtype)
            values = dequantize(blocks, qtype).astype(np.float32)
            assert values.shape == (rows, cols), (name, values.shape)
            writer.add_tensor(f"{name}.dequantized", values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("quant_golden.gguf"))
