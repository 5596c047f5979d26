//! `tokenloom inspect`.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenloom_decoder_input::{EmbeddingScale, ModelSpec};

use super::{emit, mib, shape_str};
use crate::checkpoint::{Checkpoint, HeadReport, PositionsReport, TensorRow};
use crate::error::CliError;
use crate::table::Table;

/// Tensor names, shapes and dtypes; the embedding table's size, row-norm statistics
/// and all-zero rows; whether the head is tied; the position settings.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  tokenloom inspect model.safetensors\n  tokenloom inspect ./model-dir --json\n  tokenloom inspect model.gguf --tensor token_embd.weight"
)]
pub struct InspectArgs {
    /// A safetensors file, a GGUF file, or a model directory.
    pub path: PathBuf,
    /// The embedding tensor's name (default: the first known name present).
    #[arg(long)]
    pub tensor: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `inspect` reports about a table's rows.
struct TableStats {
    /// Min, mean and max row norm over the finite rows (`None` when there is none).
    norms: Option<(f64, f64, f64)>,
    zero_rows: Vec<usize>,
    /// Rows holding a NaN or an infinity.
    non_finite_rows: Vec<usize>,
}

/// Row-norm statistics, all-zero rows and non-finite rows of a `(vocab_size, n_embd)`
/// table. Non-finite rows are counted apart, so one NaN does not turn every statistic
/// into NaN.
fn table_stats(table: &Table) -> Result<TableStats, CliError> {
    let mut norms = Vec::with_capacity(table.vocab_size());
    let mut zero_rows = Vec::new();
    let mut non_finite_rows = Vec::new();
    table.for_each_row(|i, row| {
        if row.iter().any(|x| !x.is_finite()) {
            non_finite_rows.push(i);
            return;
        }
        if row.iter().all(|&x| x == 0.0) {
            zero_rows.push(i);
        }
        norms.push(
            row.iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt(),
        );
    })?;
    let stats = (!norms.is_empty()).then(|| {
        let min = norms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = norms.iter().copied().fold(0.0, f64::max);
        let mean = norms.iter().sum::<f64>() / norms.len() as f64;
        (min, mean, max)
    });
    Ok(TableStats {
        norms: stats,
        zero_rows,
        non_finite_rows,
    })
}

/// RoPE settings as JSON, in the spellings of `config.json`: the layout as in the text
/// output, the scaling as HuggingFace's `rope_parameters` (`{"rope_type": "llama3", …}`).
fn rope_json(rope: &tokenloom_positions::RopeConfig) -> Value {
    json!({
        "head_dim": rope.head_dim,
        "rotary_dim": rope.rotary_dim,
        "theta": rope.theta,
        "layout": rope.layout.name(),
        "scaling": rope.scaling.to_hf_parameters(),
    })
}

/// The positions of an architecture as JSON: `{"kind": "rope", …}`, `{"kind":
/// "learned", "max_positions", "tensor"}`, or `null` when not known.
fn report_json(report: &PositionsReport) -> Option<Value> {
    match report {
        PositionsReport::Rope(p) => Some(positions_json(p)),
        PositionsReport::Learned {
            tensor,
            max_positions,
        } => Some(json!({"kind": "learned", "max_positions": max_positions, "tensor": tensor})),
        PositionsReport::Missing { expected } => {
            Some(json!({"kind": "learned", "max_positions": null, "missing_tensor": expected}))
        }
        PositionsReport::Unknown => None,
        PositionsReport::Invalid(error) => Some(json!({"kind": "invalid", "error": error})),
    }
}

/// The model spec as JSON: the main RoPE, head counts, context, every group of layers,
/// the embedding and logit transforms.
fn positions_json(spec: &ModelSpec) -> Value {
    let layers: Vec<Value> = spec
        .layer_groups()
        .into_iter()
        .map(|(layers, l)| {
            json!({
                "layers": layers,
                "attention": l.attention,
                "rope": l.rope.as_ref().map(rope_json),
                "deinterleave_output": l.deinterleave_output,
                "q_scale": l.q_scale,
                "mrope_section": l.mrope_section,
            })
        })
        .collect();
    json!({
        "kind": "rope",
        "rope": spec.main_rope().map(rope_json),
        "n_heads": spec.n_heads,
        "n_kv_heads": spec.n_kv_heads,
        "n_layers": spec.n_layers,
        "max_position_embeddings": spec.max_positions,
        "layers": layers,
        "embedding_scale": spec.embedding_scale,
        "logits": spec.logits,
    })
}

/// Runs `tokenloom inspect`.
pub fn run(args: InspectArgs) -> Result<(), CliError> {
    let InspectArgs { path, tensor, json } = args;
    let (path, tensor) = (path.as_path(), tensor.as_deref());
    let checkpoint = Checkpoint::open(path)?;
    let tensors = checkpoint.tensors();
    let embedding = match checkpoint.embedding_name(tensor) {
        Ok(name) => {
            let table = checkpoint.table(&name)?;
            let stats = table_stats(&table)?;
            let dtype = tensors
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.dtype.clone());
            Some(json!({
                "name": name,
                "vocab_size": table.vocab_size(),
                "n_embd": table.n_embd(),
                "dtype": dtype,
                "quantized": matches!(table, Table::Quantized(_)),
                "bytes_in_memory": table.bytes_in_memory(),
                "f32_bytes": table.vocab_size() * table.n_embd() * 4,
                "row_norm": stats.norms.map(|(min, mean, max)| json!({"min": min, "mean": mean, "max": max})),
                "zero_row_count": stats.zero_rows.len(),
                "zero_rows": stats.zero_rows.iter().take(100).collect::<Vec<_>>(),
                "non_finite_row_count": stats.non_finite_rows.len(),
                "non_finite_rows": stats.non_finite_rows.iter().take(100).collect::<Vec<_>>(),
            }))
        }
        Err(_) if tensor.is_none() => None,
        Err(e) => return Err(e),
    };
    let architecture = checkpoint.architecture()?;
    let head = architecture.as_ref().map_or_else(
        || {
            if checkpoint.head_name().is_some() {
                HeadReport::Untied
            } else {
                HeadReport::Tied
            }
        },
        |a| a.head,
    );
    let positions = architecture.as_ref().map(|a| &a.positions);
    let value = json!({
        "path": path.display().to_string(),
        "format": checkpoint.format(path),
        "architecture": architecture.as_ref().map(|a| a.architecture.clone()),
        "tensor_count": tensors.len(),
        "tensors": tensors,
        "embedding": embedding,
        "head_tensor": checkpoint.head_name(),
        "output_head": head.name(),
        "tied": head == HeadReport::Tied,
        "positions": positions.and_then(report_json),
    });
    emit(json, &value, || {
        let mut out = format!(
            "{} ({}), {} tensors\n",
            path.display(),
            checkpoint.format(path),
            tensors.len()
        );
        // Capped: a name of 65,536 bytes or more would overflow the formatter's width
        // (a panic); longer names simply push their row's columns to the right.
        let width = tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 80);
        out += &format!("  {:<width$}  {:<8}  shape\n", "name", "dtype");
        for TensorRow { name, shape, dtype } in &tensors {
            out += &format!("  {name:<width$}  {dtype:<8}  {}\n", shape_str(shape));
        }
        match &value["embedding"] {
            Value::Null => out += "embedding: no table under a known name (pass --tensor NAME)\n",
            e => {
                let ids = |key: &str| -> String {
                    let rows = e[key].as_array().map_or(&[][..], |rows| &rows[..]);
                    let mut shown: Vec<String> =
                        rows.iter().take(10).map(ToString::to_string).collect();
                    if rows.len() > 10 {
                        shown.push("…".to_owned());
                    }
                    shown.join(", ")
                };
                out += &format!(
                    "embedding: {} vocab_size {} n_embd {}\n",
                    e["name"].as_str().unwrap_or_default(),
                    e["vocab_size"],
                    e["n_embd"],
                );
                out += &format!(
                    "  stored as {}: {} in memory{}\n",
                    e["dtype"].as_str().unwrap_or("?"),
                    mib(&e["bytes_in_memory"]),
                    if e["quantized"] == true {
                        format!(" (kept quantized; {} as f32)", mib(&e["f32_bytes"]))
                    } else {
                        String::new()
                    }
                );
                out += &match &e["row_norm"] {
                    Value::Null if e["vocab_size"] == 0 => {
                        "  the table is empty: no rows\n".to_owned()
                    }
                    Value::Null => "  row norms: no finite row\n".to_owned(),
                    n => format!(
                        "  row norms min {:.6} mean {:.6} max {:.6}{}\n",
                        n["min"].as_f64().unwrap_or_default(),
                        n["mean"].as_f64().unwrap_or_default(),
                        n["max"].as_f64().unwrap_or_default(),
                        if e["non_finite_row_count"] == 0 {
                            ""
                        } else {
                            " (finite rows only)"
                        }
                    ),
                };
                out += &format!(
                    "  all-zero rows: {} [{}]\n",
                    e["zero_row_count"],
                    ids("zero_rows")
                );
                if e["non_finite_row_count"] != 0 {
                    out += &format!(
                        "  rows with NaN or infinity: {} [{}]\n",
                        e["non_finite_row_count"],
                        ids("non_finite_rows")
                    );
                }
            }
        }
        if let Some(a) = &architecture {
            out += &format!("architecture: {}\n", a.architecture);
        }
        out += &match head {
            HeadReport::None => "output head: none (an encoder)\n".to_owned(),
            HeadReport::Unknown => {
                "output head: unknown (an architecture tokenloom does not know)\n".to_owned()
            }
            _ => format!("tied output head: {}\n", value["tied"]),
        };
        match positions {
            Some(PositionsReport::Learned {
                tensor,
                max_positions,
            }) => {
                out += &format!(
                    "positions: learned absolute, {max_positions} positions ({tensor}), added to the embeddings\n"
                );
            }
            Some(PositionsReport::Missing { expected }) => {
                out +=
                    &format!("positions: learned absolute, but the checkpoint has no {expected}\n");
            }
            Some(PositionsReport::Unknown) => {
                out += "positions: unknown (an architecture tokenloom does not know; nothing assumed)\n";
            }
            Some(PositionsReport::Invalid(error)) => {
                out += &format!("positions: not understood, nothing assumed: {error}\n");
            }
            _ => {}
        }
        if let Some(PositionsReport::Rope(spec)) = positions {
            if let Some(rope) = spec.main_rope() {
                out += &format!(
                    "positions: RoPE {} head_dim {} rotary_dim {} theta {} scaling {}; heads {} / kv heads {}; max positions {}\n",
                    rope.layout.name(),
                    rope.head_dim,
                    rope.rotary_dim,
                    rope.theta,
                    rope.scaling,
                    spec.n_heads,
                    spec.n_kv_heads,
                    spec.max_positions
                );
            }
            if spec.layer_groups().len() > 1 {
                for line in spec.describe_layers() {
                    out += &format!("  {line}\n");
                }
            }
            out += &format!(
                "embedding scale: {}; logits: {}\n",
                match spec.embedding_scale {
                    Some(EmbeddingScale::SqrtNEmbd) => format!("sqrt(n_embd {})", spec.n_embd),
                    Some(EmbeddingScale::Multiplier(m)) => format!("x {m}"),
                    _ => "none".to_owned(),
                },
                spec.logits.describe()
            );
        }
        out
    });
    Ok(())
}
