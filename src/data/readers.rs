//! Readers for the vendored dataset files. Each reader loads a whole file (the
//! largest is a few MB) and stops at the first malformed record with one
//! message naming `file:line`, so a script author can open the file there.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One JSON object, as read from a record of a dataset file.
pub type Record = Map<String, Value>;

/// Reads a whole text file, mapping a missing file to `path: no such file`.
fn read_text(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::file(path, "no such file")),
        Err(e) => Err(Error::file(path, e)),
    }
}

/// Drops a UTF-8 byte-order mark, which some editors write and serde rejects.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Reads a JSON-lines file: one JSON object per line. Blank lines are skipped
/// (line numbers still count them). A line that is not a JSON object gives
/// `file:N: expected a JSON object: <serde's message>`.
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<Record>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let mut records = Vec::new();
    for (i, line) in without_bom(&text).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(record) => records.push(record),
            Err(e) => return Err(Error::data(path, i + 1, format!("expected a JSON object: {e}"))),
        }
    }
    Ok(records)
}

/// Reads a file holding one JSON value. A parse error gives `file:N: ...`
/// with the line serde_json stopped at.
pub fn read_json(path: impl AsRef<Path>) -> Result<Value> {
    let path = path.as_ref();
    let text = read_text(path)?;
    serde_json::from_str::<Value>(without_bom(&text))
        .map_err(|e| Error::data(path, e.line(), format!("invalid JSON: {e}")))
}

/// Reads a file holding a JSON array of objects (web_questions' layout).
pub fn read_json_array(path: impl AsRef<Path>) -> Result<Vec<Record>> {
    let path = path.as_ref();
    let items = match read_json(path)? {
        Value::Array(items) => items,
        other => {
            return Err(Error::file(
                path,
                format!("expected a JSON array of objects, found {}", kind_of(&other)),
            ))
        }
    };
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(record) => records.push(record),
            other => {
                return Err(Error::file(
                    path,
                    format!(
                        "array element {i} (0-based) should be a JSON object, found {}",
                        kind_of(&other)
                    ),
                ))
            }
        }
    }
    Ok(records)
}

/// Names a JSON value's type for error messages.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a plain text file as lines, without their `\n` / `\r\n` endings.
/// Empty lines are kept: in a parallel corpus, line N of each side must stay
/// aligned.
pub fn read_lines(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    Ok(without_bom(&text).lines().map(str::to_string).collect())
}

/// Reads a sentence-aligned parallel corpus (one sentence per line on each
/// side) into `(source, target)` pairs. The two files must have the same
/// number of lines.
pub fn read_parallel(src_path: impl AsRef<Path>, tgt_path: impl AsRef<Path>) -> Result<Vec<(String, String)>> {
    let (src_path, tgt_path) = (src_path.as_ref(), tgt_path.as_ref());
    let sources = read_lines(src_path)?;
    let targets = read_lines(tgt_path)?;
    if sources.len() != targets.len() {
        return Err(Error::msg(format!(
            "parallel files differ in length: {} has {} lines but {} has {} lines",
            src_path.display(),
            sources.len(),
            tgt_path.display(),
            targets.len()
        )));
    }
    Ok(sources.into_iter().zip(targets).collect())
}
