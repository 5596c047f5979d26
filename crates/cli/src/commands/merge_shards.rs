//! `tokenloom merge-shards`.

use std::path::PathBuf;

use serde_json::json;

use super::{canonical_output, emit};
use crate::error::{CliError, fail};

/// Join the shard files that the ranks of a vocab-parallel embedding wrote
/// (`VocabParallelEmbedding::save_shard` in tokenloom-distributed) into one
/// safetensors table, bit for bit. Shards may be given in any order; gaps, overlaps
/// and mixed widths or dtypes are errors.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  tokenloom merge-shards embed.safetensors shard-0.safetensors shard-1.safetensors shard-2.safetensors --tensor model.embed_tokens.weight"
)]
pub struct MergeShardsArgs {
    /// The merged safetensors file to write.
    pub output: PathBuf,
    /// The shard files.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The table's tensor name in the shards (and in the output).
    #[arg(long)]
    pub tensor: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tokenloom merge-shards`.
pub fn run(args: MergeShardsArgs) -> Result<(), CliError> {
    let MergeShardsArgs {
        output,
        shards,
        tensor,
        json,
    } = args;
    let (output, tensor) = (output.as_path(), tensor.as_str());
    // Paths compared as files, not strings: `./s0.safetensors` and `s0.safetensors`, or a
    // symlink to a shard, are the same file.
    let out = canonical_output(output)?;
    for shard in &shards {
        if shard.canonicalize().is_ok_and(|s| s == out) {
            return fail(format!(
                "the output {} is also one of the shards ({}): write the merged table elsewhere",
                output.display(),
                shard.display()
            ));
        }
    }
    let merged = tokenloom_distributed::merge_shards(&shards, tensor, output)?;
    let value = json!({
        "output": output.display().to_string(),
        "tensor": tensor,
        "shards": shards.len(),
        "vocab_size": merged.vocab_size,
        "n_embd": merged.n_embd,
        "dtype": merged.dtype,
    });
    emit(json, &value, || {
        format!(
            "{}: `{tensor}` ({}, {}) {} from {} shards\n",
            output.display(),
            merged.vocab_size,
            merged.n_embd,
            merged.dtype,
            shards.len()
        )
    });
    Ok(())
}
