//! `tokenloom convert-layout`.

use std::path::PathBuf;

use serde_json::json;
use tokenloom_io::{RawTensor, SafetensorsFile, safetensors_dtype_size, write_raw_safetensors};
use tokenloom_positions::{RopeLayout, convert_qk_layout};
use tokenloom_tensor::TensorView;

use super::{LayoutArg, canonical_output, emit, shape_str};
use crate::error::{CliError, fail};

/// Permute q/k projection rows between RoPE layouts; other tensors are copied
/// unchanged. Writes OUT atomically and never overwrites IN.
///
/// Which layout a checkpoint is in: HuggingFace safetensors are half-split; Meta's
/// consolidated checkpoints are interleaved. GGUF files keep each architecture's own
/// layout (llama.cpp's rope type, as `tokenloom inspect` reports it): `llama`,
/// `deepseek2`, `granite` and the other NORM families are interleaved; `qwen2`,
/// `phi3`, `gemma3` and the other NEOX families are half-split and need no conversion
/// to be used with HuggingFace-style RoPE.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  tokenloom convert-layout meta.safetensors hf.safetensors --to half-split --n-heads 32 --n-kv-heads 8\n  tokenloom convert-layout hf.safetensors meta.safetensors --to interleaved --n-heads 9 --n-kv-heads 3 --q-tensor wq --k-tensor wk"
)]
pub struct ConvertLayoutArgs {
    /// The input safetensors file.
    pub input: PathBuf,
    /// The output safetensors file.
    pub output: PathBuf,
    /// The layout to convert to (the input is in the other one).
    #[arg(long, value_enum)]
    pub to: LayoutArg,
    /// Query heads.
    #[arg(long)]
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention).
    #[arg(long)]
    pub n_kv_heads: usize,
    /// Head dimension (default: rows / heads).
    #[arg(long)]
    pub head_dim: Option<usize>,
    /// Rotated dimensions per head (default: head_dim).
    #[arg(long)]
    pub rotary_dim: Option<usize>,
    /// A query tensor to convert (repeatable; default: every *q_proj.weight/bias).
    #[arg(long = "q-tensor")]
    pub q_tensors: Vec<String>,
    /// A key tensor to convert (repeatable; default: every *k_proj.weight/bias).
    #[arg(long = "k-tensor")]
    pub k_tensors: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tokenloom convert-layout`.
pub fn run(args: ConvertLayoutArgs) -> Result<(), CliError> {
    let ConvertLayoutArgs {
        input,
        output,
        to,
        n_heads,
        n_kv_heads,
        head_dim,
        rotary_dim,
        q_tensors,
        k_tensors,
        json,
    } = args;
    let (input, output) = (input.as_path(), output.as_path());
    let to = RopeLayout::from(to);
    let canonical_in = input
        .canonicalize()
        .map_err(|e| CliError(format!("{}: {e}", input.display())))?;
    let canonical_out = canonical_output(output)?;
    if canonical_in == canonical_out {
        return fail(
            "OUT is the same file as IN: refusing to overwrite the input; write to another path",
        );
    }
    for (name, value) in [("n_heads", n_heads), ("n_kv_heads", n_kv_heads)] {
        if value == 0 {
            return fail(format!("--{} must be at least 1", name.replace('_', "-")));
        }
    }
    if let Some(0) = head_dim {
        return fail("--head-dim must be at least 1");
    }
    let from = match to {
        RopeLayout::HalfSplit => RopeLayout::Interleaved,
        RopeLayout::Interleaved => RopeLayout::HalfSplit,
        other => {
            return fail(format!(
                "no checkpoint conversion to the {other:?} pair layout"
            ));
        }
    };
    let file = SafetensorsFile::open(input)?;
    let is_q = |n: &str| {
        n.ends_with("q_proj.weight") || n.ends_with("q_proj.bias") || n.ends_with("attn_q.weight")
    };
    let is_k = |n: &str| {
        n.ends_with("k_proj.weight") || n.ends_with("k_proj.bias") || n.ends_with("attn_k.weight")
    };
    let (q_names, k_names) = if q_tensors.is_empty() && k_tensors.is_empty() {
        let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
        (
            names
                .iter()
                .filter(|n| is_q(n))
                .cloned()
                .collect::<Vec<_>>(),
            names
                .iter()
                .filter(|n| is_k(n))
                .cloned()
                .collect::<Vec<_>>(),
        )
    } else {
        (q_tensors, k_tensors)
    };
    if q_names.is_empty() && k_names.is_empty() {
        return fail(
            "no q/k projection tensors found (*.q_proj.weight, *.k_proj.weight); name them with --q-tensor / --k-tensor",
        );
    }
    let mut converted = Vec::new();
    let mut raw = Vec::new();
    for info in file.tensors() {
        let bytes = file.raw_bytes(&info.name)?;
        let heads = if q_names.contains(&info.name) {
            Some((n_heads, "n_heads", "q projection"))
        } else if k_names.contains(&info.name) {
            Some((n_kv_heads, "n_kv_heads", "k projection"))
        } else {
            None
        };
        let data = match heads {
            None => bytes.to_vec(),
            Some((heads, heads_name, what)) => {
                let shape = shape_str(&info.shape);
                let rows = info.shape.first().copied().unwrap_or(0);
                let head_dim = head_dim.unwrap_or(rows / heads);
                let rotary_dim = rotary_dim.unwrap_or(head_dim);
                if info.shape.is_empty()
                    || info.shape.len() > 2
                    || heads * head_dim != rows
                    || rows == 0
                {
                    return fail(format!(
                        "{what} `{}` of shape {shape} has {rows} rows, not {heads_name} {heads} × head_dim {head_dim}",
                        info.name
                    ));
                }
                let element = safetensors_dtype_size(&info.dtype)?;
                let row_bytes = bytes.len() / rows;
                if row_bytes % element != 0 {
                    return fail(format!(
                        "{what} `{}` of shape {shape}: {} bytes do not split into {rows} rows of {}",
                        info.name,
                        bytes.len(),
                        info.dtype
                    ));
                }
                // Permute whole rows as byte strings: exact for every dtype.
                let view = TensorView::new(bytes, &[rows, row_bytes])?;
                let permuted = convert_qk_layout(view, what, heads, head_dim, rotary_dim, from, to)
                    .map_err(|e| CliError(format!("`{}`: {e}", info.name)))?;
                converted.push(info.name.clone());
                permuted.into_parts().1
            }
        };
        raw.push(RawTensor {
            name: info.name.clone(),
            dtype: info.dtype.clone(),
            shape: info.shape.clone(),
            data: data.into(),
        });
    }
    for wanted in q_names.iter().chain(&k_names) {
        if !converted.contains(wanted) {
            return fail(format!("no tensor `{wanted}` in {}", input.display()));
        }
    }
    write_raw_safetensors(output, &raw)?;
    let copied: Vec<String> = raw
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| !converted.contains(n))
        .collect();
    let value = json!({
        "input": input.display().to_string(),
        "output": output.display().to_string(),
        "from": from.name(),
        "to": to.name(),
        "converted": converted,
        "copied": copied,
    });
    emit(json, &value, || {
        format!(
            "{} → {}: {} q/k tensors converted {} → {}, {} tensors copied unchanged\n",
            input.display(),
            output.display(),
            converted.len(),
            from.name(),
            to.name(),
            copied.len()
        )
    });
    Ok(())
}
