//! Loading the input side (and the head) of real checkpoints — HuggingFace directories
//! (config.json + safetensors, single or sharded) and GGUF files — as their
//! [`ModelSpec`] describes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokenloom_embedding::{Embedding, EmbeddingAndHead, EmbeddingOptions, QuantizedEmbedding};
use tokenloom_io::{GgufFile, ModelDir, SafetensorsFile, WeightFiles};
use tokenloom_positions::{CacheFloat, RopeCache};
use tokenloom_tensor::{Element, Tensor};

use crate::error::DecoderInputError;
use crate::input::DecoderInput;
use crate::layer_rope::LongRopeChoice;
use crate::scheme::PositionEncoding;
use crate::spec::{AbsolutePositions, ModelFamily, ModelSpec, OutputHead};
use crate::tables::{QuantizedHead, QuantizedTables, TokenTables};

/// A decoder input loaded from a real checkpoint, with the model spec it was built from
/// and notes on anything the loader decided.
#[derive(Debug)]
#[non_exhaustive]
pub struct PretrainedModel<T, C = f32> {
    /// The decoder input: embedding, head (tied or untied, with its bias and logit
    /// transform), the per-layer rotation of q and k.
    pub input: DecoderInput<T, C>,
    /// Everything the checkpoint's metadata says about the model.
    pub spec: ModelSpec,
    /// Things the loader decided, in words (e.g. an `lm_head.weight` ignored because the
    /// config ties the head).
    pub notes: Vec<String>,
}

/// `names` are not in a checkpoint of `available` tensors.
fn missing_tensor<'a>(
    path: &Path,
    names: &[String],
    available: impl ExactSizeIterator<Item = &'a String>,
) -> DecoderInputError {
    DecoderInputError::MissingTensor {
        path: path.to_path_buf(),
        names: names.to_vec(),
        available: available.len(),
        examples: available.take(5).cloned().collect(),
    }
}

/// Where the tensors of a checkpoint are, and how to read one.
trait Source {
    /// The checkpoint, for messages.
    fn path(&self) -> &Path;
    /// Every tensor name.
    fn names(&self) -> Vec<String>;
    /// Whether it holds `name`.
    fn has(&self, name: &str) -> bool;
    /// The tensor `name` as `T`.
    fn load<T: Element>(&self, name: &str) -> Result<Tensor<T>, DecoderInputError>;
    /// The tensor `name` as `T`, refused before any data is read when it is not
    /// `expected` (`(rows, n_embd)`).
    fn load_checked<T: Element>(
        &self,
        name: &str,
        expected: [usize; 2],
    ) -> Result<Tensor<T>, DecoderInputError>;

    /// The first of `names` the checkpoint holds.
    fn find(&self, names: &[String]) -> Result<String, DecoderInputError> {
        names
            .iter()
            .find(|n| self.has(n))
            .cloned()
            .ok_or_else(|| missing_tensor(self.path(), names, self.names().iter()))
    }

    /// The first of `names`, checked to be `(rows, n_embd)` with `rows` as given.
    fn matrix<T: Element>(
        &self,
        names: &[String],
        rows: Option<usize>,
        n_embd: usize,
    ) -> Result<Tensor<T>, DecoderInputError> {
        let name = self.find(names)?;
        if let Some(rows) = rows {
            return self.load_checked::<T>(&name, [rows, n_embd]);
        }
        let table = self.load::<T>(&name)?;
        let dims = table.dims();
        if dims.len() != 2 || dims[1] != n_embd || rows.is_some_and(|r| dims[0] != r) {
            return Err(DecoderInputError::TensorShape {
                path: self.path().to_path_buf(),
                tensor: name,
                got: dims.to_vec(),
                expected: format!(
                    "({}, {n_embd})",
                    rows.map_or_else(|| "vocab_size".to_owned(), |r| r.to_string())
                ),
            });
        }
        Ok(table)
    }
}

/// A HuggingFace directory's safetensors files.
struct HfFiles<'a> {
    dir: &'a Path,
    files: BTreeMap<String, PathBuf>,
}

impl Source for HfFiles<'_> {
    fn path(&self) -> &Path {
        self.dir
    }
    fn names(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
    fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
    fn load<T: Element>(&self, name: &str) -> Result<Tensor<T>, DecoderInputError> {
        let file = self
            .files
            .get(name)
            .ok_or_else(|| missing_tensor(self.dir, &[name.to_owned()], self.files.keys()))?;
        let file = SafetensorsFile::open(file)?;
        file.refuse_scaled_fp8(name, |s| self.has(s))?;
        Ok(file.load::<T>(name)?)
    }
    fn load_checked<T: Element>(
        &self,
        name: &str,
        expected: [usize; 2],
    ) -> Result<Tensor<T>, DecoderInputError> {
        let file = self
            .files
            .get(name)
            .ok_or_else(|| missing_tensor(self.dir, &[name.to_owned()], self.files.keys()))?;
        let file = SafetensorsFile::open(file)?;
        file.refuse_scaled_fp8(name, |s| self.has(s))?;
        Ok(file.load_matrix::<T>(name, Some(expected))?)
    }
}

impl Source for GgufFile {
    fn path(&self) -> &Path {
        GgufFile::path(self).unwrap_or(Path::new("<GGUF bytes>"))
    }
    fn names(&self) -> Vec<String> {
        self.tensors().iter().map(|t| t.name.clone()).collect()
    }
    fn has(&self, name: &str) -> bool {
        self.info(name).is_ok()
    }
    fn load<T: Element>(&self, name: &str) -> Result<Tensor<T>, DecoderInputError> {
        Ok(GgufFile::load::<T>(self, name)?)
    }
    fn load_checked<T: Element>(
        &self,
        name: &str,
        expected: [usize; 2],
    ) -> Result<Tensor<T>, DecoderInputError> {
        let shape = &self.info(name)?.shape;
        if shape.as_slice() != expected {
            return Err(DecoderInputError::TensorShape {
                path: Source::path(self).to_path_buf(),
                tensor: name.to_owned(),
                got: shape.clone(),
                expected: format!("({}, {})", expected[0], expected[1]),
            });
        }
        Ok(GgufFile::load::<T>(self, name)?)
    }
}

/// Which safetensors file of a checkpoint directory holds each tensor, resolved by the io
/// crate (plain file names inside the directory only; see [`ModelDir`]). A tensor named
/// in two loose files is an error, never "first wins".
fn weight_files(resolved: &ModelDir) -> Result<BTreeMap<String, PathBuf>, DecoderInputError> {
    match resolved.weights() {
        WeightFiles::Safetensors { files, weight_map } => {
            // Every file's names, each in one file only (shards included: a tensor stored
            // twice is refused even when the index names one of them).
            let mut map: BTreeMap<String, PathBuf> = BTreeMap::new();
            for path in files {
                let file = SafetensorsFile::open(path)?;
                for t in file.tensors() {
                    if let Some(first) = map.insert(t.name.clone(), path.clone()) {
                        return Err(DecoderInputError::DuplicateTensor {
                            tensor: t.name.clone(),
                            first,
                            second: path.clone(),
                        });
                    }
                }
            }
            Ok(weight_map.clone().unwrap_or(map))
        }
        WeightFiles::Gguf(gguf) => Err(DecoderInputError::GgufInDirectory {
            dir: resolved.dir().to_path_buf(),
            gguf: gguf.clone(),
        }),
    }
}

/// Loads a HuggingFace model directory as its `config.json` describes it (see
/// [`ModelSpec::from_hf_json`] for the architectures): the token table, the head (tied,
/// untied, with a bias where the architecture has one, and its logit transform), the
/// embedding scale (Gemma's √n_embd rounded to `T`, Granite's multiplier), learned
/// absolute positions and token types (BERT, GPT-2), and every layer's treatment of q
/// and k ([`DecoderInputOutput::apply_rope_layer`](crate::DecoderInputOutput::apply_rope_layer)).
/// LongRoPE's factors are chosen per batch, as transformers does
/// ([`load_hf_dir_with`] chooses otherwise).
///
/// The directory is resolved first ([`ModelDir`]: plain file names inside it, symlinks
/// checked), and `config.json` is read through it, bounded in size. Files are
/// memory-mapped; each tensor is read once. A tied config whose checkpoint also holds
/// `lm_head.weight` is handled as HuggingFace's `tie_weights` does: the stored head is
/// ignored (and noted). The config's `pad_token_id`, when inside the vocabulary, becomes
/// the embedding's `padding_idx`.
///
/// # Errors
///
/// The model spec's errors ([`DecoderInputError::UnknownModelType`],
/// [`DecoderInputError::UnknownConfigKey`], …), [`DecoderInputError::MissingKey`] for a
/// config without `config.json` or `vocab_size`, [`DecoderInputError::MissingTensor`],
/// [`DecoderInputError::TensorShape`] and the reader's errors.
pub fn load_hf_dir<T: Element, C: CacheFloat>(
    dir: impl AsRef<Path>,
) -> Result<PretrainedModel<T, C>, DecoderInputError> {
    load_hf_dir_with(dir, LongRopeChoice::default())
}

/// [`load_hf_dir`] with LongRoPE's factors chosen as `long_rope` says.
///
/// # Errors
///
/// As [`load_hf_dir`].
pub fn load_hf_dir_with<T: Element, C: CacheFloat>(
    dir: impl AsRef<Path>,
    long_rope: LongRopeChoice,
) -> Result<PretrainedModel<T, C>, DecoderInputError> {
    let dir = dir.as_ref();
    let resolved = ModelDir::open(dir)?;
    let config_path = resolved
        .config_json()
        .ok_or_else(|| DecoderInputError::MissingKey {
            path: dir.to_path_buf(),
            key: "config.json".to_owned(),
        })?;
    let spec = ModelSpec::read(config_path)?;
    let files = HfFiles {
        dir,
        files: weight_files(&resolved)?,
    };
    let vocab_size = spec
        .vocab_size
        .ok_or_else(|| DecoderInputError::MissingKey {
            path: config_path.to_path_buf(),
            key: "vocab_size".to_owned(),
        })?;
    let mut notes = Vec::new();
    let embedding = files.matrix::<T>(&spec.tensors.embedding, Some(vocab_size), spec.n_embd)?;
    let tables = match spec.head {
        OutputHead::Untied => {
            let head = files.matrix::<T>(&spec.tensors.head, Some(vocab_size), spec.n_embd)?;
            TokenTables::Dense(EmbeddingAndHead::untied(
                embedding_with_padding(embedding, spec.pad_id)?,
                head,
            )?)
        }
        OutputHead::Tied | OutputHead::None => {
            if spec.head == OutputHead::Tied
                && let Ok(name) = files.find(&spec.tensors.head)
            {
                notes.push(format!(
                    "{name} is present but tie_word_embeddings is true: ignored, the head shares the token table (as HuggingFace's tie_weights)"
                ));
            }
            TokenTables::Dense(EmbeddingAndHead::tied_pretrained(
                embedding_with_padding(embedding, spec.pad_id)?,
                1.0,
            )?)
        }
    };
    assemble(&files, tables, spec, long_rope, notes)
}

/// The embedding with the pad id as its `padding_idx` (as HuggingFace's `nn.Embedding`
/// with `padding_idx`), when the pad id is inside the vocabulary.
fn embedding_with_padding<T: Element>(
    table: Tensor<T>,
    pad_id: Option<usize>,
) -> Result<Embedding<T>, DecoderInputError> {
    let embedding = Embedding::from_weight(table)?;
    let vocab_size = embedding.vocab_size();
    Ok(match pad_id.filter(|&p| p < vocab_size) {
        Some(pad) => embedding.with_options(EmbeddingOptions {
            padding_idx: Some(pad),
            ..EmbeddingOptions::default()
        })?,
        None => embedding,
    })
}

/// The decoder input of a spec over its loaded tables: positions (RoPE per layer, or a
/// learned table), token types, head bias, transforms.
fn assemble<T: Element, C: CacheFloat>(
    source: &impl Source,
    tables: TokenTables<T>,
    spec: ModelSpec,
    long_rope: LongRopeChoice,
    mut notes: Vec<String>,
) -> Result<PretrainedModel<T, C>, DecoderInputError> {
    let vocab_size = tables.vocab_size();
    let max_positions = context_of(&spec);
    let pad_id = spec.pad_id.filter(|&p| p < vocab_size).map(|p| {
        u32::try_from(p).expect("pad ids are below vocab_size, which indexes u32 token ids")
    });
    let positions = match (&spec.absolute_positions, spec.main_rope()) {
        (Some(AbsolutePositions::Learned { rows, offset }), _) => {
            let table = source.matrix::<T>(&spec.tensors.positions, Some(*rows), spec.n_embd)?;
            // RoBERTa: position p reads row p + offset, so the table starts at `offset`.
            let table = if *offset == 0 {
                table
            } else {
                Tensor::from_vec(
                    table.as_slice()[offset * spec.n_embd..].to_vec(),
                    &[rows - offset, spec.n_embd],
                )?
            };
            PositionEncoding::Learned(Embedding::from_weight(table)?)
        }
        (None, Some(rope)) => PositionEncoding::Rope(RopeCache::new(rope, max_positions)?),
        (None, None) => PositionEncoding::None,
    };
    let mut input = DecoderInput::from_tables(
        tables,
        positions,
        max_positions,
        pad_id,
        spec.embedding_scale_for::<T>(),
    )?
    .with_logit_transform(spec.logits)?;
    if spec.has_rope() {
        input = input.with_layer_positions(&spec.layers, spec.n_layers, long_rope)?;
    }
    if let Some(norm) = spec.embedding_norm {
        let weight = source.load::<T>(&source.find(&spec.tensors.embedding_norm_weight)?)?;
        let bias = if norm.bias {
            Some(source.load::<T>(&source.find(&spec.tensors.embedding_norm_bias)?)?)
        } else {
            None
        };
        input = input.with_embedding_norm(weight, bias, norm.eps)?;
    }
    if let Some(n) = spec.token_types {
        let table = source.matrix::<T>(&spec.tensors.token_types, Some(n), spec.n_embd)?;
        input = input.with_token_types(Embedding::from_weight(table)?)?;
    }
    if !spec.tensors.head_bias.is_empty() && spec.head != OutputHead::None {
        let name = source.find(&spec.tensors.head_bias)?;
        input = input.with_head_bias(source.load::<T>(&name)?)?;
    }
    match spec.family() {
        ModelFamily::BertEncoder => {
            input = input.without_head("a BERT encoder");
            notes.push("BERT encoder: word + token type 0 + learned position embeddings; no language-model head".to_owned());
            notes.push("the embeddings' LayerNorm is applied: the hidden states are those entering the first layer".to_owned());
        }
        ModelFamily::Gpt2Decoder => {
            notes.push("GPT-2: token + learned position embeddings; head tied to wte".to_owned());
        }
        ModelFamily::RopeDecoder => {}
    }
    Ok(PretrainedModel { input, spec, notes })
}

/// The positions a decoder input built from `spec` accepts: `max_position_embeddings`,
/// or for dynamic NTK — whose point is to serve longer sequences, which transformers
/// rotates with frequencies recomputed for the batch — `⌈max_position_embeddings ·
/// factor⌉`, the extended context the factor is set for.
fn context_of(spec: &ModelSpec) -> usize {
    match spec.main_rope().map(|r| &r.scaling) {
        Some(tokenloom_positions::RopeScaling::DynamicNtk { factor, .. }) if *factor > 1.0 => {
            // context lengths are far below 2^53; the product is finite (factor validated)
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let extended = (spec.max_positions as f64 * factor).ceil() as usize;
            extended.max(spec.max_positions)
        }
        _ => spec.max_positions,
    }
}

/// How [`load_gguf_with`] loads the token table and head of a GGUF file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GgufLoadOptions {
    /// Keep block-quantized tables (Q8_0, Q4_K, …) as stored — memory-mapped, rows
    /// decoded when looked up, logits computed from the blocks — instead of decoding them
    /// into dense `T` tables. The result is for inference: backward and optimizer steps
    /// are errors until [`DecoderInput::into_dense`]. Float tables (F32, F16, BF16) are
    /// read into `T` either way. Default: `false` (dense and trainable).
    pub keep_quantized: bool,
}

impl GgufLoadOptions {
    /// Sets [`keep_quantized`](Self::keep_quantized).
    #[must_use]
    pub fn with_keep_quantized(mut self, keep: bool) -> Self {
        self.keep_quantized = keep;
        self
    }
}

/// Loads the input side of a GGUF file (llama.cpp) as its metadata describes it
/// ([`ModelSpec::from_gguf`]): `token_embd.weight` decoded into `T` (any float or
/// block-quantized type the io crate reads; [`load_gguf_with`] can keep it quantized),
/// the head tied unless the file has `output.weight`, the RoPE of every layer in the
/// architecture's layout as llama.cpp applies it (interleaved for `llama` and the other
/// "NORM" families, half-split for Qwen, Phi, Gemma and the other "NeoX" ones; use
/// `tokenloom_positions::convert_qk_layout` to change weights to the other layout), the
/// embedding and logit transforms of llama.cpp's graph (Gemma's √n_embd, Granite's and
/// Command-R's scales, Gemma 2's softcapping). `bert` and `gpt2` files get their learned
/// absolute positions (`position_embd.weight`) instead of RoPE — and BERT its token types
/// (`token_types.weight`) and no head.
///
/// # Errors
///
/// The model spec's errors (an unknown architecture is an error, never a default layout),
/// [`DecoderInputError::TensorShape`], and the reader's errors (a tensor type tokenloom
/// cannot decode is named).
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
    let file = GgufFile::open(path.as_ref())?;
    let mut spec = ModelSpec::from_gguf(&file)?;
    let n_embd = spec.n_embd;
    let table_name = file.find(&spec.tensors.embedding)?;
    let dims = file.info(&table_name)?.shape.clone();
    if dims.len() != 2 || dims[1] != n_embd {
        return Err(DecoderInputError::TensorShape {
            path: Source::path(&file).to_path_buf(),
            tensor: table_name,
            got: dims,
            expected: format!("(vocab_size, {n_embd})"),
        });
    }
    let vocab_size = dims[0];
    spec.vocab_size = Some(vocab_size);
    let head_name = match spec.head {
        OutputHead::Untied => {
            let name = file.find(&spec.tensors.head)?;
            let head_dims = &file.info(&name)?.shape;
            if head_dims.as_slice() != [vocab_size, n_embd] {
                return Err(DecoderInputError::TensorShape {
                    path: Source::path(&file).to_path_buf(),
                    tensor: name,
                    got: head_dims.clone(),
                    expected: format!("({vocab_size}, {n_embd})"),
                });
            }
            Some(name)
        }
        _ => None,
    };
    let pad_id = spec.pad_id.filter(|&p| p < vocab_size);
    let mut notes = Vec::new();
    if spec.head == OutputHead::Tied {
        notes.push(format!(
            "no output.weight: the head is tied to {table_name}"
        ));
    }
    let quantized = |name: &str| -> Result<bool, DecoderInputError> {
        Ok(options.keep_quantized && file.info(name)?.ggml_type.is_quantized())
    };
    let tables = if quantized(&table_name)? {
        let embedding = QuantizedEmbedding::from_gguf(&file, &table_name)?;
        notes.push(format!(
            "{table_name} kept quantized as {}: {} bytes in memory ({} as dense f32)",
            embedding.qtype().name(),
            embedding.bytes_in_memory(),
            vocab_size.saturating_mul(n_embd).saturating_mul(4)
        ));
        let head = match &head_name {
            None => QuantizedHead::Tied,
            Some(name) if quantized(name)? => {
                QuantizedHead::Quantized(QuantizedEmbedding::from_gguf(&file, name)?)
            }
            Some(name) => QuantizedHead::Dense(file.load::<T>(name)?),
        };
        TokenTables::Quantized(QuantizedTables::new(embedding, head)?.with_padding_idx(pad_id)?)
    } else {
        let embedding = embedding_with_padding(file.load::<T>(&table_name)?, pad_id)?;
        TokenTables::Dense(match &head_name {
            None => EmbeddingAndHead::tied_pretrained(embedding, 1.0)?,
            Some(name) => EmbeddingAndHead::untied(embedding, file.load::<T>(name)?)?,
        })
    };
    assemble(&file, tables, spec, LongRopeChoice::default(), notes)
}
