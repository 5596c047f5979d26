//! `tokenloom embed`.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenloom_embedding::{Embedding, Init};

use super::{Query, emit, emit_with, read_text_file, resolve, shape_str, token_label};
use crate::checkpoint::Checkpoint;
use crate::error::{CliError, fail};
use crate::table::Table;
use crate::tokens::TokenNames;

/// Look up rows of an embedding table: from a checkpoint, or from a fresh seeded
/// N(0, 1) table. Ids come from `--ids`, or from `--text` through the model's
/// tokenizer (its tokenizer.json, or the vocabulary of its GGUF file).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  tokenloom embed model.safetensors --ids 73,786,2934\n  tokenloom embed ./all-MiniLM-L6-v2 --text \"I love dogs\" --json\n  tokenloom embed --vocab-size 3000 --n-embd 8 --seed 42 --ids 73,786,2934 --json"
)]
pub struct EmbedArgs {
    /// A checkpoint (omit with --vocab-size/--n-embd).
    pub path: Option<PathBuf>,
    /// Comma-separated token ids.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present_any = ["text", "text_file"],
        conflicts_with_all = ["text", "text_file"]
    )]
    pub ids: Vec<u32>,
    /// Text to encode with the model's tokenizer (the file's special tokens and padding
    /// included, as Python's `tokenizers` encodes it).
    #[arg(long, conflicts_with = "text_file")]
    pub text: Option<String>,
    /// Text to encode, read from a file (`-`: standard input), UTF-8, at most 64 MiB.
    #[arg(long)]
    pub text_file: Option<PathBuf>,
    /// A tokenizer.json to use instead of the checkpoint's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Print every value of every row (the text output shows five and "…"; JSON
    /// always holds full rows).
    #[arg(long)]
    pub full: bool,
    /// The embedding tensor's name.
    #[arg(long)]
    pub tensor: Option<String>,
    /// Rows of a seeded table.
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Width of a seeded table.
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// Seed of a seeded table.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Five values and "…" (or every value with `full`).
fn row_cells(row: &[f32], full: bool) -> String {
    let shown = if full { row.len() } else { row.len().min(5) };
    let mut cells: Vec<String> = row[..shown].iter().map(|x| format!("{x:+.6}")).collect();
    if shown < row.len() {
        cells.push("…".to_owned());
    }
    format!("[{}]", cells.join(", "))
}

/// Runs `tokenloom embed`.
pub fn run(args: EmbedArgs) -> Result<(), CliError> {
    let EmbedArgs {
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
    } = args;
    let query = &Query {
        ids,
        token: None,
        text: match text_file {
            Some(file) => Some(read_text_file(&file)?),
            None => text,
        },
        tokenizer,
    };
    let (path, tensor) = (path.as_deref(), tensor.as_deref());
    let seeded = (vocab_size, n_embd, seed);
    let (table, source, names) = match (path, seeded) {
        (Some(path), (None, None, _)) => {
            let checkpoint = Checkpoint::open(path)?;
            let name = checkpoint.embedding_name(tensor)?;
            (
                checkpoint.table(&name)?,
                format!("{}:{name}", path.display()),
                checkpoint.token_names(path, query.tokenizer.as_deref(), query.text.is_some())?,
            )
        }
        (None, (Some(vocab_size), Some(n_embd), seed)) => (
            Table::Dense(
                Embedding::<f32>::seeded(vocab_size, n_embd, Init::default(), seed)?.into_weight(),
            ),
            format!("seeded N(0, 1) table ({vocab_size}, {n_embd}), seed {seed}"),
            match &query.tokenizer {
                Some(file) => TokenNames::from_file(file)?,
                None => TokenNames::none("a seeded table has no tokenizer (pass --tokenizer FILE)"),
            },
        ),
        (Some(_), _) => {
            return fail("give either a checkpoint PATH or --vocab-size and --n-embd, not both");
        }
        (None, _) => {
            return fail(
                "give a checkpoint PATH, or both --vocab-size and --n-embd for a seeded table",
            );
        }
    };
    let (ids, attention_mask) = resolve(query, &names)?;
    let out = table.lookup(&ids)?;
    let rows: Vec<&[f32]> = out.rows().collect();
    let tokens: Vec<Option<String>> = ids.iter().map(|&id| names.token(id)).collect();
    if json {
        // Streamed field by field and row by row: the rows of a long text are never one
        // JSON value in memory (130 kB of text took 1.5 GB that way).
        let mut head = json!({
            "source": source,
            "ids": ids,
            "tokens": tokens,
            "shape": out.dims(),
        });
        if let Some(text) = &query.text {
            head["text"] = json!(text);
            head["attention_mask"] = json!(attention_mask);
        }
        let Value::Object(head) = head else {
            unreachable!("a json! object")
        };
        return emit_with(|w| {
            w.write_all(b"{")?;
            for (key, value) in &head {
                serde_json::to_writer(&mut *w, key)?;
                w.write_all(b": ")?;
                serde_json::to_writer(&mut *w, value)?;
                w.write_all(b",\n")?;
            }
            w.write_all(b"\"rows\": [")?;
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                w.write_all(b"\n  ")?;
                // Each f32 written as the f64 of the same value (as a JSON value of the
                // row would be): a reader parsing f64 gets the stored value exactly.
                let row: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
                serde_json::to_writer(&mut *w, &row)?;
            }
            w.write_all(b"\n]}\n")
        });
    }
    emit(false, &Value::Null, || {
        let mut text = format!("{source}\n");
        let width = tokens
            .iter()
            .map(|t| token_label(t.as_deref()).chars().count())
            .max()
            .unwrap_or(1)
            .min(24);
        let mask = attention_mask.as_deref();
        // The file's padding (attention mask 0) is summarized, not printed row by row.
        let real = mask.map_or(ids.len(), |m| {
            m.iter().rposition(|&x| x == 1).map_or(0, |last| last + 1)
        });
        for ((id, token), row) in ids.iter().zip(&tokens).zip(&rows).take(real) {
            let label = token_label(token.as_deref());
            text += &format!("  {id:>8} {label:<width$}  {}\n", row_cells(row, full));
        }
        if real < ids.len() {
            text += &format!(
                "  … {} padding rows ({} {}; attention mask 0), as the tokenizer file pads\n",
                ids.len() - real,
                token_label(tokens[real].as_deref()),
                ids[real]
            );
        }
        text += &format!(
            "shape = {} (batch, seq_len, n_embd)\n",
            shape_str(out.dims())
        );
        text
    });
    Ok(())
}
