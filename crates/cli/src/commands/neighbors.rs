//! `tokenloom neighbors`.

use std::path::PathBuf;

use serde_json::json;

use super::{Query, emit, resolve, token_label};
use crate::checkpoint::Checkpoint;
use crate::error::{CliError, fail};

/// Nearest rows to a token's row by cosine similarity, with token strings.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  tokenloom neighbors model.safetensors --id 2088 --top 5\n  tokenloom neighbors smollm2.gguf --token Hello --top 3\n  tokenloom neighbors ./all-MiniLM-L6-v2 --text dogs"
)]
pub struct NeighborsArgs {
    /// A checkpoint.
    pub path: PathBuf,
    /// The token id.
    #[arg(long, required_unless_present_any = ["token", "text"], conflicts_with_all = ["token", "text"])]
    pub id: Option<u32>,
    /// The token, as the vocabulary spells it (e.g. `Hello`, `ĠHello`, `dogs`).
    #[arg(long, conflicts_with = "text")]
    pub token: Option<String>,
    /// Text that the model's tokenizer encodes to exactly one token (special tokens
    /// and padding aside).
    #[arg(long)]
    pub text: Option<String>,
    /// A tokenizer.json to use instead of the checkpoint's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// How many neighbours.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// The embedding tensor's name.
    #[arg(long)]
    pub tensor: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tokenloom neighbors`.
pub fn run(args: NeighborsArgs) -> Result<(), CliError> {
    let NeighborsArgs {
        path,
        id,
        token,
        text,
        tokenizer,
        top,
        tensor,
        json,
    } = args;
    let query = &Query {
        ids: id.into_iter().collect(),
        token,
        text,
        tokenizer,
    };
    let (path, tensor) = (path.as_path(), tensor.as_deref());
    let checkpoint = Checkpoint::open(path)?;
    let name = checkpoint.embedding_name(tensor)?;
    let names = checkpoint.token_names(
        path,
        query.tokenizer.as_deref(),
        query.text.is_some() || query.token.is_some(),
    )?;
    let (ids, mask) = resolve(query, &names)?;
    let id = match (ids.as_slice(), &query.text) {
        ([id], _) => *id,
        (_, Some(text)) => {
            // Text: its one token, special tokens and padding aside.
            let special: Vec<u32> = names.encode("")?.ids;
            let mask = mask.unwrap_or_default();
            let content: Vec<u32> = ids
                .iter()
                .zip(mask.iter().chain(std::iter::repeat(&1)))
                .filter(|&(id, &m)| m == 1 && !special.contains(id))
                .map(|(&id, _)| id)
                .collect();
            match content.as_slice() {
                [id] => *id,
                _ => {
                    let shown: Vec<String> = content
                        .iter()
                        .map(|&i| format!("{i} {}", token_label(names.token(i).as_deref())))
                        .collect();
                    return fail(format!(
                        "{text:?} is {} tokens ({}); neighbors takes one (use --token or --id)",
                        content.len(),
                        shown.join(", ")
                    ));
                }
            }
        }
        _ => return fail("give one of --id, --token or --text"),
    };
    // Rows are read one at a time (a quantized table is decoded row by row, never into
    // a dense copy) and each cosine is summed in f64.
    let table = checkpoint.table(&name)?;
    let query: Vec<f64> = table
        .lookup(&[id])?
        .as_slice()
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    if query.iter().any(|x| !x.is_finite()) {
        return fail(format!(
            "row {id} holds a NaN or an infinity: cosine similarity is undefined"
        ));
    }
    let query_norm = query.iter().map(|x| x * x).sum::<f64>().sqrt();
    if query_norm == 0.0 {
        return fail(format!(
            "row {id} is all zeros: cosine similarity is undefined"
        ));
    }
    // Rows with a NaN or an infinity have no cosine: they are skipped, and said so.
    let mut skipped = Vec::new();
    let mut scored: Vec<(usize, f64)> = Vec::new();
    table.for_each_row(|i, row| {
        if row.iter().any(|x| !x.is_finite()) {
            skipped.push(i);
            return;
        }
        if i == id as usize {
            return;
        }
        let dot: f64 = row.iter().zip(&query).map(|(&a, b)| f64::from(a) * b).sum();
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            scored.push((i, dot / (norm * query_norm)));
        }
    })?;
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(top);
    let token_of = |i: usize| u32::try_from(i).ok().and_then(|i| names.token(i));
    let value = json!({
        "tensor": name,
        "id": id,
        "token": names.token(id),
        "top": scored.iter().map(|&(i, c)| json!({"id": i, "token": token_of(i), "cosine": c})).collect::<Vec<_>>(),
        "skipped_non_finite_rows": skipped,
    });
    emit(json, &value, || {
        let mut text = format!(
            "nearest rows to id {id} {} in {name} by cosine similarity\n",
            token_label(names.token(id).as_deref())
        );
        if !skipped.is_empty() {
            text += &format!(
                "  note: {} rows with NaN or infinity skipped: {:?}\n",
                skipped.len(),
                &skipped[..skipped.len().min(10)]
            );
        }
        for (rank, &(i, c)) in scored.iter().enumerate() {
            text += &format!(
                "  {:>3}. id {i:>8}  {:<16}  cosine {c:+.6}\n",
                rank + 1,
                token_label(token_of(i).as_deref())
            );
        }
        text
    });
    Ok(())
}
