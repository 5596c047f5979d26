//! The subcommands: one file per command, each with its arguments (`XArgs`, a clap
//! `Args` struct) and its `run`; this module holds what several commands share (output,
//! token queries, paths). Adding a command: docs/architecture.md, "Adding a CLI command".

pub mod convert_layout;
pub mod embed;
pub mod formats;
pub mod inspect;
pub mod merge_shards;
pub mod neighbors;
pub mod rope;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde_json::Value;
use tokenloom_positions::RopeLayout;

use crate::error::{CliError, fail};
use crate::tokens::TokenNames;

/// Prints `value` as pretty JSON, or `text` for people. A reader that closed the pipe
/// early (`tokenloom neighbors … | head -1`) ends the command quietly with success, as
/// `grep` and `rg` do.
pub(crate) fn emit(json: bool, value: &Value, text: impl FnOnce() -> String) {
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
pub(crate) fn emit_with(
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => fail(format!("writing the output: {e}")),
    }
}

/// A byte count in MB (10^6 bytes, as model files are sized).
pub(crate) fn mib(bytes: &Value) -> String {
    let mb = bytes.as_u64().unwrap_or_default() as f64 / 1e6;
    format!("{mb:.1} MB")
}

/// A shape as Python prints a tuple: `(3,)`, `(1, 3, 8)`.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// The largest text `--text-file` reads.
const MAX_TEXT_BYTES: u64 = 64 << 20;

/// The text of `--text-file` (`-`: standard input), UTF-8, at most 64 MiB.
pub(crate) fn read_text_file(path: &Path) -> Result<String, CliError> {
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
pub(crate) struct Query {
    /// Token ids given directly.
    pub ids: Vec<u32>,
    /// A token string.
    pub token: Option<String>,
    /// Text to encode.
    pub text: Option<String>,
    /// A tokenizer.json overriding the checkpoint's.
    pub tokenizer: Option<PathBuf>,
}

/// Ids (and, for text, the attention mask) of a query.
pub(crate) fn resolve(
    query: &Query,
    names: &TokenNames,
) -> Result<(Vec<u32>, Option<Vec<u32>>), CliError> {
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

/// A token string for text output: quoted, with control characters escaped.
pub(crate) fn token_label(token: Option<&str>) -> String {
    token.map_or_else(|| "?".to_owned(), |t| format!("{t:?}"))
}

/// Where `output` will be written, with symlinks resolved: the file itself when it exists
/// (a link to an input is the input), else its canonical folder and its name.
pub(crate) fn canonical_output(output: &Path) -> Result<PathBuf, CliError> {
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

/// A RoPE pair layout.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LayoutArg {
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
