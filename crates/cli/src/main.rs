//! `tokenloom`: answer small questions about embeddings and RoPE without writing a
//! program — inspect checkpoints, look up rows, print RoPE tables, convert q/k layouts.

#![forbid(unsafe_code)]

mod checkpoint;
mod commands;
mod error;
mod table;
mod tokens;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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

#[derive(Subcommand, Debug)]
enum Command {
    Inspect(commands::inspect::InspectArgs),
    Embed(commands::embed::EmbedArgs),
    Rope(commands::rope::RopeArgs),
    Neighbors(commands::neighbors::NeighborsArgs),
    ConvertLayout(commands::convert_layout::ConvertLayoutArgs),
    MergeShards(commands::merge_shards::MergeShardsArgs),
    Formats(commands::formats::FormatsArgs),
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Embed(args) => commands::embed::run(args),
        Command::Rope(args) => commands::rope::run(args),
        Command::Neighbors(args) => commands::neighbors::run(args),
        Command::ConvertLayout(args) => commands::convert_layout::run(args),
        Command::MergeShards(args) => commands::merge_shards::run(args),
        Command::Formats(args) => commands::formats::run(args),
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
