//! `tokenloom rope`.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenloom_positions::cos_sin;

use super::{LayoutArg, emit};
use crate::checkpoint::read_model_config;
use crate::error::{CliError, fail};

/// Inverse frequencies and cos/sin at given positions, with the config's scaling.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  tokenloom rope --config config.json --positions 0,1,100000\n  tokenloom rope --config params.json --positions 8191,8192 --layout interleaved --json"
)]
pub struct RopeArgs {
    /// A HuggingFace config.json or a Meta params.json.
    #[arg(long)]
    pub config: PathBuf,
    /// Comma-separated positions.
    #[arg(long, value_delimiter = ',', required = true)]
    pub positions: Vec<usize>,
    /// Override the pair layout.
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// Sequence length for dynamic NTK / LongRoPE (default: largest position + 1).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tokenloom rope`.
pub fn run(args: RopeArgs) -> Result<(), CliError> {
    let RopeArgs {
        config,
        positions,
        layout,
        seq_len,
        json,
    } = args;
    let config = config.as_path();
    let spec = read_model_config(config)?;
    let mut rope = spec.main_rope().cloned().ok_or_else(|| {
        CliError(format!(
            "{}: {} has no rotary positions",
            config.display(),
            spec.architecture.name()
        ))
    })?;
    if let Some(layout) = layout {
        rope.layout = layout.into();
    }
    // Context-dependent scalings (dynamic NTK, LongRoPE) use the longest sequence served;
    // by default the largest position asked for + 1, as HuggingFace does for a batch.
    let needed = positions.iter().max().map_or(1, |p| p.saturating_add(1));
    let seq_len = seq_len.unwrap_or(needed);
    if seq_len < needed {
        return fail(format!(
            "--seq-len {seq_len} is shorter than position {} asked for: the frequencies of a {seq_len}-token sequence do not cover it (give --seq-len {needed} or more)",
            needed - 1
        ));
    }
    let inv_freq = rope.inv_freq(seq_len)?;
    let attention_factor = rope.attention_factor();
    let tables: Vec<Value> = positions
        .iter()
        .map(|&p| {
            let (cos, sin): (Vec<f64>, Vec<f64>) = inv_freq
                .iter()
                .map(|&f| cos_sin(p, f, attention_factor))
                .unzip();
            json!({"position": p, "cos": cos, "sin": sin})
        })
        .collect();
    let value = json!({
        "config": config.display().to_string(),
        "layout": rope.layout.name(),
        "head_dim": rope.head_dim,
        "rotary_dim": rope.rotary_dim,
        "theta": rope.theta,
        "scaling": rope.scaling.to_hf_parameters(),
        "seq_len": seq_len,
        "attention_factor": attention_factor,
        "inv_freq": inv_freq,
        "positions": tables,
    });
    emit(json, &value, || {
        let mut text = format!(
            "RoPE {} head_dim {} rotary_dim {} theta {} scaling {} (seq_len {seq_len}), attention factor {attention_factor}\n",
            rope.layout.name(),
            rope.head_dim,
            rope.rotary_dim,
            rope.theta,
            rope.scaling
        );
        // Fixed-width columns: every header is as wide as the values below it.
        text += &format!("  {:>4}  {:<13}", "pair", "inv_freq");
        for p in &positions {
            text += &format!("  {:<16} {:<16}", format!("cos@{p}"), format!("sin@{p}"));
        }
        text += "\n";
        for (i, f) in inv_freq.iter().enumerate() {
            text += &format!("  {i:>4}  {:<13}", format!("{f:.6e}"));
            for t in &tables {
                text += &format!(
                    "  {:<16} {:<16}",
                    format!("{:+.9}", t["cos"][i].as_f64().unwrap_or(f64::NAN)),
                    format!("{:+.9}", t["sin"][i].as_f64().unwrap_or(f64::NAN))
                );
            }
            text += "\n";
        }
        text
    });
    Ok(())
}
