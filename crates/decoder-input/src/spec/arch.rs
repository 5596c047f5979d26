//! The architectures the model spec knows, and one `match` per question about them, as
//! llama.cpp's `llama-model.cpp` keeps one switch per hyper-parameter: a new
//! architecture is a new variant, and the compiler lists every question it must answer.

use tokenloom_positions::RopeLayout;

use super::{TensorNames, names};

/// The families whose input side tokenloom builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelFamily {
    /// A decoder with rotary positions inside attention (LLaMA, Mistral, Qwen, Phi,
    /// Gemma, DeepSeek, …): token embeddings (possibly scaled), RoPE per layer.
    RopeDecoder,
    /// A BERT-style encoder: token + learned absolute position + token-type embeddings,
    /// no language-model head (the embeddings' LayerNorm is the model's first op and is
    /// left to the caller).
    BertEncoder,
    /// A GPT-2-style decoder: token + learned absolute position embeddings, head tied to
    /// the token table.
    Gpt2Decoder,
}

impl ModelFamily {
    /// A short name: `rope-decoder`, `bert-encoder` or `gpt2-decoder`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ModelFamily::RopeDecoder => "rope-decoder",
            ModelFamily::BertEncoder => "bert-encoder",
            ModelFamily::Gpt2Decoder => "gpt2-decoder",
        }
    }
}

/// An architecture the model spec knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Architecture {
    /// LLaMA 1/2/3 (`llama`; GGUF `llama`), and Meta's `params.json`.
    Llama,
    /// Mistral (`mistral`).
    Mistral,
    /// Mixtral (`mixtral`).
    Mixtral,
    /// Qwen2 / Qwen2.5 (`qwen2`).
    Qwen2,
    /// Qwen2-MoE (`qwen2_moe`).
    Qwen2Moe,
    /// Qwen3 (`qwen3`).
    Qwen3,
    /// Qwen3-MoE (`qwen3_moe`).
    Qwen3Moe,
    /// Qwen2-VL / Qwen2.5-VL's language model (`qwen2_vl`, `qwen2_5_vl` and their
    /// `_text` configs): M-RoPE, which equals 1-D RoPE for text-only position ids.
    Qwen2Vl,
    /// Gemma (`gemma`): embeddings × √n_embd.
    Gemma,
    /// Gemma 2 (`gemma2`): embeddings × √n_embd, final logit softcapping.
    Gemma2,
    /// Gemma 3 (`gemma3_text`, and `gemma3` with its `text_config`): embeddings ×
    /// √n_embd, local and global RoPE bases by layer type.
    Gemma3,
    /// Phi-3 / Phi-3.5 / Phi-4-mini (`phi3`): LongRoPE, partial rotary.
    Phi3,
    /// Phi-1/1.5/2 (`phi`): partial rotary, head with a bias.
    Phi,
    /// GPT-NeoX / Pythia (`gpt_neox`): partial rotary (`rotary_pct`).
    GptNeoX,
    /// GPT-J (`gptj`): interleaved pairs over `rotary_dim`, head with a bias.
    GptJ,
    /// StableLM (`stablelm`): partial rotary.
    StableLm,
    /// OLMo (`olmo`).
    Olmo,
    /// OLMo 2 (`olmo2`).
    Olmo2,
    /// Granite (`granite`): embedding multiplier, logits divided by `logits_scaling`.
    Granite,
    /// Command-R (`cohere`; GGUF `command-r`): interleaved pairs, logits × `logit_scale`.
    Cohere,
    /// DeepSeek-V2 (`deepseek_v2`): MLA, rotary over `qk_rope_head_dim`, interleaved.
    DeepseekV2,
    /// DeepSeek-V3 (`deepseek_v3`): MLA, rotary over `qk_rope_head_dim`,
    /// `rope_interleave`.
    DeepseekV3,
    /// Llama 4's language model (`llama4_text`, and `llama4` with its `text_config`):
    /// interleaved pairs, NoPE layers with attention-temperature tuning.
    Llama4,
    /// SmolLM3 (`smollm3`): NoPE layers (`no_rope_layers`).
    SmolLm3,
    /// StarCoder2 (`starcoder2`).
    Starcoder2,
    /// Falcon with rotary positions (`falcon`, `alibi: false`).
    Falcon,
    /// EXAONE 4 (`exaone4`): RoPE on sliding-window layers only (when there are ones).
    Exaone4,
    /// BERT (`bert`): word + learned position + token-type embeddings, LayerNorm.
    Bert,
    /// RoBERTa (`roberta`): as BERT, positions read `padding_idx + 1` rows further.
    Roberta,
    /// ModernBERT (`modernbert`): token embeddings and LayerNorm, RoPE with global and
    /// local bases by layer type, a tied decoder head with a bias.
    ModernBert,
    /// GPT-2 (`gpt2`).
    Gpt2,
    /// A GGUF architecture tokenloom knows only through llama.cpp's RoPE table and the
    /// file's own metadata (`general.architecture`, e.g. `minicpm3`): no embedding or
    /// logit transform beyond what the metadata states.
    GgufGeneric(&'static str),
}

impl Architecture {
    /// The architecture of a HuggingFace `model_type`.
    #[must_use]
    pub fn from_hf(model_type: &str) -> Option<Self> {
        use Architecture as A;
        Some(match model_type {
            "llama" => A::Llama,
            "mistral" => A::Mistral,
            "mixtral" => A::Mixtral,
            "qwen2" => A::Qwen2,
            "qwen2_moe" => A::Qwen2Moe,
            "qwen3" => A::Qwen3,
            "qwen3_moe" => A::Qwen3Moe,
            "qwen2_vl" | "qwen2_vl_text" | "qwen2_5_vl" | "qwen2_5_vl_text" => A::Qwen2Vl,
            "gemma" => A::Gemma,
            "gemma2" => A::Gemma2,
            "gemma3" | "gemma3_text" => A::Gemma3,
            "phi3" => A::Phi3,
            "phi" => A::Phi,
            "gpt_neox" => A::GptNeoX,
            "gptj" => A::GptJ,
            "stablelm" => A::StableLm,
            "olmo" => A::Olmo,
            "olmo2" => A::Olmo2,
            "granite" => A::Granite,
            "cohere" => A::Cohere,
            "deepseek_v2" => A::DeepseekV2,
            "deepseek_v3" => A::DeepseekV3,
            "llama4" | "llama4_text" => A::Llama4,
            "smollm3" => A::SmolLm3,
            "starcoder2" => A::Starcoder2,
            "falcon" => A::Falcon,
            "exaone4" => A::Exaone4,
            "bert" => A::Bert,
            "roberta" => A::Roberta,
            "modernbert" => A::ModernBert,
            "gpt2" => A::Gpt2,
            _ => return None,
        })
    }

    /// The `model_type` of a HuggingFace class name (`LlamaForCausalLM` → `llama`), for
    /// configs without a `model_type`.
    #[must_use]
    pub fn hf_model_type_of_class(class: &str) -> Option<&'static str> {
        // Longer prefixes first: `Qwen2Moe` before `Qwen2`, `Gemma3` before `Gemma`.
        const CLASSES: &[(&str, &str)] = &[
            ("Qwen2MoeFor", "qwen2_moe"),
            ("Qwen3MoeFor", "qwen3_moe"),
            ("Qwen2VLFor", "qwen2_vl"),
            ("Qwen2_5_VLFor", "qwen2_5_vl"),
            ("Qwen2For", "qwen2"),
            ("Qwen3For", "qwen3"),
            ("Gemma3ForCausalLM", "gemma3_text"),
            ("Gemma3ForConditionalGeneration", "gemma3"),
            ("Gemma2For", "gemma2"),
            ("GemmaFor", "gemma"),
            ("LlamaFor", "llama"),
            ("MistralFor", "mistral"),
            ("MixtralFor", "mixtral"),
            ("Phi3For", "phi3"),
            ("PhiFor", "phi"),
            ("GPTNeoXFor", "gpt_neox"),
            ("GPTJFor", "gptj"),
            ("StableLmFor", "stablelm"),
            ("Olmo2For", "olmo2"),
            ("OlmoFor", "olmo"),
            ("GraniteFor", "granite"),
            ("CohereFor", "cohere"),
            ("DeepseekV2For", "deepseek_v2"),
            ("DeepseekV3For", "deepseek_v3"),
            ("SmolLM3For", "smollm3"),
            ("Starcoder2For", "starcoder2"),
            ("FalconFor", "falcon"),
            ("Exaone4For", "exaone4"),
            ("ModernBert", "modernbert"),
            ("Roberta", "roberta"),
            ("Bert", "bert"),
            ("GPT2", "gpt2"),
        ];
        CLASSES
            .iter()
            .find(|(prefix, _)| class.starts_with(prefix))
            .map(|(_, t)| *t)
    }

    /// The architecture of a GGUF `general.architecture` the spec knows by name.
    #[must_use]
    pub fn from_gguf(name: &str) -> Option<Self> {
        use Architecture as A;
        Some(match name {
            "llama" => A::Llama,
            "qwen2" => A::Qwen2,
            "qwen2moe" => A::Qwen2Moe,
            "qwen3" => A::Qwen3,
            "qwen3moe" => A::Qwen3Moe,
            "gemma" => A::Gemma,
            "gemma2" => A::Gemma2,
            "gemma3" => A::Gemma3,
            "phi3" => A::Phi3,
            "phi2" => A::Phi,
            "gptneox" => A::GptNeoX,
            "stablelm" => A::StableLm,
            "olmo" => A::Olmo,
            "olmo2" => A::Olmo2,
            "granite" => A::Granite,
            "command-r" => A::Cohere,
            "deepseek2" => A::DeepseekV2,
            "llama4" => A::Llama4,
            "smollm3" => A::SmolLm3,
            "starcoder2" => A::Starcoder2,
            "falcon" => A::Falcon,
            "exaone4" => A::Exaone4,
            "bert" => A::Bert,
            "gpt2" => A::Gpt2,
            _ => return None,
        })
    }

    /// The name for messages: the HuggingFace `model_type` (the GGUF name for
    /// [`Architecture::GgufGeneric`]).
    #[must_use]
    pub fn name(self) -> &'static str {
        use Architecture as A;
        match self {
            A::Llama => "llama",
            A::Mistral => "mistral",
            A::Mixtral => "mixtral",
            A::Qwen2 => "qwen2",
            A::Qwen2Moe => "qwen2_moe",
            A::Qwen3 => "qwen3",
            A::Qwen3Moe => "qwen3_moe",
            A::Qwen2Vl => "qwen2_vl",
            A::Gemma => "gemma",
            A::Gemma2 => "gemma2",
            A::Gemma3 => "gemma3",
            A::Phi3 => "phi3",
            A::Phi => "phi",
            A::GptNeoX => "gpt_neox",
            A::GptJ => "gptj",
            A::StableLm => "stablelm",
            A::Olmo => "olmo",
            A::Olmo2 => "olmo2",
            A::Granite => "granite",
            A::Cohere => "cohere",
            A::DeepseekV2 => "deepseek_v2",
            A::DeepseekV3 => "deepseek_v3",
            A::Llama4 => "llama4",
            A::SmolLm3 => "smollm3",
            A::Starcoder2 => "starcoder2",
            A::Falcon => "falcon",
            A::Exaone4 => "exaone4",
            A::Bert => "bert",
            A::Roberta => "roberta",
            A::ModernBert => "modernbert",
            A::Gpt2 => "gpt2",
            A::GgufGeneric(name) => name,
        }
    }

    /// The family.
    #[must_use]
    pub fn family(self) -> ModelFamily {
        match self {
            Architecture::Bert | Architecture::Roberta => ModelFamily::BertEncoder,
            Architecture::Gpt2 => ModelFamily::Gpt2Decoder,
            _ => ModelFamily::RopeDecoder,
        }
    }

    /// `tie_word_embeddings` when the config does not say (the transformers 5 config
    /// class's default).
    #[must_use]
    pub fn hf_tie_default(self) -> bool {
        use Architecture as A;
        matches!(
            self,
            A::Gemma
                | A::Gemma2
                | A::Gemma3
                | A::Cohere
                | A::SmolLm3
                | A::Starcoder2
                | A::Falcon
                | A::Bert
                | A::Roberta
                | A::ModernBert
                | A::Gpt2
        )
    }

    /// `rope_theta` when the config does not say (the config class's default).
    #[must_use]
    pub fn hf_default_theta(self) -> f64 {
        use Architecture as A;
        match self {
            A::Mixtral | A::Qwen2Vl | A::Gemma3 => 1_000_000.0,
            A::ModernBert => 160_000.0,
            A::Cohere | A::Llama4 => 500_000.0,
            A::SmolLm3 => 2_000_000.0,
            _ => 10_000.0,
        }
    }

    /// Which elements of a head the HuggingFace modeling code rotates together.
    #[must_use]
    pub fn hf_layout(self) -> RopeLayout {
        use Architecture as A;
        match self {
            // Cohere's own rotate_half pairs (x[2i], x[2i+1]); GPT-J's
            // rotate_every_two; DeepSeek-V2's and Llama 4's complex products.
            A::Cohere | A::GptJ | A::DeepseekV2 | A::Llama4 => RopeLayout::Interleaved,
            _ => RopeLayout::HalfSplit,
        }
    }

    /// Whether transformers' modeling code holds the scaled embeddings (Gemma's
    /// `ScaledWordEmbedding`: × √hidden_size).
    #[must_use]
    pub fn scales_embeddings_by_sqrt_n_embd(self) -> bool {
        matches!(
            self,
            Architecture::Gemma | Architecture::Gemma2 | Architecture::Gemma3
        )
    }

    /// The tensor names of a HuggingFace checkpoint (with and without the model prefix)
    /// and, after them, of a GGUF file.
    #[must_use]
    pub fn tensor_names(self) -> TensorNames {
        use Architecture as A;
        const GGUF_EMBD: &str = "token_embd.weight";
        const GGUF_HEAD: &str = "output.weight";
        const GGUF_HEAD_BIAS: &str = "output.bias";
        let decoder = |embedding: &[&str], head: &[&str], head_bias: &[&str]| TensorNames {
            embedding: names(embedding),
            head: names(head),
            head_bias: names(head_bias),
            positions: Vec::new(),
            token_types: Vec::new(),
            embedding_norm_weight: Vec::new(),
            embedding_norm_bias: Vec::new(),
        };
        // BERT and RoBERTa, under a model prefix or none, and GGUF's names.
        let bert = |prefix: &str| {
            let both = |name: &str, gguf: &str| {
                names(&[
                    &format!("embeddings.{name}"),
                    &format!("{prefix}.embeddings.{name}"),
                    gguf,
                ])
            };
            TensorNames {
                embedding: both("word_embeddings.weight", GGUF_EMBD),
                head: Vec::new(),
                head_bias: Vec::new(),
                positions: both("position_embeddings.weight", "position_embd.weight"),
                token_types: both("token_type_embeddings.weight", "token_types.weight"),
                embedding_norm_weight: both("LayerNorm.weight", "token_embd_norm.weight"),
                embedding_norm_bias: both("LayerNorm.bias", "token_embd_norm.bias"),
            }
        };
        match self {
            A::GptNeoX => decoder(
                &["gpt_neox.embed_in.weight", GGUF_EMBD],
                &["embed_out.weight", GGUF_HEAD],
                &[],
            ),
            A::GptJ => decoder(
                &["transformer.wte.weight", GGUF_EMBD],
                &["lm_head.weight", GGUF_HEAD],
                &["lm_head.bias", GGUF_HEAD_BIAS],
            ),
            A::Phi => decoder(
                &["model.embed_tokens.weight", GGUF_EMBD],
                &["lm_head.weight", GGUF_HEAD],
                &["lm_head.bias", GGUF_HEAD_BIAS],
            ),
            A::Falcon => decoder(
                &["transformer.word_embeddings.weight", GGUF_EMBD],
                &["lm_head.weight", GGUF_HEAD],
                &[],
            ),
            A::Gemma3 | A::Qwen2Vl | A::Llama4 => decoder(
                &[
                    "model.embed_tokens.weight",
                    "model.language_model.embed_tokens.weight",
                    "language_model.model.embed_tokens.weight",
                    GGUF_EMBD,
                ],
                &["lm_head.weight", "language_model.lm_head.weight", GGUF_HEAD],
                &[],
            ),
            A::Bert => bert("bert"),
            A::Roberta => bert("roberta"),
            A::ModernBert => TensorNames {
                embedding: names(&[
                    "model.embeddings.tok_embeddings.weight",
                    "embeddings.tok_embeddings.weight",
                ]),
                head: Vec::new(),
                head_bias: names(&["decoder.bias"]),
                positions: Vec::new(),
                token_types: Vec::new(),
                embedding_norm_weight: names(&[
                    "model.embeddings.norm.weight",
                    "embeddings.norm.weight",
                ]),
                embedding_norm_bias: names(&["model.embeddings.norm.bias", "embeddings.norm.bias"]),
            },
            A::Gpt2 => TensorNames {
                embedding: names(&["wte.weight", "transformer.wte.weight", GGUF_EMBD]),
                head: Vec::new(),
                head_bias: Vec::new(),
                positions: names(&[
                    "wpe.weight",
                    "transformer.wpe.weight",
                    "position_embd.weight",
                ]),
                token_types: Vec::new(),
                embedding_norm_weight: Vec::new(),
                embedding_norm_bias: Vec::new(),
            },
            _ => decoder(
                &["model.embed_tokens.weight", GGUF_EMBD],
                &["lm_head.weight", GGUF_HEAD],
                &[],
            ),
        }
    }
}
