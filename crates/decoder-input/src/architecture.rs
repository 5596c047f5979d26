//! Which kind of model a checkpoint holds, from its own metadata — so a loader builds
//! only what that model has, and says so when it does not know the model.

/// The families whose input side tokenloom builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFamily {
    /// A decoder with rotary positions inside attention (LLaMA, Mistral, Qwen, Phi-3,
    /// Gemma, SmolLM, …): token embeddings only (Gemma: scaled by √n_embd); RoPE settings
    /// from the config.
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

/// HuggingFace `model_type`s of RoPE decoders whose `config.json` tokenloom parses.
const ROPE_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "olmo",
    "olmo2",
    "granite",
    "smollm3",
    "starcoder2",
    "cohere",
    "internlm2",
    "deepseek_v3",
];

/// The `model_type`s that scale the embeddings by √hidden_size (Gemma).
pub(crate) const SCALED_EMBEDDING_MODEL_TYPES: &[&str] =
    &["gemma", "gemma2", "gemma3", "gemma3_text"];

/// The family of a HuggingFace `model_type`, or `None` for one tokenloom does not know.
#[must_use]
pub fn hf_model_family(model_type: &str) -> Option<ModelFamily> {
    match model_type {
        "bert" => Some(ModelFamily::BertEncoder),
        "gpt2" => Some(ModelFamily::Gpt2Decoder),
        t if ROPE_MODEL_TYPES.contains(&t) => Some(ModelFamily::RopeDecoder),
        _ => None,
    }
}

/// The family of a GGUF `general.architecture` that has no RoPE: `bert` and `gpt2`
/// (RoPE architectures are in `gguf_rope_type`).
#[must_use]
pub fn gguf_absolute_family(architecture: &str) -> Option<ModelFamily> {
    match architecture {
        "bert" => Some(ModelFamily::BertEncoder),
        "gpt2" => Some(ModelFamily::Gpt2Decoder),
        _ => None,
    }
}

/// The tensors of the input side of a BERT or GPT-2 checkpoint, under the names
/// HuggingFace (with and without the model prefix) and GGUF use.
pub mod tensor_names {
    /// BERT's word embeddings.
    pub const BERT_WORD: &[&str] = &[
        "embeddings.word_embeddings.weight",
        "bert.embeddings.word_embeddings.weight",
    ];
    /// BERT's learned positions.
    pub const BERT_POSITION: &[&str] = &[
        "embeddings.position_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "position_embd.weight",
    ];
    /// BERT's token types (segments).
    pub const BERT_TOKEN_TYPE: &[&str] = &[
        "embeddings.token_type_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "token_types.weight",
    ];
    /// GPT-2's token embeddings.
    pub const GPT2_WORD: &[&str] = &["wte.weight", "transformer.wte.weight"];
    /// GPT-2's learned positions.
    pub const GPT2_POSITION: &[&str] = &[
        "wpe.weight",
        "transformer.wpe.weight",
        "position_embd.weight",
    ];
}
