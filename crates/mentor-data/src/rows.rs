//! Reading rows from JSONL, gzipped JSONL and JSON-array files, each with its 1-based line.

use crate::{DataError, Result};
use mentor_core::example::{choice_labels, Choice};
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One row of a data file and the line it starts on.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub value: Value,
}

impl Row {
    /// The row's top-level field names (for error messages).
    pub fn field_names(&self) -> Vec<String> {
        match &self.value {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => vec![],
        }
    }

    /// The value at a dotted path (`doc.question`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(&self.value, |v, key| match v {
            Value::Object(m) => m.get(key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
    }

    /// A field as text; numbers and booleans are written out, anything else is an error.
    pub fn string(&self, path: &str) -> std::result::Result<String, String> {
        match self.get(path) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(Value::Null) | None => Err(format!("missing field `{path}`")),
            Some(other) => Err(format!(
                "field `{path}` should be text, found {}",
                kind(other)
            )),
        }
    }

    /// Options of a multiple-choice row, in any of the common shapes.
    pub fn choices(&self, path: &str) -> std::result::Result<Vec<Choice>, String> {
        let v = self
            .get(path)
            .ok_or_else(|| format!("missing field `{path}`"))?;
        parse_choices(v).map_err(|m| format!("field `{path}`: {m}"))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `["a", "b"]`, `[{"label": "A", "text": "a"}]` or HF's `{"label": [...], "text": [...]}`.
pub fn parse_choices(v: &Value) -> std::result::Result<Vec<Choice>, String> {
    match v {
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let labels = choice_labels(items.len());
            Ok(items
                .iter()
                .zip(labels)
                .map(|(t, label)| Choice {
                    label,
                    text: t.as_str().unwrap().to_string(),
                })
                .collect())
        }
        Value::Array(items) => items
            .iter()
            .map(|it| {
                let label = it.get("label").and_then(Value::as_str);
                let text = it.get("text").and_then(Value::as_str);
                match (label, text) {
                    (Some(l), Some(t)) => Ok(Choice {
                        label: l.to_string(),
                        text: t.to_string(),
                    }),
                    _ => Err("each choice must be text or {\"label\", \"text\"}".to_string()),
                }
            })
            .collect(),
        Value::Object(m) => {
            let labels = m.get("label").and_then(Value::as_array);
            let texts = m.get("text").and_then(Value::as_array);
            match (labels, texts) {
                (Some(l), Some(t)) if l.len() == t.len() => l
                    .iter()
                    .zip(t)
                    .map(|(l, t)| match (l.as_str(), t.as_str()) {
                        (Some(l), Some(t)) => Ok(Choice {
                            label: l.into(),
                            text: t.into(),
                        }),
                        _ => Err("labels and texts must be text".to_string()),
                    })
                    .collect(),
                _ => Err("expected {\"label\": [...], \"text\": [...]} of equal length".into()),
            }
        }
        other => Err(format!("expected a list of choices, found {}", kind(other))),
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>> {
    let f = std::fs::File::open(path).map_err(|source| DataError::Io {
        file: path.to_path_buf(),
        cause: source,
    })?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::GzDecoder::new(f)))
    } else {
        Ok(Box::new(f))
    }
}

/// Reads every row of a JSONL (optionally `.gz`) or JSON-array file. A malformed row is an error
/// naming file and line, or, with `skip_bad`, a message appended to `skipped`.
pub fn read_rows(path: &Path, skip_bad: bool, skipped: &mut Vec<String>) -> Result<Vec<Row>> {
    let mut reader = BufReader::new(open(path)?);
    let io_err = |source| DataError::Io {
        file: path.to_path_buf(),
        cause: source,
    };
    // Peek at the first non-blank byte: `[` means one JSON array, anything else JSON lines.
    let first = loop {
        let buf = reader.fill_buf().map_err(io_err)?;
        if buf.is_empty() {
            break None;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if first == Some(b'[') {
        let mut text = String::new();
        reader.read_to_string(&mut text).map_err(io_err)?;
        return read_array(path, &text, skip_bad, skipped);
    }
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io_err)?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(value) => rows.push(Row { line: i + 1, value }),
            Err(e) => {
                let err = DataError::BadRow {
                    file: path.to_path_buf(),
                    line: i + 1,
                    msg: format!("invalid JSON: {e}"),
                };
                crate::bad_row(err, skip_bad, skipped)?;
            }
        }
    }
    Ok(rows)
}

fn read_array(
    path: &Path,
    text: &str,
    skip_bad: bool,
    skipped: &mut Vec<String>,
) -> Result<Vec<Row>> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| DataError::BadRow {
        file: path.to_path_buf(),
        line: e.line(),
        msg: format!("invalid JSON array: {e}"),
    })?;
    let base = text.as_ptr() as usize;
    let mut rows = Vec::with_capacity(items.len());
    for raw in items {
        let offset = raw.get().as_ptr() as usize - base;
        let line = 1 + text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(value) => rows.push(Row { line, value }),
            Err(e) => {
                let err = DataError::BadRow {
                    file: path.to_path_buf(),
                    line,
                    msg: format!("invalid JSON: {e}"),
                };
                crate::bad_row(err, skip_bad, skipped)?;
            }
        }
    }
    Ok(rows)
}
