//! Parquet files and Hugging Face `datasets.save_to_disk` directories, read as rows.
//!
//! Every record becomes a JSON object (through `arrow-json`), so the field mapping, its defaults
//! and the per-row errors of JSONL apply unchanged; a row's number is its 1-based position in its
//! file. What is read:
//! - a `.parquet` file (what `datasets.to_parquet` writes and the Hub serves);
//! - a `.arrow` file, Arrow IPC stream or file format (`save_to_disk` writes streams);
//! - a `save_to_disk` directory: a `Dataset` (`state.json` lists its shards) or a `DatasetDict`
//!   (`dataset_dict.json` lists its splits, one sub-directory each: the splits are given);
//! - a directory of parquet shards named like the Hub's (`train-00000-of-00002.parquet`).
//!
//! `ClassLabel` columns are stored as integers; their names, from the `huggingface` schema
//! metadata both formats carry, replace the integers (ANLI's `label` 0 reads `entailment`).

use crate::rows::Row;
use crate::{DataError, Result};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use mentor_core::Split;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Rows of one file, with the split its place in a `DatasetDict` (or its shard name) gives.
#[derive(Debug)]
pub struct Part {
    pub file: PathBuf,
    pub split: Option<Split>,
    pub rows: Vec<Row>,
}

/// Whether `path` is read here rather than as JSON lines.
pub fn is_columnar(path: &Path) -> bool {
    path.is_dir()
        || path
            .extension()
            .is_some_and(|e| e == "parquet" || e == "arrow")
}

/// Reads every row of a parquet / Arrow file or a `datasets` directory (see the module doc).
pub fn read_parts(path: &Path) -> Result<Vec<Part>> {
    if !path.is_dir() {
        return Ok(vec![read_file(path, None)?]);
    }
    let dict = path.join("dataset_dict.json");
    if dict.exists() {
        let splits: Vec<String> = read_json(&dict)?
            .get("splits")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .ok_or_else(|| bad_file(&dict, "no `splits` list"))?;
        let mut parts = Vec::new();
        for name in splits {
            let split = match name.parse::<Split>() {
                Ok(s) => s,
                Err(_) => {
                    tracing::warn!(
                        "{}: skipping split `{name}` (mentor uses train, valid/validation and test)",
                        path.display()
                    );
                    continue;
                }
            };
            for mut p in read_dataset_dir(&path.join(&name))? {
                p.split = Some(split);
                parts.push(p);
            }
        }
        return Ok(parts);
    }
    read_dataset_dir(path)
}

/// One `Dataset` directory: the shards `state.json` lists in order, else every `.arrow` /
/// `.parquet` file in name order (a shard named `train-…` / `test-…` gives its split).
fn read_dataset_dir(dir: &Path) -> Result<Vec<Part>> {
    let state = dir.join("state.json");
    let files: Vec<PathBuf> = if state.exists() {
        read_json(&state)?
            .get("_data_files")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("filename").and_then(Value::as_str))
                    .map(|f| dir.join(f))
                    .collect()
            })
            .ok_or_else(|| bad_file(&state, "no `_data_files` list"))?
    } else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| DataError::Io {
                file: dir.to_path_buf(),
                cause: source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|e| e == "parquet" || e == "arrow")
            })
            .collect();
        files.sort();
        files
    };
    if files.is_empty() {
        return Err(bad_file(
            dir,
            "a directory dataset needs `.parquet` or `.arrow` files, a `datasets.save_to_disk` \
             directory (state.json) or a DatasetDict (dataset_dict.json)",
        ));
    }
    files
        .iter()
        .map(|f| {
            let split = f
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split(['-', '.', '_']).next())
                .and_then(|s| s.parse::<Split>().ok());
            read_file(f, split)
        })
        .collect()
}

fn read_file(path: &Path, split: Option<Split>) -> Result<Part> {
    let arrow_err = |e: &dyn std::fmt::Display| bad_file(path, &format!("cannot read: {e}"));
    let open = || {
        File::open(path).map_err(|source| DataError::Io {
            file: path.to_path_buf(),
            cause: source,
        })
    };
    let (schema, batches): (SchemaRef, Vec<RecordBatch>) =
        if path.extension().is_some_and(|e| e == "parquet") {
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open()?)
                    .map_err(|e| arrow_err(&e))?;
            let schema = builder.schema().clone();
            let reader = builder.build().map_err(|e| arrow_err(&e))?;
            let batches = reader
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| arrow_err(&e))?;
            (schema, batches)
        } else {
            // save_to_disk writes the IPC stream format; `.arrow` files written with a file
            // writer carry a footer instead: try the stream first, then the file format.
            match arrow_ipc::reader::StreamReader::try_new(BufReader::new(open()?), None) {
                Ok(r) => {
                    let schema = r.schema();
                    let batches = r
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| arrow_err(&e))?;
                    (schema, batches)
                }
                Err(stream_err) => {
                    let r = arrow_ipc::reader::FileReader::try_new(open()?, None).map_err(|e| {
                        arrow_err(&format!(
                            "neither an Arrow IPC stream ({stream_err}) nor an Arrow file ({e})"
                        ))
                    })?;
                    let schema = r.schema();
                    let batches = r
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| arrow_err(&e))?;
                    (schema, batches)
                }
            }
        };
    let class_labels = class_labels(&schema);
    let mut rows = Vec::new();
    for batch in batches {
        let batch = without_binary_columns(&batch).map_err(|e| arrow_err(&e))?;
        let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
        w.write(&batch).map_err(|e| arrow_err(&e))?;
        w.finish().map_err(|e| arrow_err(&e))?;
        let bytes = w.into_inner();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let mut value: Value = serde_json::from_slice(line).map_err(|e| arrow_err(&e))?;
            name_class_labels(&mut value, &class_labels);
            rows.push(Row {
                line: rows.len() + 1,
                value,
            });
        }
    }
    Ok(Part {
        file: path.to_path_buf(),
        split,
        rows,
    })
}

/// Images and audio (binary columns) are no text a student reads: they are left out, rather than
/// failing the JSON encoding.
fn without_binary_columns(batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
    let keep: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !is_binary(f.data_type()))
        .map(|(i, _)| i)
        .collect();
    if keep.len() == batch.num_columns() {
        return Ok(batch.clone());
    }
    batch.project(&keep).map_err(|e| e.to_string())
}

fn is_binary(t: &DataType) -> bool {
    match t {
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => true,
        DataType::Struct(fields) => fields.iter().any(|f| is_binary(f.data_type())),
        _ => false,
    }
}

/// `ClassLabel` names per top-level column, from the `huggingface` schema metadata
/// (`{"info": {"features": {...}}}`).
fn class_labels(schema: &SchemaRef) -> HashMap<String, Vec<String>> {
    let Some(meta) = schema.metadata().get("huggingface") else {
        return HashMap::new();
    };
    let Ok(meta) = serde_json::from_str::<Value>(meta) else {
        return HashMap::new();
    };
    let Some(features) = meta.pointer("/info/features").and_then(Value::as_object) else {
        return HashMap::new();
    };
    features
        .iter()
        .filter(|(_, f)| f.get("_type").and_then(Value::as_str) == Some("ClassLabel"))
        .filter_map(|(k, f)| {
            let names = f.get("names")?.as_array()?;
            Some((
                k.clone(),
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect(),
            ))
        })
        .collect()
}

fn name_class_labels(row: &mut Value, labels: &HashMap<String, Vec<String>>) {
    let Value::Object(m) = row else { return };
    for (col, names) in labels {
        if let Some(v) = m.get_mut(col) {
            if let Some(name) = v
                .as_u64()
                .and_then(|i| names.get(i as usize))
                .map(|n| Value::String(n.clone()))
            {
                *v = name;
            }
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        file: path.to_path_buf(),
        cause: source,
    })?;
    serde_json::from_str(&text).map_err(|e| bad_file(path, &format!("invalid JSON: {e}")))
}

fn bad_file(path: &Path, msg: &str) -> DataError {
    DataError::BadFile {
        file: path.to_path_buf(),
        msg: msg.to_string(),
    }
}
