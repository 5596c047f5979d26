//! The subcommands.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use tokenloom_embedding::{Embedding, Init};
use tokenloom_io::{RawTensor, SafetensorsFile, safetensors_dtype_size, write_raw_safetensors};
use tokenloom_positions::{RopeLayout, convert_qk_layout, cos_sin};
use tokenloom_tensor::TensorView;

use tokenloom_decoder_input::{EmbeddingScale, ModelSpec};

use crate::checkpoint::{Checkpoint, HeadReport, PositionsReport, TensorRow, read_model_config};
use crate::error::{CliError, fail};
use crate::table::Table;
use crate::tokens::TokenNames;

/// Prints `value` as pretty JSON, or `text` for people. A reader that closed the pipe
/// early (`tokenloom neighbors … | head -1`) ends the command quietly with success, as
/// `grep` and `rg` do.
fn emit(json: bool, value: &Value, text: impl FnOnce() -> String) {
    let out = if json {
        serde_json::to_string_pretty(value).expect("JSON values always serialize") + "\n"
    } else {
        text()
    };
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing the output: {e}");
            std::process::exit(1);
        }
    }
}

/// Writes a JSON document through `write` (buffered); a closed pipe ends the command
/// quietly, as [`emit`] does.
fn emit_with(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), CliError> {
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => fail(format!("writing the output: {e}")),
    }
}

/// A byte count in MB (10^6 bytes, as model files are sized).
fn mib(bytes: &Value) -> String {
    let mb = bytes.as_u64().unwrap_or_default() as f64 / 1e6;
    format!("{mb:.1} MB")
}

fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
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

/// `tokenloom inspect`.
pub fn inspect(path: &Path, tensor: Option<&str>, json: bool) -> Result<(), CliError> {
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

/// The largest text `--text-file` reads.
const MAX_TEXT_BYTES: u64 = 64 << 20;

/// The text of `--text-file` (`-`: standard input), UTF-8, at most 64 MiB.
pub fn read_text_file(path: &Path) -> Result<String, CliError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(MAX_TEXT_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        let file =
            std::fs::File::open(path).map_err(|e| CliError(format!("{}: {e}", path.display())))?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return fail(format!("{}: not a regular file", path.display()));
        }
        file.take(MAX_TEXT_BYTES + 1).read_to_end(&mut bytes)
    };
    read.map_err(|e| CliError(format!("{}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return fail(format!(
            "{}: more than the {MAX_TEXT_BYTES}-byte limit of --text-file",
            path.display()
        ));
    }
    String::from_utf8(bytes).map_err(|e| CliError(format!("{}: not UTF-8: {e}", path.display())))
}

/// Which token(s) a command is about: ids, a token string, or text to encode.
pub struct Query {
    /// Token ids given directly.
    pub ids: Vec<u32>,
    /// A token string.
    pub token: Option<String>,
    /// Text to encode.
    pub text: Option<String>,
    /// A tokenizer.json overriding the checkpoint's.
    pub tokenizer: Option<std::path::PathBuf>,
}

/// How a command prints.
#[derive(Clone, Copy)]
pub struct Output {
    /// JSON instead of text.
    pub json: bool,
    /// Every value of every row in the text output.
    pub full: bool,
}

/// Ids (and, for text, the attention mask) of a query.
fn resolve(query: &Query, names: &TokenNames) -> Result<(Vec<u32>, Option<Vec<u32>>), CliError> {
    if let Some(text) = &query.text {
        let encoded = names.encode(text)?;
        if encoded.ids.is_empty() {
            return fail(format!("the tokenizer encodes {text:?} to no tokens"));
        }
        return Ok((encoded.ids, Some(encoded.attention_mask)));
    }
    if let Some(token) = &query.token {
        return Ok((vec![names.id(token)?], None));
    }
    Ok((query.ids.clone(), None))
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

/// A token string for text output: quoted, with control characters escaped.
fn token_label(token: Option<&str>) -> String {
    token.map_or_else(|| "?".to_owned(), |t| format!("{t:?}"))
}

/// `tokenloom embed`.
pub fn embed(
    path: Option<&Path>,
    query: &Query,
    tensor: Option<&str>,
    seeded: (Option<usize>, Option<usize>, u64),
    output: Output,
) -> Result<(), CliError> {
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
    if output.json {
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
            text += &format!(
                "  {id:>8} {label:<width$}  {}\n",
                row_cells(row, output.full)
            );
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

/// `tokenloom rope`.
pub fn rope(
    config: &Path,
    positions: &[usize],
    layout: Option<RopeLayout>,
    seq_len: Option<usize>,
    json: bool,
) -> Result<(), CliError> {
    let spec = read_model_config(config)?;
    let mut rope = spec.main_rope().cloned().ok_or_else(|| {
        CliError(format!(
            "{}: {} has no rotary positions",
            config.display(),
            spec.architecture.name()
        ))
    })?;
    if let Some(layout) = layout {
        rope.layout = layout;
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
        for p in positions {
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

/// `tokenloom neighbors`.
pub fn neighbors(
    path: &Path,
    query: &Query,
    top: usize,
    tensor: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
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

/// Which tensors `convert-layout` permutes, with their head counts.
pub struct ConvertTargets {
    /// Query tensors (use `n_heads`).
    pub q: Vec<String>,
    /// Key tensors (use `n_kv_heads`).
    pub k: Vec<String>,
}

/// `tokenloom convert-layout`.
#[allow(clippy::too_many_arguments)]
pub fn convert_layout(
    input: &Path,
    output: &Path,
    to: RopeLayout,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: Option<usize>,
    rotary_dim: Option<usize>,
    explicit: ConvertTargets,
    json: bool,
) -> Result<(), CliError> {
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
    let (q_names, k_names) = if explicit.q.is_empty() && explicit.k.is_empty() {
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
        (explicit.q, explicit.k)
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

/// Where `output` will be written, with symlinks resolved: the file itself when it exists
/// (a link to an input is the input), else its canonical folder and its name.
fn canonical_output(output: &Path) -> Result<std::path::PathBuf, CliError> {
    if let Ok(existing) = output.canonicalize() {
        return Ok(existing);
    }
    Ok(output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|e| CliError(format!("{}: {e}", output.display())))?
        .join(
            output
                .file_name()
                .ok_or_else(|| CliError(format!("{}: not a file name", output.display())))?,
        ))
}

/// `tokenloom merge-shards`.
pub fn merge_shards(
    output: &Path,
    shards: &[std::path::PathBuf],
    tensor: &str,
    json: bool,
) -> Result<(), CliError> {
    // Paths compared as files, not strings: `./s0.safetensors` and `s0.safetensors`, or a
    // symlink to a shard, are the same file.
    let out = canonical_output(output)?;
    for shard in shards {
        if shard.canonicalize().is_ok_and(|s| s == out) {
            return fail(format!(
                "the output {} is also one of the shards ({}): write the merged table elsewhere",
                output.display(),
                shard.display()
            ));
        }
    }
    let merged = tokenloom_distributed::merge_shards(shards, tensor, output)?;
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
