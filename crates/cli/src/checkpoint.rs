//! Opening a checkpoint given on the command line: a safetensors file, a GGUF file, or a
//! model directory (config.json + model.safetensors or sharded safetensors).

use std::path::{Path, PathBuf};

use tokenloom_decoder_input::{
    AbsolutePositions, DecoderInputError, ModelFamily, ModelSpec, OutputHead,
};
use tokenloom_embedding::QuantizedEmbedding;
use tokenloom_io::{GgufFile, GgufValue, ModelDir, SafetensorsFile, WeightFiles};
use tokenloom_tensor::Tensor;

use crate::error::{CliError, fail};
use crate::table::Table;
use crate::tokens::TokenNames;

/// Names under which common checkpoints store the token-embedding table, tried in order
/// for a file whose architecture nothing states (a bare safetensors file); a checkpoint
/// with a config or GGUF metadata is read through its model spec's names.
pub const EMBEDDING_NAMES: &[&str] = &[
    "model.embed_tokens.weight",
    "token_embd.weight",
    "tok_embeddings.weight",
    "embeddings.word_embeddings.weight",
    "transformer.wte.weight",
    "model.decoder.embed_tokens.weight",
    "embed_tokens.weight",
    "wte.weight",
];

/// Names of an untied output head, for a file whose architecture nothing states.
pub const HEAD_NAMES: &[&str] = &["lm_head.weight", "output.weight"];

/// One row of a tensor listing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TensorRow {
    /// The name.
    pub name: String,
    /// The PyTorch-order shape.
    pub shape: Vec<usize>,
    /// The stored dtype (safetensors or GGML spelling).
    pub dtype: String,
}

/// An opened checkpoint.
pub enum Checkpoint {
    /// One or more safetensors files (a directory may shard them), with the directory's
    /// config if any.
    Safetensors {
        /// Each file, with the names it holds.
        files: Vec<SafetensorsFile>,
        /// `config.json` (HF) text, if present.
        hf_config: Option<(PathBuf, String)>,
        /// `params.json` (Meta) text, if present.
        meta_params: Option<(PathBuf, String)>,
    },
    /// A GGUF file.
    Gguf(GgufFile),
}

/// A config file's text, read with the model spec's bounds (regular files only, size
/// limited).
fn read(path: &Path) -> Result<String, CliError> {
    Ok(tokenloom_decoder_input::spec::read_config_text(path)?)
}

impl Checkpoint {
    /// Opens `path` (memory-mapped; no tensor is read).
    pub fn open(path: &Path) -> Result<Self, CliError> {
        if path.is_dir() {
            return Self::open_dir(path);
        }
        if !path.exists() {
            return fail(format!("{}: no such file or directory", path.display()));
        }
        // GGUF by magic, or by name: a `.gguf` file with a bad magic (or no bytes at all)
        // is reported by the GGUF reader, not as an invalid safetensors file.
        let mut magic = [0u8; 4];
        let is_gguf = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
            || (std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
                && &magic == b"GGUF");
        if is_gguf {
            Ok(Checkpoint::Gguf(GgufFile::open(path)?))
        } else {
            Ok(Checkpoint::Safetensors {
                files: vec![SafetensorsFile::open(path)?],
                hf_config: None,
                meta_params: None,
            })
        }
    }

    /// Opens a model directory through the io crate's resolution, which only opens plain
    /// file names inside the directory (see [`ModelDir`]).
    fn open_dir(dir: &Path) -> Result<Self, CliError> {
        let resolved = ModelDir::open(dir)?;
        let config = |path: Option<&Path>| -> Result<Option<(PathBuf, String)>, CliError> {
            path.map(|p| Ok((p.to_path_buf(), read(p)?))).transpose()
        };
        match resolved.weights() {
            WeightFiles::Gguf(path) => Ok(Checkpoint::Gguf(GgufFile::open(path)?)),
            WeightFiles::Safetensors { files, .. } => {
                let files = files
                    .iter()
                    .map(SafetensorsFile::open)
                    .collect::<Result<Vec<_>, _>>()?;
                // One name in two files: which one is meant is not guessed.
                let mut seen = std::collections::BTreeMap::new();
                for (i, file) in files.iter().enumerate() {
                    for t in file.tensors() {
                        if let Some(first) = seen.insert(t.name.clone(), i) {
                            return fail(format!(
                                "tensor `{}` is in both {} and {}",
                                t.name,
                                files[first]
                                    .path()
                                    .map_or("?".into(), |p| p.display().to_string()),
                                file.path().map_or("?".into(), |p| p.display().to_string()),
                            ));
                        }
                    }
                }
                Ok(Checkpoint::Safetensors {
                    files,
                    hf_config: config(resolved.config_json())?,
                    meta_params: config(resolved.params_json())?,
                })
            }
        }
    }

    /// `safetensors`, `gguf` or `directory`.
    pub fn format(&self, path: &Path) -> &'static str {
        match self {
            Checkpoint::Gguf(_) => "gguf",
            Checkpoint::Safetensors { .. } if path.is_dir() => "directory",
            Checkpoint::Safetensors { .. } => "safetensors",
        }
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> Vec<TensorRow> {
        let mut rows: Vec<TensorRow> = match self {
            Checkpoint::Safetensors { files, .. } => files
                .iter()
                .flat_map(|f| f.tensors().iter())
                .map(|t| TensorRow {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    dtype: t.dtype.clone(),
                })
                .collect(),
            Checkpoint::Gguf(f) => f
                .tensors()
                .iter()
                .map(|t| TensorRow {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    dtype: t.ggml_type.name(),
                })
                .collect(),
        };
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    fn has(&self, name: &str) -> bool {
        self.tensors().iter().any(|t| t.name == name)
    }

    /// The embedding table's name: `requested`, or the model spec's name (else the first
    /// known name) present.
    pub fn embedding_name(&self, requested: Option<&str>) -> Result<String, CliError> {
        if let Some(name) = requested {
            return if self.has(name) {
                Ok(name.to_owned())
            } else {
                fail(format!(
                    "no tensor `{name}` in the checkpoint; run `tokenloom inspect` to list them"
                ))
            };
        }
        let spec_names = self.spec().ok().flatten().map(|s| s.tensors.embedding);
        let names: Vec<String> =
            spec_names.unwrap_or_else(|| EMBEDDING_NAMES.iter().map(|&n| n.to_owned()).collect());
        names.iter().find(|n| self.has(n)).cloned().ok_or_else(|| {
            CliError(format!(
                "no embedding table under a known name ({}); pass --tensor NAME",
                names.join(", ")
            ))
        })
    }

    /// Loads a tensor as f32.
    pub fn load_f32(&self, name: &str) -> Result<Tensor<f32>, CliError> {
        match self {
            Checkpoint::Safetensors { files, .. } => {
                let file = files
                    .iter()
                    .find(|f| f.info(name).is_ok())
                    .ok_or_else(|| CliError(format!("no tensor `{name}` in the checkpoint")))?;
                file.refuse_scaled_fp8(name, |s| files.iter().any(|f| f.info(s).is_ok()))?;
                Ok(file.load::<f32>(name)?)
            }
            Checkpoint::Gguf(f) => Ok(f.load::<f32>(name)?),
        }
    }

    /// The table `name`, as `(vocab_size, n_embd)`: a block-quantized GGUF tensor stays
    /// quantized (rows decoded when read), anything else is read into `f32`.
    pub fn table(&self, name: &str) -> Result<Table, CliError> {
        if let Checkpoint::Gguf(f) = self
            && f.info(name)?.ggml_type.is_quantized()
        {
            return Ok(Table::Quantized(QuantizedEmbedding::from_gguf(f, name)?));
        }
        let table = self.load_f32(name)?;
        if table.shape().rank() != 2 {
            return fail(format!(
                "tensor `{name}` has shape {}, not (vocab_size, n_embd)",
                table.shape()
            ));
        }
        Ok(Table::Dense(table))
    }

    /// The checkpoint's tokenizer and token strings: `tokenizer` when given, else a GGUF
    /// file's vocabulary (and its tokenizer, built only when `encodes_text`) or a model
    /// directory's `tokenizer.json`.
    pub fn token_names(
        &self,
        path: &Path,
        tokenizer: Option<&Path>,
        encodes_text: bool,
    ) -> Result<TokenNames, CliError> {
        if let Some(file) = tokenizer {
            return TokenNames::from_file(file);
        }
        match self {
            Checkpoint::Gguf(file) => Ok(TokenNames::from_gguf(file, encodes_text)),
            Checkpoint::Safetensors { .. } if path.is_dir() => TokenNames::from_dir(path),
            Checkpoint::Safetensors { .. } => Ok(TokenNames::none(format!(
                "{} is a single safetensors file without a tokenizer (pass --tokenizer FILE)",
                path.display()
            ))),
        }
    }

    /// The untied head's name, if the checkpoint has one (the model spec's names, else
    /// the common ones).
    pub fn head_name(&self) -> Option<String> {
        let names: Vec<String> = match self.spec().ok().flatten() {
            Some(spec) => spec.tensors.head,
            None => HEAD_NAMES.iter().map(|&n| n.to_owned()).collect(),
        };
        names.into_iter().find(|n| self.has(n))
    }

    /// The model spec of the checkpoint's own metadata: `Ok(None)` for a bare safetensors
    /// file (nothing says), `Err` for metadata the spec refuses.
    pub fn spec(&self) -> Result<Option<ModelSpec>, DecoderInputError> {
        match self {
            Checkpoint::Gguf(f) => ModelSpec::from_gguf(f).map(Some),
            Checkpoint::Safetensors {
                hf_config: Some((path, text)),
                ..
            } => ModelSpec::from_hf_json(text, path).map(Some),
            Checkpoint::Safetensors {
                meta_params: Some((path, text)),
                ..
            } => ModelSpec::from_meta_json(text, path).map(Some),
            Checkpoint::Safetensors { .. } => Ok(None),
        }
    }

    /// The architecture and what it puts before the first block, from the checkpoint's
    /// own metadata; `None` for a bare safetensors file (nothing says). An architecture
    /// the spec does not know is reported as unknown (the tensors are still listed).
    pub fn architecture(&self) -> Result<Option<ArchitectureReport>, CliError> {
        let spec = match self.spec() {
            Ok(Some(spec)) => spec,
            Ok(None) => return Ok(None),
            Err(
                DecoderInputError::UnknownModelType { architecture, .. }
                | DecoderInputError::UnknownArchitecture { architecture, .. },
            ) => {
                return Ok(Some(ArchitectureReport {
                    architecture,
                    positions: PositionsReport::Unknown,
                    head: HeadReport::Unknown,
                }));
            }
            // The metadata is there but the spec refuses part of it (a NaN base, a key of
            // the wrong type): the tensors are still listed, and the reason is reported.
            Err(e) => {
                return Ok(Some(ArchitectureReport {
                    architecture: match self {
                        Checkpoint::Gguf(f) => f
                            .get("general.architecture")
                            .and_then(GgufValue::as_str)
                            .unwrap_or("(no general.architecture)")
                            .to_owned(),
                        _ => "(config not understood)".to_owned(),
                    },
                    positions: PositionsReport::Invalid(e.to_string()),
                    head: HeadReport::Unknown,
                }));
            }
        };
        let head = match spec.head {
            OutputHead::Tied => HeadReport::Tied,
            OutputHead::Untied => HeadReport::Untied,
            _ => HeadReport::None,
        };
        let architecture = match self {
            Checkpoint::Safetensors {
                meta_params: Some(_),
                hf_config: None,
                ..
            } => "llama (Meta params.json)".to_owned(),
            Checkpoint::Gguf(f) => f
                .get("general.architecture")
                .and_then(GgufValue::as_str)
                .unwrap_or(spec.architecture.name())
                .to_owned(),
            _ => spec.architecture.name().to_owned(),
        };
        let positions = match (&spec.absolute_positions, spec.family()) {
            (Some(AbsolutePositions::Learned { .. }), _) | (None, ModelFamily::BertEncoder) => {
                self.learned(&spec.tensors.positions)
            }
            _ => PositionsReport::Rope(Box::new(spec)),
        };
        Ok(Some(ArchitectureReport {
            architecture,
            positions,
            head,
        }))
    }

    /// The shape of the first tensor of `names` the checkpoint holds.
    fn first_shape(&self, names: &[String]) -> Option<(String, Vec<usize>)> {
        let tensors = self.tensors();
        names.iter().find_map(|n| {
            tensors
                .iter()
                .find(|t| t.name == *n)
                .map(|t| (t.name.clone(), t.shape.clone()))
        })
    }

    /// Learned absolute positions from the first of `names` present.
    fn learned(&self, names: &[String]) -> PositionsReport {
        match self.first_shape(names) {
            Some((tensor, shape)) => PositionsReport::Learned {
                max_positions: shape.first().copied().unwrap_or(0),
                tensor,
            },
            None => PositionsReport::Missing {
                expected: names.join(" or "),
            },
        }
    }
}

/// What a checkpoint's architecture puts before the first block.
pub struct ArchitectureReport {
    /// `model_type` (HF), `general.architecture` (GGUF).
    pub architecture: String,
    /// How positions enter.
    pub positions: PositionsReport,
    /// The output head.
    pub head: HeadReport,
}

/// How positions enter the model.
pub enum PositionsReport {
    /// Rotary, inside attention: the model spec, with every layer's treatment.
    Rope(Box<ModelSpec>),
    /// A learned table added to the embeddings.
    Learned {
        /// Its tensor.
        tensor: String,
        /// Its rows.
        max_positions: usize,
    },
    /// The architecture has learned positions, but the tensor is not in the checkpoint.
    Missing {
        /// The names looked for.
        expected: String,
    },
    /// An architecture tokenloom does not know: nothing is reported.
    Unknown,
    /// Metadata the model spec refuses, and why.
    Invalid(String),
}

/// The output head.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HeadReport {
    /// Shares the token table.
    Tied,
    /// Its own weight.
    Untied,
    /// No language-model head (an encoder).
    None,
    /// Not known (unknown architecture).
    Unknown,
}

impl HeadReport {
    /// `tied`, `untied`, `none` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            HeadReport::Tied => "tied",
            HeadReport::Untied => "untied",
            HeadReport::None => "none",
            HeadReport::Unknown => "unknown",
        }
    }
}

/// Reads a model config file, HF `config.json` or Meta `params.json`, into its spec.
pub fn read_model_config(path: &Path) -> Result<ModelSpec, CliError> {
    Ok(ModelSpec::read(path)?)
}
