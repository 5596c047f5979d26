//! Opening a checkpoint given on the command line: a safetensors file, a GGUF file, or a
//! model directory (config.json + model.safetensors or sharded safetensors).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenloom_decoder_input::architecture::{
    ModelFamily, gguf_absolute_family, hf_model_family, tensor_names,
};
use tokenloom_decoder_input::{HfModelConfig, gguf_rope_settings, gguf_rope_type};
use tokenloom_embedding::QuantizedEmbedding;
use tokenloom_io::{GgufFile, GgufValue, ModelDir, SafetensorsFile, WeightFiles};
use tokenloom_positions::{AttentionConfig, parse_hf_config, parse_meta_params};
use tokenloom_tensor::Tensor;

use crate::error::{CliError, fail};
use crate::table::Table;
use crate::tokens::TokenNames;

/// Names under which common checkpoints store the token-embedding table, tried in order.
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

/// Names of an untied output head.
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

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError(format!("{}: {e}", path.display())))
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
            WeightFiles::Safetensors { files, .. } => Ok(Checkpoint::Safetensors {
                files: files
                    .iter()
                    .map(SafetensorsFile::open)
                    .collect::<Result<Vec<_>, _>>()?,
                hf_config: config(resolved.config_json())?,
                meta_params: config(resolved.params_json())?,
            }),
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

    /// The embedding table's name: `requested`, or the first known name present.
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
        EMBEDDING_NAMES
            .iter()
            .find(|n| self.has(n))
            .map(|n| (*n).to_owned())
            .ok_or_else(|| {
                CliError(format!(
                    "no embedding table under a known name ({}); pass --tensor NAME",
                    EMBEDDING_NAMES.join(", ")
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
    /// file's vocabulary or a model directory's `tokenizer.json`.
    pub fn token_names(
        &self,
        path: &Path,
        tokenizer: Option<&Path>,
    ) -> Result<TokenNames, CliError> {
        if let Some(file) = tokenizer {
            return TokenNames::from_file(file);
        }
        match self {
            Checkpoint::Gguf(file) => Ok(TokenNames::from_gguf(file)),
            Checkpoint::Safetensors { .. } if path.is_dir() => TokenNames::from_dir(path),
            Checkpoint::Safetensors { .. } => Ok(TokenNames::none(format!(
                "{} is a single safetensors file without a tokenizer (pass --tokenizer FILE)",
                path.display()
            ))),
        }
    }

    /// The untied head's name, if the checkpoint has one.
    pub fn head_name(&self) -> Option<String> {
        HEAD_NAMES
            .iter()
            .find(|n| self.has(n))
            .map(|n| (*n).to_owned())
    }

    /// The architecture and what it puts before the first block, from the checkpoint's
    /// own metadata; `None` for a bare safetensors file (nothing says).
    pub fn architecture(&self) -> Result<Option<ArchitectureReport>, CliError> {
        match self {
            Checkpoint::Gguf(f) => gguf_architecture(f).map(Some),
            Checkpoint::Safetensors {
                hf_config: Some((path, text)),
                ..
            } => hf_architecture(self, path, text).map(Some),
            Checkpoint::Safetensors {
                meta_params: Some((path, text)),
                ..
            } => Ok(Some(ArchitectureReport {
                architecture: "llama (Meta params.json)".to_owned(),
                positions: PositionsReport::Rope(Box::new(
                    parse_meta_params(text)
                        .map_err(|e| CliError(format!("{}: {e}", path.display())))?,
                )),
                head: if self.head_name().is_some() {
                    HeadReport::Untied
                } else {
                    HeadReport::Tied
                },
            })),
            Checkpoint::Safetensors { .. } => Ok(None),
        }
    }

    /// The shape of the first tensor of `names` the checkpoint holds.
    fn first_shape(&self, names: &[&str]) -> Option<(String, Vec<usize>)> {
        let tensors = self.tensors();
        names.iter().find_map(|n| {
            tensors
                .iter()
                .find(|t| t.name == *n)
                .map(|t| (t.name.clone(), t.shape.clone()))
        })
    }

    /// Learned absolute positions from the first of `names` present.
    fn learned(&self, names: &[&str]) -> PositionsReport {
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
    /// Rotary, inside attention.
    Rope(Box<AttentionConfig>),
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

fn gguf_architecture(file: &GgufFile) -> Result<ArchitectureReport, CliError> {
    let architecture = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("(no general.architecture)")
        .to_owned();
    let tied = file.info("output.weight").is_err();
    let head = if tied {
        HeadReport::Tied
    } else {
        HeadReport::Untied
    };
    let checkpoint_positions = |names: &[&str]| -> PositionsReport {
        names.iter().find_map(|n| file.info(n).ok()).map_or(
            PositionsReport::Missing {
                expected: names.join(" or "),
            },
            |t| PositionsReport::Learned {
                tensor: t.name.clone(),
                max_positions: t.shape.first().copied().unwrap_or(0),
            },
        )
    };
    Ok(match gguf_absolute_family(&architecture) {
        Some(ModelFamily::BertEncoder) => ArchitectureReport {
            architecture,
            positions: checkpoint_positions(tensor_names::BERT_POSITION),
            head: HeadReport::None,
        },
        Some(_) => ArchitectureReport {
            architecture,
            positions: checkpoint_positions(tensor_names::GPT2_POSITION),
            head,
        },
        None if gguf_rope_type(&architecture).is_some() => ArchitectureReport {
            architecture,
            positions: PositionsReport::Rope(Box::new(gguf_rope_settings(file)?)),
            head,
        },
        None => ArchitectureReport {
            architecture,
            positions: PositionsReport::Unknown,
            head: HeadReport::Unknown,
        },
    })
}

fn hf_architecture(
    checkpoint: &Checkpoint,
    path: &Path,
    text: &str,
) -> Result<ArchitectureReport, CliError> {
    let config = HfModelConfig::parse(text, path)?;
    let architecture = config
        .model_type()
        .unwrap_or_else(|| "(no model_type)".to_owned());
    let tie = config
        .tie_word_embeddings
        .unwrap_or_else(|| checkpoint.head_name().is_none());
    let head = if tie {
        HeadReport::Tied
    } else {
        HeadReport::Untied
    };
    Ok(match hf_model_family(&architecture) {
        Some(ModelFamily::RopeDecoder) => ArchitectureReport {
            positions: PositionsReport::Rope(Box::new(config.attention()?)),
            architecture,
            head,
        },
        Some(ModelFamily::BertEncoder) => ArchitectureReport {
            positions: checkpoint.learned(tensor_names::BERT_POSITION),
            architecture,
            head: HeadReport::None,
        },
        Some(ModelFamily::Gpt2Decoder) => ArchitectureReport {
            positions: checkpoint.learned(tensor_names::GPT2_POSITION),
            architecture,
            head: HeadReport::Tied,
        },
        None => ArchitectureReport {
            architecture,
            positions: PositionsReport::Unknown,
            head: HeadReport::Unknown,
        },
    })
}

/// Reads a model config file: HF `config.json` or Meta `params.json` (by content: Meta's
/// has `dim` and `n_heads`).
pub fn read_model_config(path: &Path) -> Result<AttentionConfig, CliError> {
    let text = read(path)?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    let settings = if json.get("n_heads").is_some() && json.get("dim").is_some() {
        parse_meta_params(&text)
    } else {
        parse_hf_config(&text)
    };
    settings.map_err(|e| CliError(format!("{}: {e}", path.display())))
}
