//! `tokenloom`: answer small questions about embeddings and RoPE without writing a
//! program — inspect checkpoints, look up rows, print RoPE tables, convert q/k layouts.

#![forbid(unsafe_code)]

mod checkpoint;
mod commands;
mod error;
mod table;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokenloom_positions::RopeLayout;

use crate::commands::ConvertTargets;
use crate::error::CliError;

const EXAMPLES: &str = "\
Examples:
  tokenloom inspect model.safetensors
  tokenloom inspect ./SmolLM2-135M-Instruct --json
  tokenloom embed model.gguf --ids 73,786,2934
  tokenloom embed ./all-MiniLM-L6-v2 --text \"I love dogs\"
  tokenloom embed --vocab-size 3000 --n-embd 8 --seed 42 --ids 73,786,2934
  tokenloom rope --config config.json --positions 0,1,100000
  tokenloom neighbors model.safetensors --id 2088 --top 5
  tokenloom neighbors smollm2.gguf --token Hello --top 3
  tokenloom convert-layout meta.safetensors hf.safetensors --to half-split --n-heads 32 --n-kv-heads 8";

/// Inspect embedding tables and RoPE settings of LLaMA-family checkpoints.
#[derive(Parser, Debug)]
#[command(name = "tokenloom", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A RoPE pair layout.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum LayoutArg {
    /// Pairs (x[i], x[i + rotary_dim/2]): HuggingFace, GPT-NeoX.
    HalfSplit,
    /// Pairs (x[2i], x[2i+1]): Meta, GPT-J, GGUF `llama`-family files.
    Interleaved,
}

impl From<LayoutArg> for RopeLayout {
    fn from(layout: LayoutArg) -> Self {
        match layout {
            LayoutArg::HalfSplit => RopeLayout::HalfSplit,
            LayoutArg::Interleaved => RopeLayout::Interleaved,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tensor names, shapes and dtypes; the embedding table's size, row-norm statistics
    /// and all-zero rows; whether the head is tied; the position settings.
    #[command(
        after_help = "Examples:\n  tokenloom inspect model.safetensors\n  tokenloom inspect ./model-dir --json\n  tokenloom inspect model.gguf --tensor token_embd.weight"
    )]
    Inspect {
        /// A safetensors file, a GGUF file, or a model directory.
        path: PathBuf,
        /// The embedding tensor's name (default: the first known name present).
        #[arg(long)]
        tensor: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Look up rows of an embedding table: from a checkpoint, or from a fresh seeded
    /// N(0, 1) table. Ids come from `--ids`, or from `--text` through the model's
    /// tokenizer (its tokenizer.json, or the vocabulary of its GGUF file).
    #[command(
        after_help = "Examples:\n  tokenloom embed model.safetensors --ids 73,786,2934\n  tokenloom embed ./all-MiniLM-L6-v2 --text \"I love dogs\" --json\n  tokenloom embed --vocab-size 3000 --n-embd 8 --seed 42 --ids 73,786,2934 --json"
    )]
    Embed {
        /// A checkpoint (omit with --vocab-size/--n-embd).
        path: Option<PathBuf>,
        /// Comma-separated token ids.
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present_any = ["text", "text_file"],
            conflicts_with_all = ["text", "text_file"]
        )]
        ids: Vec<u32>,
        /// Text to encode with the model's tokenizer (the file's special tokens and padding
        /// included, as Python's `tokenizers` encodes it).
        #[arg(long, conflicts_with = "text_file")]
        text: Option<String>,
        /// Text to encode, read from a file (`-`: standard input), UTF-8, at most 64 MiB.
        #[arg(long)]
        text_file: Option<PathBuf>,
        /// A tokenizer.json to use instead of the checkpoint's.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Print every value of every row (the text output shows five and "…"; JSON
        /// always holds full rows).
        #[arg(long)]
        full: bool,
        /// The embedding tensor's name.
        #[arg(long)]
        tensor: Option<String>,
        /// Rows of a seeded table.
        #[arg(long)]
        vocab_size: Option<usize>,
        /// Width of a seeded table.
        #[arg(long)]
        n_embd: Option<usize>,
        /// Seed of a seeded table.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inverse frequencies and cos/sin at given positions, with the config's scaling.
    #[command(
        after_help = "Examples:\n  tokenloom rope --config config.json --positions 0,1,100000\n  tokenloom rope --config params.json --positions 8191,8192 --layout interleaved --json"
    )]
    Rope {
        /// A HuggingFace config.json or a Meta params.json.
        #[arg(long)]
        config: PathBuf,
        /// Comma-separated positions.
        #[arg(long, value_delimiter = ',', required = true)]
        positions: Vec<usize>,
        /// Override the pair layout.
        #[arg(long, value_enum)]
        layout: Option<LayoutArg>,
        /// Sequence length for dynamic NTK / LongRoPE (default: largest position + 1).
        #[arg(long)]
        seq_len: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Nearest rows to a token's row by cosine similarity, with token strings.
    #[command(
        after_help = "Examples:\n  tokenloom neighbors model.safetensors --id 2088 --top 5\n  tokenloom neighbors smollm2.gguf --token Hello --top 3\n  tokenloom neighbors ./all-MiniLM-L6-v2 --text dogs"
    )]
    Neighbors {
        /// A checkpoint.
        path: PathBuf,
        /// The token id.
        #[arg(long, required_unless_present_any = ["token", "text"], conflicts_with_all = ["token", "text"])]
        id: Option<u32>,
        /// The token, as the vocabulary spells it (e.g. `Hello`, `ĠHello`, `dogs`).
        #[arg(long, conflicts_with = "text")]
        token: Option<String>,
        /// Text that the model's tokenizer encodes to exactly one token (special tokens
        /// and padding aside).
        #[arg(long)]
        text: Option<String>,
        /// A tokenizer.json to use instead of the checkpoint's.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// How many neighbours.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// The embedding tensor's name.
        #[arg(long)]
        tensor: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Permute q/k projection rows between RoPE layouts; other tensors are copied
    /// unchanged. Writes OUT atomically and never overwrites IN.
    ///
    /// Which layout a checkpoint is in: HuggingFace safetensors are half-split; Meta's
    /// consolidated checkpoints are interleaved. GGUF files keep each architecture's own
    /// layout (llama.cpp's rope type, as `tokenloom inspect` reports it): `llama`,
    /// `deepseek2`, `granite` and the other NORM families are interleaved; `qwen2`,
    /// `phi3`, `gemma3` and the other NEOX families are half-split and need no conversion
    /// to be used with HuggingFace-style RoPE.
    #[command(
        after_help = "Examples:\n  tokenloom convert-layout meta.safetensors hf.safetensors --to half-split --n-heads 32 --n-kv-heads 8\n  tokenloom convert-layout hf.safetensors meta.safetensors --to interleaved --n-heads 9 --n-kv-heads 3 --q-tensor wq --k-tensor wk"
    )]
    ConvertLayout {
        /// The input safetensors file.
        input: PathBuf,
        /// The output safetensors file.
        output: PathBuf,
        /// The layout to convert to (the input is in the other one).
        #[arg(long, value_enum)]
        to: LayoutArg,
        /// Query heads.
        #[arg(long)]
        n_heads: usize,
        /// Key/value heads (grouped-query attention).
        #[arg(long)]
        n_kv_heads: usize,
        /// Head dimension (default: rows / heads).
        #[arg(long)]
        head_dim: Option<usize>,
        /// Rotated dimensions per head (default: head_dim).
        #[arg(long)]
        rotary_dim: Option<usize>,
        /// A query tensor to convert (repeatable; default: every *q_proj.weight/bias).
        #[arg(long = "q-tensor")]
        q_tensors: Vec<String>,
        /// A key tensor to convert (repeatable; default: every *k_proj.weight/bias).
        #[arg(long = "k-tensor")]
        k_tensors: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Join the shard files that the ranks of a vocab-parallel embedding wrote
    /// (`VocabParallelEmbedding::save_shard` in tokenloom-distributed) into one
    /// safetensors table, bit for bit. Shards may be given in any order; gaps, overlaps
    /// and mixed widths or dtypes are errors.
    #[command(
        after_help = "Examples:\n  tokenloom merge-shards embed.safetensors shard-0.safetensors shard-1.safetensors shard-2.safetensors --tensor model.embed_tokens.weight"
    )]
    MergeShards {
        /// The merged safetensors file to write.
        output: PathBuf,
        /// The shard files.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// The table's tensor name in the shards (and in the output).
        #[arg(long)]
        tensor: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Inspect { path, tensor, json } => {
            commands::inspect(&path, tensor.as_deref(), json)
        }
        Command::Embed {
            path,
            ids,
            text,
            text_file,
            tokenizer,
            full,
            tensor,
            vocab_size,
            n_embd,
            seed,
            json,
        } => commands::embed(
            path.as_deref(),
            &commands::Query {
                ids,
                token: None,
                text: match text_file {
                    Some(file) => Some(commands::read_text_file(&file)?),
                    None => text,
                },
                tokenizer,
            },
            tensor.as_deref(),
            (vocab_size, n_embd, seed),
            commands::Output { json, full },
        ),
        Command::Rope {
            config,
            positions,
            layout,
            seq_len,
            json,
        } => commands::rope(&config, &positions, layout.map(Into::into), seq_len, json),
        Command::Neighbors {
            path,
            id,
            token,
            text,
            tokenizer,
            top,
            tensor,
            json,
        } => commands::neighbors(
            &path,
            &commands::Query {
                ids: id.into_iter().collect(),
                token,
                text,
                tokenizer,
            },
            top,
            tensor.as_deref(),
            json,
        ),
        Command::ConvertLayout {
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
        } => commands::convert_layout(
            &input,
            &output,
            to.into(),
            n_heads,
            n_kv_heads,
            head_dim,
            rotary_dim,
            ConvertTargets {
                q: q_tensors,
                k: k_tensors,
            },
            json,
        ),
        Command::MergeShards {
            output,
            shards,
            tensor,
            json,
        } => commands::merge_shards(&output, &shards, &tensor, json),
    }
}

/// A clap usage error in one line that names what is wrong: the missing arguments, the
/// commands to choose from, or clap's own message up to its usage block.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let strings = |kind: ContextKind| match e.get(kind) {
        Some(ContextValue::Strings(v)) => v.join(", "),
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::MissingRequiredArgument => format!(
            "missing required argument{}: {}",
            if strings(ContextKind::InvalidArg).contains(", ") {
                "s"
            } else {
                ""
            },
            strings(ContextKind::InvalidArg)
        ),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let commands: Vec<String> = <Cli as clap::CommandFactory>::command()
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .collect();
            format!("give a command: {}", commands.join(", "))
        }
        _ => {
            let message = e.to_string();
            let lines: Vec<&str> = message
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            let text = lines.join(" ");
            let text = text.trim_start_matches("error: ");
            if text.is_empty() {
                "invalid arguments".to_owned()
            } else {
                text.to_owned()
            }
        }
    }
}

fn main() -> ExitCode {
    // Usage errors are one line and exit code 1, like every other error; help and the
    // version print as clap formats them.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {} (see `tokenloom --help`)", usage_error(&e));
            return ExitCode::FAILURE;
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
