//! Loading the input side of real checkpoints: HuggingFace LLaMA-style directories
//! (config.json + safetensors, single or sharded) and GGUF files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokenloom_embedding::{Embedding, EmbeddingAndHead, EmbeddingOptions, QuantizedEmbedding};
use tokenloom_io::{GgufFile, GgufValue, ModelDir, SafetensorsFile, WeightFiles};
use tokenloom_positions::{
    AttentionConfig, CacheFloat, LocalAttention, RopeCache, RopeConfig, RopeScaling, YarnScaling,
};
use tokenloom_tensor::Element;

use crate::architecture::{
    ModelFamily, SCALED_EMBEDDING_MODEL_TYPES, gguf_absolute_family, hf_model_family, tensor_names,
};
use crate::error::DecoderInputError;
use crate::gguf_arch::{GgufRopeType, gguf_rope_type};
use crate::input::DecoderInput;
use crate::model_config::{GgufModelConfig, HfModelConfig};
use crate::scheme::PositionEncoding;
use crate::tables::{QuantizedHead, QuantizedTables, TokenTables};

/// A decoder input loaded from a real checkpoint, with the attention settings that came
/// with it and notes on anything that was deliberately ignored.
#[derive(Debug)]
pub struct PretrainedModel<T, C = f32> {
    /// The decoder input: embedding, head (tied or untied), RoPE cache.
    pub input: DecoderInput<T, C>,
    /// The RoPE and head-count settings of the model (`None` for models with absolute
    /// positions: BERT, GPT-2).
    pub rope: Option<AttentionConfig>,
    /// Things the loader decided, in words (e.g. an `lm_head.weight` ignored because the
    /// config ties the head).
    pub notes: Vec<String>,
}

/// The embedding tensor of HuggingFace LLaMA checkpoints.
pub const HF_EMBED_NAME: &str = "model.embed_tokens.weight";
/// The untied output head of HuggingFace LLaMA checkpoints.
pub const HF_HEAD_NAME: &str = "lm_head.weight";

/// `names` are not in a checkpoint of `available` tensors.
fn missing_tensor<'a>(
    path: &Path,
    names: &[&str],
    available: impl ExactSizeIterator<Item = &'a String>,
) -> DecoderInputError {
    DecoderInputError::MissingTensor {
        path: path.to_path_buf(),
        names: names.iter().map(|&n| n.to_owned()).collect(),
        available: available.len(),
        examples: available.take(5).cloned().collect(),
    }
}

/// Which safetensors file of a checkpoint directory holds each tensor, resolved by the io
/// crate (plain file names inside the directory only; see [`ModelDir`]).
fn weight_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, DecoderInputError> {
    match ModelDir::open(dir)?.weights() {
        WeightFiles::Safetensors {
            weight_map: Some(map),
            ..
        } => Ok(map.clone()),
        WeightFiles::Safetensors { files, .. } => {
            let mut map = BTreeMap::new();
            for path in files {
                let file = SafetensorsFile::open(path)?;
                for t in file.tensors() {
                    map.entry(t.name.clone()).or_insert_with(|| path.clone());
                }
            }
            Ok(map)
        }
        WeightFiles::Gguf(gguf) => Err(DecoderInputError::GgufInDirectory {
            dir: dir.to_path_buf(),
            gguf: gguf.clone(),
        }),
    }
}

/// Loads a `(vocab_size, n_embd)` matrix by name from the shard that holds it.
fn load_table<T: Element>(
    dir: &Path,
    files: &BTreeMap<String, PathBuf>,
    name: &str,
    shape: [usize; 2],
) -> Result<Embedding<T>, DecoderInputError> {
    let file_name = files
        .get(name)
        .ok_or_else(|| missing_tensor(dir, &[name], files.keys()))?;
    let file = SafetensorsFile::open(file_name)?;
    Ok(Embedding::from_weight(
        file.load_matrix::<T>(name, Some(shape))?,
    )?)
}

/// Loads the input side of a HuggingFace model directory, as its architecture has it
/// (`model_type`, or the `architectures` class, of `config.json`; see
/// [`ModelFamily`]):
///
/// - **RoPE decoders** (`llama`, `mistral`, `qwen2`, `phi3`, `gemma3`, …): the config
///   through the strict parser of the positions crate, `model.embed_tokens.weight` (plus
///   `lm_head.weight` when untied); Gemma scales the embeddings by √hidden_size (in f32).
///   The RoPE layout is half-split, the layout of HF checkpoints.
/// - **BERT encoders** (`bert`): word, learned absolute position (`max_position_embeddings`
///   rows) and token-type embeddings; no head ([`DecoderInput::logits`] is
///   [`DecoderInputError::NoHead`]); the embeddings' LayerNorm is left to the caller
///   (noted in [`PretrainedModel::notes`]).
/// - **GPT-2** (`gpt2`): `wte` and learned positions `wpe`, head tied to `wte`.
///
/// Files are memory-mapped (single `model.safetensors` or the shards of
/// `model.safetensors.index.json`); each tensor is read once. Tying follows
/// `tie_word_embeddings` (absent: false, LlamaConfig's default; GPT-2 always ties). A tied
/// config whose checkpoint also holds `lm_head.weight` is handled as HuggingFace's
/// `tie_weights` does: the stored head is ignored (and noted). The config's `pad_token_id`,
/// when inside the vocabulary, becomes the embedding's `padding_idx`.
///
/// # Errors
///
/// [`DecoderInputError::UnknownModelType`] for an architecture tokenloom does not know
/// (nothing is assumed about it), [`DecoderInputError::MissingKey`], [`DecoderInputError::BadValue`],
/// [`DecoderInputError::MissingTensor`] and the other checkpoint variants for missing or
/// malformed files and tensors, the config parser's errors, and shape errors naming the
/// tensor.
pub fn load_hf_dir<T: Element, C: CacheFloat>(
    dir: impl AsRef<Path>,
) -> Result<PretrainedModel<T, C>, DecoderInputError> {
    let dir = dir.as_ref();
    let config_path = dir.join("config.json");
    let config = HfModelConfig::read(&config_path)?;
    let model_type = config
        .model_type()
        .ok_or_else(|| DecoderInputError::UnknownModelType {
            path: config_path.clone(),
            architecture: "(no model_type or architectures)".to_owned(),
        })?;
    let family =
        hf_model_family(&model_type).ok_or_else(|| DecoderInputError::UnknownModelType {
            path: config_path.clone(),
            architecture: model_type.clone(),
        })?;
    let files = weight_files(dir)?;
    let hf = HfDir {
        dir,
        config_path: &config_path,
        config: &config,
        files: &files,
    };
    match family {
        ModelFamily::RopeDecoder => hf.rope_decoder(&model_type),
        ModelFamily::BertEncoder => hf.bert_encoder(),
        ModelFamily::Gpt2Decoder => hf.gpt2_decoder(),
    }
}

/// An opened HuggingFace model directory.
struct HfDir<'a> {
    dir: &'a Path,
    config_path: &'a Path,
    config: &'a HfModelConfig,
    files: &'a BTreeMap<String, PathBuf>,
}

impl HfDir<'_> {
    fn required(&self, value: Option<usize>, key: &str) -> Result<usize, DecoderInputError> {
        self.config.required(value, key)
    }

    /// The first of `names` the checkpoint holds.
    fn find(&self, names: &[&'static str]) -> Result<&'static str, DecoderInputError> {
        names
            .iter()
            .copied()
            .find(|n| self.files.contains_key(*n))
            .ok_or_else(|| missing_tensor(self.dir, names, self.files.keys()))
    }

    fn table<T: Element>(
        &self,
        name: &str,
        shape: [usize; 2],
    ) -> Result<Embedding<T>, DecoderInputError> {
        load_table(self.dir, self.files, name, shape)
    }

    fn rope_decoder<T: Element, C: CacheFloat>(
        &self,
        model_type: &str,
    ) -> Result<PretrainedModel<T, C>, DecoderInputError> {
        let rope = self.config.attention()?;
        let vocab_size = self.required(self.config.vocab_size, "vocab_size")?;
        let n_embd = self.required(self.config.hidden_size, "hidden_size")?;
        let max_positions = rope.max_position_embeddings.unwrap_or(0);
        let tie = self.config.tie_word_embeddings.unwrap_or(false);
        let pad_id = self.config.pad_token_id.filter(|&p| p < vocab_size);
        let mut notes = Vec::new();
        let embedding = with_padding(
            self.table::<T>(HF_EMBED_NAME, [vocab_size, n_embd])?,
            pad_id,
        )?;
        let model = if tie {
            if self.files.contains_key(HF_HEAD_NAME) {
                notes.push(format!(
                    "{HF_HEAD_NAME} is present but tie_word_embeddings is true: ignored, the head shares {HF_EMBED_NAME} (as HuggingFace's tie_weights)"
                ));
            }
            EmbeddingAndHead::tied_pretrained(embedding, 1.0)?
        } else {
            let head = self.table::<T>(HF_HEAD_NAME, [vocab_size, n_embd])?;
            EmbeddingAndHead::untied(embedding, head.into_weight())?
        };
        // Gemma: `Gemma3TextScaledWordEmbedding` multiplies by √hidden_size.
        let embedding_scale = SCALED_EMBEDDING_MODEL_TYPES
            .contains(&model_type)
            .then(|| f64::from(f32_sqrt(n_embd)));
        assemble(
            TokenTables::Dense(model),
            rope,
            max_positions,
            pad_id,
            embedding_scale,
            notes,
        )
    }

    fn bert_encoder<T: Element, C: CacheFloat>(
        &self,
    ) -> Result<PretrainedModel<T, C>, DecoderInputError> {
        let vocab_size = self.required(self.config.vocab_size, "vocab_size")?;
        let n_embd = self.required(self.config.hidden_size, "hidden_size")?;
        let max_positions = self.required(
            self.config.max_position_embeddings,
            "max_position_embeddings",
        )?;
        let type_vocab_size = self.config.type_vocab_size.unwrap_or(2);
        if let Some(kind) = self
            .config
            .position_embedding_type
            .as_deref()
            .filter(|&k| k != "absolute")
        {
            return Err(DecoderInputError::UnsupportedSetting {
                path: self.config_path.to_path_buf(),
                key: "position_embedding_type".to_owned(),
                value: kind.to_owned(),
                reason: "only `absolute` is",
            });
        }
        let pad_id = self.config.pad_token_id.filter(|&p| p < vocab_size);
        let word = with_padding(
            self.table::<T>(self.find(tensor_names::BERT_WORD)?, [vocab_size, n_embd])?,
            pad_id,
        )?;
        let positions = self.table::<T>(
            self.find(tensor_names::BERT_POSITION)?,
            [max_positions, n_embd],
        )?;
        let token_types = self.table::<T>(
            self.find(tensor_names::BERT_TOKEN_TYPE)?,
            [type_vocab_size, n_embd],
        )?;
        let notes = vec![
            "BERT encoder: word + token type 0 + learned position embeddings; no language-model head".to_owned(),
            "the embeddings' LayerNorm (embeddings.LayerNorm) is the model's first op: apply it to the hidden states".to_owned(),
        ];
        let input = DecoderInput::from_tables(
            TokenTables::Dense(EmbeddingAndHead::tied_pretrained(word, 1.0)?),
            PositionEncoding::Learned(positions),
            max_positions,
            pad_id.map(|p| u32::try_from(p).expect("pad ids are below vocab_size")),
            None,
        )?
        .with_token_types(token_types)?
        .without_head("a BERT encoder");
        Ok(PretrainedModel {
            input,
            rope: None,
            notes,
        })
    }

    fn gpt2_decoder<T: Element, C: CacheFloat>(
        &self,
    ) -> Result<PretrainedModel<T, C>, DecoderInputError> {
        let vocab_size = self.required(self.config.vocab_size, "vocab_size")?;
        let n_embd = self.required(self.config.n_embd, "n_embd")?;
        let max_positions = self.required(self.config.n_positions, "n_positions")?;
        let word = self.table::<T>(self.find(tensor_names::GPT2_WORD)?, [vocab_size, n_embd])?;
        let positions = self.table::<T>(
            self.find(tensor_names::GPT2_POSITION)?,
            [max_positions, n_embd],
        )?;
        let input = DecoderInput::from_tables(
            TokenTables::Dense(EmbeddingAndHead::tied_pretrained(word, 1.0)?),
            PositionEncoding::Learned(positions),
            max_positions,
            None,
            None,
        )?;
        Ok(PretrainedModel {
            input,
            rope: None,
            notes: vec!["GPT-2: token + learned position embeddings; head tied to wte".to_owned()],
        })
    }
}

/// The embedding with the pad id as its `padding_idx` (as LLaMA's `nn.Embedding`).
fn with_padding<T: Element>(
    embedding: Embedding<T>,
    pad_id: Option<usize>,
) -> Result<Embedding<T>, DecoderInputError> {
    Ok(match pad_id {
        Some(pad) => embedding.with_options(EmbeddingOptions {
            padding_idx: Some(pad),
            ..EmbeddingOptions::default()
        })?,
        None => embedding,
    })
}

/// A RoPE decoder input over the model's context, from loaded parts.
fn assemble<T: Element, C: CacheFloat>(
    tables: TokenTables<T>,
    rope: AttentionConfig,
    max_positions: usize,
    pad_id: Option<usize>,
    embedding_scale: Option<f64>,
    notes: Vec<String>,
) -> Result<PretrainedModel<T, C>, DecoderInputError> {
    let max_positions = max_positions.max(1);
    let cache = RopeCache::new(&rope.rope, max_positions)?;
    let pad_id = pad_id.map(|p| {
        u32::try_from(p).expect("pad ids are below vocab_size, which indexes u32 token ids")
    });
    let input = DecoderInput::from_tables(
        tables,
        PositionEncoding::Rope(cache),
        max_positions,
        pad_id,
        embedding_scale,
    )?;
    Ok(PretrainedModel {
        input,
        rope: Some(rope),
        notes,
    })
}

/// The tensor of llama.cpp's precomputed RoPE frequency factors.
const ROPE_FREQS: &str = "rope_freqs.weight";

/// The position and attention settings of a GGUF file's `{arch}.*` metadata (see
/// [`load_gguf`]), without loading any tensor.
///
/// The RoPE layout comes from the architecture (`general.architecture`), through the
/// table of [`gguf_rope_type`] that mirrors llama.cpp's `llama_model_rope_type()`:
/// interleaved for `llama` and the other "NORM" families, half-split for `qwen2`, `phi3`,
/// `gemma3` and the other "NEOX" families. For Gemma 3 (`gemma3` with
/// `gemma3.attention.sliding_window`), [`AttentionConfig::local`] holds the RoPE of the
/// sliding-window layers — base `gemma3.rope.freq_base_swa`, or 10000 as llama.cpp sets
/// it — and which layers use it (every 6th layer is global).
///
/// # Errors
///
/// [`DecoderInputError::UnknownArchitecture`] for an architecture the table does not
/// list, [`DecoderInputError::UnsupportedRope`] for architectures without RoPE or with
/// multimodal RoPE, [`DecoderInputError::MissingKey`], [`DecoderInputError::BadValue`] and
/// [`DecoderInputError::UnsupportedSetting`] for missing or unsupported
/// metadata, and RoPE validation errors.
pub fn gguf_rope_settings(file: &GgufFile) -> Result<AttentionConfig, DecoderInputError> {
    let config = GgufModelConfig::read(file)?;
    let path = config.path();
    let arch = config.architecture;
    let rope_type = gguf_rope_type(arch).ok_or_else(|| DecoderInputError::UnknownArchitecture {
        path: path.to_path_buf(),
        architecture: arch.to_owned(),
    })?;
    let layout = rope_type
        .layout()
        .ok_or_else(|| DecoderInputError::UnsupportedRope {
            path: path.to_path_buf(),
            architecture: arch.to_owned(),
            rope_type: rope_type.llama_cpp_name(),
            reason: match rope_type {
                GgufRopeType::MultimodalRope => {
                    "multimodal (sectioned) RoPE is not supported by tokenloom"
                }
                _ => "the architecture has no rotary position embedding",
            },
        })?;
    let key = |suffix: &str| config.key(suffix);
    let uint = |suffix: &str| config.uint(suffix);
    let required = |suffix: &str| config.required(suffix);
    let float = |suffix: &str| config.float(suffix);

    let n_embd = required("embedding_length")?;
    let n_heads = required("attention.head_count")?;
    let n_kv_heads = uint("attention.head_count_kv")?.unwrap_or(n_heads);
    if n_heads == 0 || n_embd % n_heads != 0 {
        return Err(DecoderInputError::HeadsDoNotDivide {
            path: path.to_path_buf(),
            n_heads,
            n_embd,
        });
    }
    let head_dim = uint("attention.key_length")?.unwrap_or(n_embd / n_heads);
    let max_positions = required("context_length")?;
    let theta = float("rope.freq_base").unwrap_or(10000.0);
    let rotary_dim = uint("rope.dimension_count")?.unwrap_or(head_dim);
    let scaling = match config.string("rope.scaling.type") {
        None | Some("none") => match float("rope.scale_linear") {
            Some(factor) if factor != 1.0 => RopeScaling::Linear { factor },
            _ => RopeScaling::None,
        },
        Some("linear") => RopeScaling::Linear {
            factor: config.required_float("rope.scaling.factor")?,
        },
        Some("yarn") => RopeScaling::Yarn(YarnScaling::new(
            config.required_float("rope.scaling.factor")?,
            uint("rope.scaling.original_context_length")?.unwrap_or(max_positions),
        )),
        Some(other) => {
            return Err(DecoderInputError::UnsupportedSetting {
                path: path.to_path_buf(),
                key: key("rope.scaling.type"),
                value: other.to_owned(),
                reason: "none, linear and yarn are",
            });
        }
    };
    // llama.cpp's precomputed per-pair factors (LLaMA 3.1's `llama3` scaling, evaluated
    // by the converter): every frequency divided by its factor, as `ggml_rope_ext` does.
    let scaling = if file.info(ROPE_FREQS).is_ok() {
        if scaling != RopeScaling::None {
            return Err(DecoderInputError::ConflictingSettings {
                path: path.to_path_buf(),
                first: ROPE_FREQS.to_owned(),
                second: format!("{} ({scaling})", key("rope.scaling.type")),
            });
        }
        let factors = file.load::<f64>(ROPE_FREQS)?;
        if factors.dims().len() != 1 {
            return Err(DecoderInputError::TensorShape {
                path: path.to_path_buf(),
                tensor: ROPE_FREQS.to_owned(),
                got: factors.dims().to_vec(),
                expected: format!("(rotary_dim / 2,) = ({},)", rotary_dim / 2),
            });
        }
        RopeScaling::FreqFactors {
            factors: factors.as_slice().to_vec(),
        }
    } else {
        scaling
    };
    let rope_config = RopeConfig::new(head_dim, theta, layout)
        .with_rotary_dim(rotary_dim)
        .with_scaling(scaling);
    rope_config.validate()?;

    // Sliding-window layers with their own base: Gemma 3 (llama.cpp's
    // `rope_freq_base_train_swa = 10000`, `set_swa_pattern(6)`). Another architecture
    // that stores a separate sliding-window base has a layer pattern tokenloom does not
    // know: say so rather than hand back settings that are wrong for some layers.
    let sliding_window = uint("attention.sliding_window")?.filter(|&w| w > 0);
    let local = match (arch, sliding_window) {
        ("gemma3", Some(sliding_window)) => {
            let n_layers = required("block_count")?;
            let base = float("rope.freq_base_swa").unwrap_or(10000.0);
            let rope = RopeConfig::new(head_dim, base, layout).with_rotary_dim(rotary_dim);
            rope.validate()?;
            Some(LocalAttention {
                rope,
                sliding_window,
                layer_types: LocalAttention::pattern(n_layers, 6),
            })
        }
        _ if config.get("rope.freq_base_swa").is_some() => {
            return Err(DecoderInputError::UnsupportedSetting {
                path: path.to_path_buf(),
                key: key("rope.freq_base_swa"),
                value: config
                    .float("rope.freq_base_swa")
                    .map_or_else(|| "?".to_owned(), |v| v.to_string()),
                reason: "tokenloom does not know which layers of this architecture slide",
            });
        }
        _ => None,
    };
    Ok(AttentionConfig {
        rope: rope_config,
        n_heads,
        n_kv_heads,
        max_position_embeddings: Some(max_positions),
        local,
    })
}

/// How [`load_gguf_with`] loads the token table and head of a GGUF file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GgufLoadOptions {
    /// Keep block-quantized tables (Q8_0, Q4_K, …) as stored — memory-mapped, rows
    /// decoded when looked up, logits computed from the blocks — instead of decoding them
    /// into dense `T` tables. The result is for inference: backward and optimizer steps
    /// are errors until [`DecoderInput::into_dense`]. Float tables (F32, F16, BF16) are
    /// read into `T` either way. Default: `false` (dense and trainable).
    pub keep_quantized: bool,
}

/// Loads the input side of a GGUF file (llama.cpp): the `{arch}.*` metadata sets n_embd,
/// head counts, context length and the RoPE settings (`rope.freq_base`,
/// `rope.dimension_count`, `rope.scaling.type` / `.factor` /
/// `.original_context_length`, or llama.cpp's precomputed `rope_freqs.weight` as
/// [`RopeScaling::FreqFactors`]),
/// `token_embd.weight` is decoded into `T` (any float or block-quantized type the io
/// crate reads; [`load_gguf_with`] can keep it quantized), and the head is tied unless
/// the file has `output.weight`. `bert` and `gpt2` files get their learned absolute
/// positions (`position_embd.weight`) instead of RoPE — and BERT its token types
/// (`token_types.weight`) and no head — with [`PretrainedModel::rope`] `None`.
///
/// The RoPE layout is the architecture's, as llama.cpp applies it (see
/// [`gguf_rope_settings`]): interleaved for `llama` (llama.cpp permutes LLaMA q/k weights
/// into that order on conversion), half-split for Qwen, Phi, Gemma and the other NeoX
/// families. It matches the file's q/k weights as stored; use
/// `tokenloom_positions::convert_qk_layout` to change them to the other layout. Gemma
/// models (`gemma`, `gemma2`, `gemma3`, `gemma3n`) scale the embeddings by √n_embd
/// before the first block, as llama.cpp does (in f32); the decoder input carries that
/// scale, and Gemma 3's local-layer RoPE is in [`PretrainedModel::rope`]'s `local`.
///
/// # Errors
///
/// As [`gguf_rope_settings`] (an unknown architecture is an error, never a default
/// layout), [`DecoderInputError::MissingKey`], [`DecoderInputError::BadValue`] and
/// [`DecoderInputError::UnsupportedSetting`] for missing or unsupported metadata, and
/// the reader's errors (a tensor type tokenloom cannot decode is named).
pub fn load_gguf<T: Element, C: CacheFloat>(
    path: impl AsRef<Path>,
) -> Result<PretrainedModel<T, C>, DecoderInputError> {
    load_gguf_with(path, GgufLoadOptions::default())
}

/// [`load_gguf`] with options: `keep_quantized` keeps a block-quantized token table (and
/// head) as stored. A 262144 × 640 Q8_0 table (Gemma 3 270M) then takes 178 MB of mapped
/// file instead of 671 MB of `f32`.
///
/// # Errors
///
/// As [`load_gguf`].
pub fn load_gguf_with<T: Element, C: CacheFloat>(
    path: impl AsRef<Path>,
    options: GgufLoadOptions,
) -> Result<PretrainedModel<T, C>, DecoderInputError> {
    let path = path.as_ref();
    let file = GgufFile::open(path)?;
    let config = GgufModelConfig::read(&file)?;
    let arch = config.architecture;
    // BERT and GPT-2 have learned absolute positions; every other architecture goes
    // through the RoPE table (an unknown one is an error there).
    let absolute = gguf_absolute_family(arch);
    let settings = match absolute {
        Some(_) => None,
        None => Some(gguf_rope_settings(&file)?),
    };
    let max_positions = match &settings {
        Some(s) => s.max_position_embeddings.unwrap_or(1),
        None => config.context_length()?,
    };
    let n_embd = config.n_embd()?;

    const TABLE: &str = "token_embd.weight";
    const HEAD: &str = "output.weight";
    let check_shape = |name: &str, dims: &[usize], vocab_size: Option<usize>| {
        let ok = dims.len() == 2 && dims[1] == n_embd && vocab_size.is_none_or(|v| dims[0] == v);
        if ok {
            Ok(dims[0])
        } else {
            Err(DecoderInputError::TensorShape {
                path: path.to_path_buf(),
                tensor: name.to_owned(),
                got: dims.to_vec(),
                expected: format!(
                    "(vocab_size, {n_embd}){}",
                    vocab_size.map_or(String::new(), |v| format!(" with vocab_size {v}"))
                ),
            })
        }
    };
    let vocab_size = check_shape(TABLE, &file.info(TABLE)?.shape, None)?;
    if file.info(HEAD).is_ok() {
        check_shape(HEAD, &file.info(HEAD)?.shape, Some(vocab_size))?;
    }
    let pad_id = file
        .get("tokenizer.ggml.padding_token_id")
        .and_then(GgufValue::as_u64)
        .and_then(|p| usize::try_from(p).ok())
        .filter(|&p| p < vocab_size);
    let mut notes = Vec::new();
    let tied = file.info(HEAD).is_err();
    if tied {
        notes.push(format!("no {HEAD}: the head is tied to {TABLE}"));
    }
    let quantized = |name: &str| -> Result<bool, DecoderInputError> {
        Ok(options.keep_quantized && file.info(name)?.ggml_type.is_quantized())
    };
    let tables = if quantized(TABLE)? {
        let embedding = QuantizedEmbedding::from_gguf(&file, TABLE)?;
        notes.push(format!(
            "{TABLE} kept quantized as {}: {} bytes in memory ({} as dense f32)",
            embedding.qtype().name(),
            embedding.bytes_in_memory(),
            vocab_size * n_embd * 4
        ));
        let head = if tied {
            QuantizedHead::Tied
        } else if quantized(HEAD)? {
            QuantizedHead::Quantized(QuantizedEmbedding::from_gguf(&file, HEAD)?)
        } else {
            QuantizedHead::Dense(file.load::<T>(HEAD)?)
        };
        TokenTables::Quantized(QuantizedTables::new(embedding, head)?.with_padding_idx(pad_id)?)
    } else {
        let embedding = with_padding(Embedding::from_weight(file.load::<T>(TABLE)?)?, pad_id)?;
        TokenTables::Dense(if tied {
            EmbeddingAndHead::tied_pretrained(embedding, 1.0)?
        } else {
            EmbeddingAndHead::untied(embedding, file.load::<T>(HEAD)?)?
        })
    };
    // Gemma multiplies the looked-up rows by √n_embd (llama.cpp: `ggml_scale(inpL,
    // sqrtf(n_embd))`; transformers: `Gemma3TextScaledWordEmbedding`).
    let embedding_scale = matches!(arch, "gemma" | "gemma2" | "gemma3" | "gemma3n")
        .then(|| f64::from(f32_sqrt(n_embd)));
    let Some(family) = absolute else {
        let settings = settings.expect("RoPE architectures have settings");
        return assemble(
            tables,
            settings,
            max_positions,
            pad_id,
            embedding_scale,
            notes,
        );
    };
    // Learned absolute positions (and BERT's token types), as llama.cpp's `bert` and
    // `gpt2` graphs add them.
    let learned = |names: &[&'static str],
                   rows: Option<usize>|
     -> Result<Embedding<T>, DecoderInputError> {
        let name = names
            .iter()
            .copied()
            .find(|n| file.info(n).is_ok())
            .ok_or_else(|| {
                let present: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
                missing_tensor(path, names, present.iter())
            })?;
        let table = file.load::<T>(name)?;
        if table.dims().len() != 2
            || table.dims()[1] != n_embd
            || rows.is_some_and(|r| table.dims()[0] < r)
        {
            return Err(DecoderInputError::TensorShape {
                path: path.to_path_buf(),
                tensor: name.to_owned(),
                got: table.dims().to_vec(),
                expected: format!("(rows, {n_embd})"),
            });
        }
        Ok(Embedding::from_weight(table)?)
    };
    let positions = learned(tensor_names::BERT_POSITION, Some(max_positions))?;
    let pad = pad_id.map(|p| u32::try_from(p).expect("pad ids are below vocab_size"));
    let input = DecoderInput::from_tables(
        tables,
        PositionEncoding::Learned(positions),
        max_positions,
        pad,
        None,
    )?;
    let input = match family {
        ModelFamily::BertEncoder => {
            notes.push("BERT encoder: no language-model head; the embeddings' LayerNorm is left to the caller".to_owned());
            input
                .with_token_types(learned(tensor_names::BERT_TOKEN_TYPE, None)?)?
                .without_head("a BERT encoder")
        }
        _ => input,
    };
    Ok(PretrainedModel {
        input,
        rope: None,
        notes,
    })
}

/// `sqrtf(n)` in f32, as llama.cpp computes Gemma's embedding scale.
fn f32_sqrt(n: usize) -> f32 {
    // n_embd values are far below 2^24, where the conversion is exact.
    let n = n as f32;
    n.sqrt()
}
