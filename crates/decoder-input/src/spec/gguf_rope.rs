//! How each GGUF architecture (`general.architecture`) applies RoPE: a table that mirrors
//! llama.cpp's `llama_model_rope_type()`.
//!
//! Source: llama.cpp `src/llama-model.cpp`, `llama_model_rope_type()` (ggml-org/llama.cpp
//! at commit 00342301d01a), with the architecture names of `src/llama-arch.cpp`
//! (`LLM_ARCH_NAMES`). llama.cpp's converter stores q/k projection weights so that:
//!
//! - `NORM` architectures rotate consecutive pairs `(x[2i], x[2i+1])` — tokenloom's
//!   [`RopeLayout::Interleaved`] (LLaMA's q/k are permuted into this order on conversion);
//! - `NEOX` architectures rotate `(x[i], x[i + rotary_dim/2])` — tokenloom's
//!   [`RopeLayout::HalfSplit`] (Qwen, Phi, Gemma, Falcon, GPT-NeoX, …);
//! - `MROPE` (multimodal, sectioned) architectures are not supported by tokenloom;
//! - `NONE` architectures have no rotary embedding (GPT-2, BLOOM, MPT, Mamba, T5, …).
//!
//! An architecture missing from the table is an error for the caller to resolve, never a
//! default. The model spec (`spec/gguf.rs`) reads it for every GGUF file.

use tokenloom_positions::RopeLayout;

/// llama.cpp's `llama_rope_type` for an architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GgufRopeType {
    /// `LLAMA_ROPE_TYPE_NONE`: the architecture has no rotary embedding.
    None,
    /// `LLAMA_ROPE_TYPE_NORM`: consecutive pairs, [`RopeLayout::Interleaved`].
    Norm,
    /// `LLAMA_ROPE_TYPE_NEOX`: pairs `rotary_dim/2` apart, [`RopeLayout::HalfSplit`].
    Neox,
    /// `LLAMA_ROPE_TYPE_MROPE` (and its variants): multimodal sectioned RoPE, which
    /// tokenloom does not implement.
    MultimodalRope,
}

impl GgufRopeType {
    /// The tokenloom layout of a rotary type (`None` for [`GgufRopeType::None`] and
    /// [`GgufRopeType::MultimodalRope`]).
    #[must_use]
    pub fn layout(self) -> Option<RopeLayout> {
        match self {
            GgufRopeType::Norm => Some(RopeLayout::Interleaved),
            GgufRopeType::Neox => Some(RopeLayout::HalfSplit),
            GgufRopeType::None | GgufRopeType::MultimodalRope => None,
        }
    }

    /// llama.cpp's name of the type.
    #[must_use]
    pub fn llama_cpp_name(self) -> &'static str {
        match self {
            GgufRopeType::None => "NONE",
            GgufRopeType::Norm => "NORM",
            GgufRopeType::Neox => "NEOX",
            GgufRopeType::MultimodalRope => "MROPE",
        }
    }
}

/// Architectures without RoPE.
const NONE: &[&str] = &[
    "clip",
    "gpt2",
    "gptj",
    "mpt",
    "refact",
    "bloom",
    "mamba",
    "mamba2",
    "jamba",
    "jina-bert-v2",
    "t5",
    "t5encoder",
    "jais",
    "rwkv6",
    "rwkv6qwen2",
    "rwkv7",
    "arwkv7",
    "wavtokenizer-dec",
    "nemotron_h",
];

/// Architectures with llama.cpp's "normal" RoPE: consecutive pairs.
const NORM: &[&str] = &[
    "llama",
    "llada",
    "llama4",
    "deci",
    "baichuan",
    "starcoder",
    "internlm2",
    "minicpm",
    "xverse",
    "command-r",
    "cohere2",
    "olmo",
    "arctic",
    "deepseek",
    "deepseek2",
    "plm",
    "chatglm",
    "glm4",
    "granite",
    "granitemoe",
    "granitehybrid",
    "chameleon",
    "bailingmoe",
    "neo-bert",
    "smollm3",
    "arcee",
    "ernie4_5",
    "ernie4_5-moe",
];

/// Architectures with NeoX RoPE: pairs `rotary_dim/2` apart.
const NEOX: &[&str] = &[
    "falcon",
    "falcon-h1",
    "grok",
    "dbrx",
    "bert",
    "jina-bert-v3",
    "nomic-bert",
    "nomic-bert-moe",
    "stablelm",
    "bitnet",
    "qwen",
    "qwen2",
    "dream",
    "qwen2moe",
    "qwen3",
    "qwen3moe",
    "qwen3next",
    "llada-moe",
    "olmo2",
    "olmoe",
    "phi2",
    "phi3",
    "phimoe",
    "plamo",
    "plamo2",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3n",
    "gemma-embedding",
    "starcoder2",
    "openelm",
    "gptneox",
    "codeshell",
    "orion",
    "nemotron",
    "exaone",
    "exaone4",
    "minicpm3",
    "bailingmoe2",
    "dots1",
    "hunyuan-moe",
    "gpt-oss",
    "hunyuan-dense",
    "lfm2",
    "lfm2moe",
    "smallthinker",
    "glm4moe",
    "seed_oss",
    "grovemoe",
    "apertus",
];

/// Multimodal sectioned RoPE (`MROPE`, and the later `IMROPE` of the Qwen3-VL family).
const MULTIMODAL: &[&str] = &["qwen2vl", "qwen3vl", "qwen3vlmoe"];

/// The RoPE type of a GGUF architecture name, or `None` when tokenloom's table does not
/// list it.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::{GgufRopeType, gguf_rope_type};
/// use tokenloom_positions::RopeLayout;
///
/// assert_eq!(gguf_rope_type("llama").and_then(GgufRopeType::layout), Some(RopeLayout::Interleaved));
/// assert_eq!(gguf_rope_type("gemma3").and_then(GgufRopeType::layout), Some(RopeLayout::HalfSplit));
/// assert_eq!(gguf_rope_type("qwen2vl"), Some(GgufRopeType::MultimodalRope));
/// assert_eq!(gguf_rope_type("my-new-arch"), None);
/// ```
#[must_use]
pub fn gguf_rope_type(architecture: &str) -> Option<GgufRopeType> {
    gguf_rope_entry(architecture).map(|(_, rope_type)| rope_type)
}

/// The table's own (static) spelling of `architecture`, with its RoPE type.
pub(crate) fn gguf_rope_entry(architecture: &str) -> Option<(&'static str, GgufRopeType)> {
    [
        (NONE, GgufRopeType::None),
        (NORM, GgufRopeType::Norm),
        (NEOX, GgufRopeType::Neox),
        (MULTIMODAL, GgufRopeType::MultimodalRope),
    ]
    .into_iter()
    .find_map(|(names, rope_type)| {
        names
            .iter()
            .find(|&&n| n == architecture)
            .map(|&n| (n, rope_type))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_one_list() {
        let all: Vec<&str> = [NONE, NORM, NEOX, MULTIMODAL].concat();
        for name in &all {
            assert_eq!(
                all.iter().filter(|n| *n == name).count(),
                1,
                "{name} is listed twice"
            );
        }
    }
}
