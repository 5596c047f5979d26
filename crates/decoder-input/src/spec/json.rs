//! Reading a JSON config file (bounded, regular files only) and typed access to its keys,
//! each error naming the file and the key.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::DecoderInputError;

/// The largest config file read (64 MiB: real `config.json` files are a few kB; a
/// LongRoPE config with its factor lists stays far below).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Reads a JSON config file (`config.json`, `params.json`, an index): a regular file
/// (after symlinks) of at most [`MAX_CONFIG_BYTES`].
///
/// # Errors
///
/// [`DecoderInputError::ConfigRead`], [`DecoderInputError::ConfigNotAFile`] (a
/// directory, `/dev/zero`, a pipe) and [`DecoderInputError::ConfigTooLarge`].
pub fn read_config_text(path: &Path) -> Result<String, DecoderInputError> {
    let io_error = |e: std::io::Error| DecoderInputError::ConfigRead {
        path: path.to_path_buf(),
        source: tokenloom_tensor::IoSource::new(e),
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(DecoderInputError::ConfigNotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(DecoderInputError::ConfigTooLarge {
            path: path.to_path_buf(),
            bytes: meta.len(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    let mut text = String::new();
    // The file may grow between metadata and read: read one byte past the limit at most.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io_error)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(DecoderInputError::ConfigTooLarge {
            path: path.to_path_buf(),
            bytes: text.len() as u64,
            limit: MAX_CONFIG_BYTES,
        });
    }
    Ok(text)
}

/// A JSON object, or [`DecoderInputError::ConfigJson`] with line and column.
pub(crate) fn parse_object(
    text: &str,
    path: &Path,
) -> Result<Map<String, Value>, DecoderInputError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(DecoderInputError::ConfigJson {
            path: path.to_path_buf(),
            reason: format!(
                "expected a JSON object at the top level, found {}",
                kind(&other)
            ),
            line: 1,
            column: 1,
        }),
        Err(e) => Err(DecoderInputError::ConfigJson {
            path: path.to_path_buf(),
            reason: e.to_string(),
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A config object with the file it came from and the path of the object in it
/// (`""` at the top level, `text_config.` inside a nested one).
#[derive(Clone, Copy)]
pub(crate) struct Config<'a> {
    pub(crate) object: &'a Map<String, Value>,
    pub(crate) path: &'a Path,
    pub(crate) prefix: &'a str,
}

impl<'a> Config<'a> {
    /// `prefix` + `key`, for messages.
    pub(crate) fn key_path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A key that is present and not `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn bad(
        &self,
        key: &str,
        value: &Value,
        expected: &'static str,
    ) -> DecoderInputError {
        DecoderInputError::BadValue {
            path: self.path.to_path_buf(),
            key: self.key_path(key),
            value: truncate(&value.to_string()),
            expected,
        }
    }

    pub(crate) fn missing(&self, key: &str) -> DecoderInputError {
        DecoderInputError::MissingKey {
            path: self.path.to_path_buf(),
            key: self.key_path(key),
        }
    }

    pub(crate) fn usize(&self, key: &str) -> Result<Option<usize>, DecoderInputError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .ok_or_else(|| self.bad(key, v, "a non-negative integer"))
            })
            .transpose()
    }

    pub(crate) fn required_usize(&self, key: &str) -> Result<usize, DecoderInputError> {
        self.usize(key)?.ok_or_else(|| self.missing(key))
    }

    /// The first of `keys` present (their spellings across versions), as an integer.
    pub(crate) fn first_usize(&self, keys: &[&str]) -> Result<Option<usize>, DecoderInputError> {
        for key in keys {
            if let Some(v) = self.usize(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    pub(crate) fn required_first_usize(&self, keys: &[&str]) -> Result<usize, DecoderInputError> {
        self.first_usize(keys)?
            .ok_or_else(|| self.missing(&keys.join(" or ")))
    }

    pub(crate) fn f64(&self, key: &str) -> Result<Option<f64>, DecoderInputError> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.bad(key, v, "a number")))
            .transpose()
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, DecoderInputError> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(key, v, "true or false")))
            .transpose()
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, DecoderInputError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.bad(key, v, "a string")))
            .transpose()
    }

    pub(crate) fn object(
        &self,
        key: &str,
    ) -> Result<Option<&'a Map<String, Value>>, DecoderInputError> {
        self.get(key)
            .map(|v| v.as_object().ok_or_else(|| self.bad(key, v, "an object")))
            .transpose()
    }

    pub(crate) fn list(&self, key: &str) -> Result<Option<&'a Vec<Value>>, DecoderInputError> {
        self.get(key)
            .map(|v| v.as_array().ok_or_else(|| self.bad(key, v, "a list")))
            .transpose()
    }
}

/// A value's text for a message, cut to 80 characters.
pub(crate) fn truncate(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    }
}
