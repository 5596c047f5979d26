//! [`GgmlType`]: the element types of GGUF tensors, by their GGML type id.

/// A GGML tensor type, by its GGUF type id (ggml.h's `ggml_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit float (id 0).
    F32,
    /// 16-bit float (id 1).
    F16,
    /// bfloat16 (id 30).
    BF16,
    /// 64-bit float (id 28).
    F64,
    /// 4-bit blocks of 32 with an f16 scale (id 2, 18 bytes a block).
    Q4_0,
    /// 4-bit blocks of 32 with an f16 scale and min (id 3, 20 bytes).
    Q4_1,
    /// 5-bit blocks of 32 (id 6, 22 bytes).
    Q5_0,
    /// 5-bit blocks of 32 with a min (id 7, 24 bytes).
    Q5_1,
    /// 8-bit blocks of 32 with an f16 scale (id 8, 34 bytes).
    Q8_0,
    /// 2-bit super-blocks of 256 (id 10, 84 bytes).
    Q2K,
    /// 3-bit super-blocks of 256 (id 11, 110 bytes).
    Q3K,
    /// 4-bit super-blocks of 256 (id 12, 144 bytes).
    Q4K,
    /// 5-bit super-blocks of 256 (id 13, 176 bytes).
    Q5K,
    /// 6-bit super-blocks of 256 (id 14, 210 bytes).
    Q6K,
    /// 4-bit non-linear blocks of 32 (id 20, 18 bytes).
    IQ4NL,
    /// 4-bit non-linear super-blocks of 256 with 6-bit scales (id 23, 136 bytes).
    IQ4XS,
    /// Ternary super-blocks of 256, 2 bits a value (−1, 0, 1, and 2 from a stray code)
    /// and an f16 scale (id 35, 66 bytes): TriLM / BitNet b1.58 tables.
    TQ2_0,
    /// Ternary super-blocks of 256, five base-3 digits a byte (1.6 bits a value), and an
    /// f16 scale (id 34, 54 bytes).
    TQ1_0,
    /// OCP microscaling FP4: blocks of 32 E2M1 values with an E8M0 power-of-two scale
    /// (id 39, 17 bytes): gpt-oss's expert weights.
    MXFP4,
    /// NVIDIA's FP4: blocks of 64 E2M1 values in four groups of 16, each with an
    /// unsigned E4M3 scale (id 40, 36 bytes).
    NVFP4,
    /// 2.06-bit codebook super-blocks of 256: 8-value grid entries with sign bits (id 16, 66 bytes).
    IQ2XXS,
    /// 2.31-bit codebook super-blocks of 256 with 4-bit group scales (id 17, 74 bytes).
    IQ2XS,
    /// 2.5-bit codebook super-blocks of 256, explicit sign bytes (id 22, 82 bytes).
    IQ2S,
    /// 3.06-bit codebook super-blocks of 256: 4-value grid entries with sign bits (id 18, 98 bytes).
    IQ3XXS,
    /// 3.44-bit codebook super-blocks of 256 (id 21, 110 bytes).
    IQ3S,
    /// 1.56-bit codebook super-blocks of 256: −1/0/1 grid entries shifted by ±1/8 (id 19, 50 bytes).
    IQ1S,
    /// 1.75-bit codebook super-blocks of 256, the f16 scale split over the scale words (id 29, 56 bytes).
    IQ1M,
    /// 8-bit signed integers (id 24).
    I8,
    /// 16-bit signed integers (id 25).
    I16,
    /// 32-bit signed integers (id 26).
    I32,
    /// 64-bit signed integers (id 27).
    I64,
    /// Any other type id (Q8_1, Q8_K, …):
    /// listed, never decoded.
    Other(u32),
}

impl GgmlType {
    /// The type of a GGUF type id.
    #[must_use]
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            10 => GgmlType::Q2K,
            11 => GgmlType::Q3K,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            20 => GgmlType::IQ4NL,
            23 => GgmlType::IQ4XS,
            35 => GgmlType::TQ2_0,
            34 => GgmlType::TQ1_0,
            39 => GgmlType::MXFP4,
            40 => GgmlType::NVFP4,
            24 => GgmlType::I8,
            25 => GgmlType::I16,
            26 => GgmlType::I32,
            27 => GgmlType::I64,
            16 => GgmlType::IQ2XXS,
            17 => GgmlType::IQ2XS,
            22 => GgmlType::IQ2S,
            18 => GgmlType::IQ3XXS,
            21 => GgmlType::IQ3S,
            19 => GgmlType::IQ1S,
            29 => GgmlType::IQ1M,
            28 => GgmlType::F64,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// The GGUF type id.
    #[must_use]
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2K => 10,
            GgmlType::Q3K => 11,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::IQ4NL => 20,
            GgmlType::IQ4XS => 23,
            GgmlType::TQ2_0 => 35,
            GgmlType::TQ1_0 => 34,
            GgmlType::MXFP4 => 39,
            GgmlType::NVFP4 => 40,
            GgmlType::I8 => 24,
            GgmlType::I16 => 25,
            GgmlType::I32 => 26,
            GgmlType::I64 => 27,
            GgmlType::IQ2XXS => 16,
            GgmlType::IQ2XS => 17,
            GgmlType::IQ2S => 22,
            GgmlType::IQ3XXS => 18,
            GgmlType::IQ3S => 21,
            GgmlType::IQ1S => 19,
            GgmlType::IQ1M => 29,
            GgmlType::F64 => 28,
            GgmlType::BF16 => 30,
            GgmlType::Other(id) => id,
        }
    }

    /// `(elements per block, bytes per block)`, for every type tokenloom can read (and a
    /// few it can only size: Q8_1, Q8_K): the one table of block sizes, which the
    /// quantized codecs read at compile time.
    #[must_use]
    pub const fn block_layout(self) -> Option<(u64, u64)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::F64 | GgmlType::I64 => (1, 8),
            GgmlType::I8 => (1, 1),
            GgmlType::I16 => (1, 2),
            GgmlType::I32 => (1, 4),
            GgmlType::Q4_0 | GgmlType::IQ4NL => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Other(9) => (32, 36),
            GgmlType::Q2K => (256, 84),
            GgmlType::Q3K => (256, 110),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q5K => (256, 176),
            GgmlType::Q6K => (256, 210),
            GgmlType::Other(15) => (256, 292),
            GgmlType::IQ4XS => (256, 136),
            GgmlType::TQ2_0 => (256, 66),
            GgmlType::TQ1_0 => (256, 54),
            GgmlType::MXFP4 => (32, 17),
            GgmlType::NVFP4 => (64, 36),
            GgmlType::IQ2XXS => (256, 66),
            GgmlType::IQ2XS => (256, 74),
            GgmlType::IQ2S => (256, 82),
            GgmlType::IQ3XXS => (256, 98),
            GgmlType::IQ3S => (256, 110),
            GgmlType::IQ1S => (256, 50),
            GgmlType::IQ1M => (256, 56),
            GgmlType::Other(_) => return None,
        })
    }

    /// Whether values are stored in quantized blocks (dequantized on read).
    #[must_use]
    pub fn is_quantized(self) -> bool {
        !matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::F64
                | GgmlType::I8
                | GgmlType::I16
                | GgmlType::I32
                | GgmlType::I64
        )
    }

    /// Whether tokenloom can decode it.
    #[must_use]
    pub fn is_supported(self) -> bool {
        !matches!(self, GgmlType::Other(_))
    }

    /// The name llama.cpp uses, e.g. `Q8_0`, `Q4_K`.
    #[must_use]
    pub fn name(self) -> String {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::F64 => "F64",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q2K => "Q2_K",
            GgmlType::Q3K => "Q3_K",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
            GgmlType::IQ4NL => "IQ4_NL",
            GgmlType::IQ4XS => "IQ4_XS",
            GgmlType::TQ2_0 => "TQ2_0",
            GgmlType::TQ1_0 => "TQ1_0",
            GgmlType::MXFP4 => "MXFP4",
            GgmlType::NVFP4 => "NVFP4",
            GgmlType::I8 => "I8",
            GgmlType::I16 => "I16",
            GgmlType::I32 => "I32",
            GgmlType::I64 => "I64",
            GgmlType::IQ2XXS => "IQ2_XXS",
            GgmlType::IQ2XS => "IQ2_XS",
            GgmlType::IQ2S => "IQ2_S",
            GgmlType::IQ3XXS => "IQ3_XXS",
            GgmlType::IQ3S => "IQ3_S",
            GgmlType::IQ1S => "IQ1_S",
            GgmlType::IQ1M => "IQ1_M",
            GgmlType::Other(9) => "Q8_1",
            GgmlType::Other(15) => "Q8_K",
            GgmlType::Other(id) => return format!("type {id}"),
        }
        .to_owned()
    }
}
