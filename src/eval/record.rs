//! Self-describing results: what made an evaluation (the model and a hash of
//! its weights, the prompt, the tasks and a hash of their data, shots,
//! decoding options, seed, promot's version and commit), attached to each
//! cell of its table and saved with it, so a number can be traced later.
//!
//! A saved results file (`save(r, "x")` writes `x.json`) is
//!
//! ```text
//! { "format": "promot-results/1",
//!   "provenance": [ { "promot": {version, commit}, "model": {...}, "prompt": {...}, "tasks": [...],
//!                     "shots": [1, 4], "decoding": {...}, "seed": 0, "created_unix": ... }, ... ],
//!   "cells": [ { "task": "rte", "shots": 1, ..., "provenance": 0 }, ... ] }
//! ```
//!
//! each cell naming its record by index (a merged table has several).
//! Files written before records existed (a bare array of cells) still load.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{cache, Cell, EvalExample, EvalOptions, EvalTask, ResultTable};
use crate::error::{Error, Result};
use crate::model::LanguageModel;
use crate::provenance::{self, Build};

/// The format tag of saved results files.
pub const FORMAT: &str = "promot-results/1";

/// The model an evaluation ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// As given to `load_model` ("toy", a directory, a hub id).
    pub source: String,
    /// Where it was found on disk, when it was.
    pub path: Option<String>,
    /// SHA-256 of each file defining it there (weights, config, tokenizer), by name.
    pub files: BTreeMap<String, String>,
    /// SHA-256 of the weights as evaluated (after any training in this
    /// session, so it differs from the files' once the model was tuned).
    pub weights_sha256: String,
}

/// The soft prompt attached to every query, if any.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    pub name: String,
    pub length: usize,
    /// SHA-256 of its values (f32, little-endian).
    pub sha256: String,
}

/// One task evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub name: String,
    pub metric: String,
    pub examples: usize,
    /// SHA-256 of the task's data as evaluated: its examples, demonstration
    /// pool, template and ready-made episodes (the data files' content as read).
    pub data_sha256: String,
}

/// Everything that made one `evaluate` call's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub promot: Build,
    pub model: ModelRecord,
    pub prompt: Option<PromptRecord>,
    pub tasks: Vec<TaskRecord>,
    pub shots: Vec<usize>,
    /// Beams, length penalty, early stopping, input budget, batch size,
    /// example limit, separator and probe labels.
    pub decoding: Value,
    /// Seeds the demonstrations drawn for each query.
    pub seed: u64,
    pub created_unix: u64,
}

fn hash_example(h: &mut Sha256, e: &EvalExample) {
    h.update(e.input.len().to_le_bytes());
    h.update(e.input.as_bytes());
    if let Some(f) = &e.fields {
        h.update(Value::Object(f.clone()).to_string().as_bytes());
    }
    h.update(e.references.len().to_le_bytes());
    for r in &e.references {
        h.update(r.len().to_le_bytes());
        h.update(r.as_bytes());
    }
}

/// A content hash of a task's data (lengths are hashed too, so moving text
/// between fields changes it).
pub fn task_data_hash(task: &EvalTask) -> String {
    let mut h = Sha256::new();
    h.update(task.template.as_deref().unwrap_or("").as_bytes());
    for (field, cap) in &task.caps {
        h.update(format!("{field}={cap};").as_bytes());
    }
    for (tag, list) in [("examples", &task.examples), ("pool", &task.pool)] {
        h.update(format!("{tag}:{}", list.len()).as_bytes());
        list.iter().for_each(|e| hash_example(&mut h, e));
    }
    for (k, list) in &task.episodes {
        h.update(format!("episodes {k}:{}", list.len()).as_bytes());
        list.iter().for_each(|e| hash_example(&mut h, e));
    }
    format!("{:x}", h.finalize())
}

impl Provenance {
    /// The record of evaluating `tasks` on `model` (loaded from `source`,
    /// found at `location` when that is a local directory or file) with `opts`.
    pub fn of(
        model: &dyn LanguageModel,
        source: &str,
        location: Option<&Path>,
        tasks: &[EvalTask],
        opts: &EvalOptions,
    ) -> Result<Self> {
        let found = location.filter(|p| p.exists());
        let files = match found {
            Some(p) => provenance::model_file_hashes(p)?,
            None => BTreeMap::new(),
        };
        let prompt = match &opts.prompt {
            Some(p) => {
                let values: Vec<f32> = p.tensor().to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                Some(PromptRecord {
                    name: p.name.clone(),
                    length: p.len(),
                    sha256: provenance::sha256_hex(&bytes),
                })
            }
            None => None,
        };
        Ok(Provenance {
            promot: Build::current(),
            model: ModelRecord {
                source: source.to_string(),
                path: found.map(|p| p.display().to_string()),
                files,
                weights_sha256: cache::model_fingerprint(model, None)?,
            },
            prompt,
            tasks: tasks
                .iter()
                .map(|t| TaskRecord {
                    name: t.name.clone(),
                    metric: t.metric.name().to_string(),
                    examples: t.examples.len(),
                    data_sha256: task_data_hash(t),
                })
                .collect(),
            shots: opts.shots.clone(),
            decoding: json!({
                "beams": opts.beams,
                "length_penalty": opts.length_penalty,
                "early_stopping": opts.early_stopping,
                "max_input_len": opts.max_input_len,
                "batch_size": opts.batch_size,
                "limit": opts.limit,
                "separator": opts.separator,
                "probe": opts.probe,
                "max_new_tokens": tasks.iter().map(|t| (t.name.clone(), t.max_new_tokens)).collect::<BTreeMap<_, _>>(),
            }),
            seed: opts.seed,
            created_unix: provenance::unix_time(),
        })
    }
}

/// Attach `record` to every cell of `table` (the cells one evaluation made).
pub fn stamp(table: &mut ResultTable, record: Provenance) {
    let record = Arc::new(record);
    for c in &mut table.cells {
        c.provenance = Some(record.clone());
    }
}

/// A table as its saved JSON: the distinct records once, each cell naming its own.
pub fn to_json(table: &ResultTable) -> Value {
    let mut records: Vec<Arc<Provenance>> = Vec::new();
    let cells: Vec<Value> = table
        .cells
        .iter()
        .map(|c| {
            let mut v = c.to_json();
            if let (Some(p), Value::Object(m)) = (&c.provenance, &mut v) {
                let i = match records.iter().position(|r| Arc::ptr_eq(r, p) || **r == **p) {
                    Some(i) => i,
                    None => {
                        records.push(p.clone());
                        records.len() - 1
                    }
                };
                m.insert("provenance".into(), json!(i));
            }
            v
        })
        .collect();
    json!({
        "format": FORMAT,
        "provenance": records.iter().map(|r| serde_json::to_value(&**r).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        "cells": cells,
    })
}

/// A table from saved JSON: this format, or the bare array of cells older
/// files hold (no records). `what` names the file in errors.
pub fn from_json(v: &Value, what: &str) -> Result<ResultTable> {
    let bad = |why: String| Error::msg(format!("{what}: not a saved results file ({why})"));
    if let Some(cells) = v.as_array() {
        let cells = cells
            .iter()
            .enumerate()
            .map(|(i, c)| Cell::from_json(c).ok_or_else(|| bad(format!("cell {i} is malformed"))))
            .collect::<Result<Vec<_>>>()?;
        return Ok(ResultTable { cells });
    }
    let format = v.get("format").and_then(Value::as_str).unwrap_or("");
    if format != FORMAT {
        return Err(bad(format!("format '{format}', expected '{FORMAT}'")));
    }
    let records: Vec<Arc<Provenance>> = match v.get("provenance") {
        None | Some(Value::Null) => Vec::new(),
        Some(list) => serde_json::from_value::<Vec<Provenance>>(list.clone())
            .map_err(|e| bad(format!("its provenance is malformed: {e}")))?
            .into_iter()
            .map(Arc::new)
            .collect(),
    };
    let cells = v
        .get("cells")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no 'cells' array".into()))?;
    let cells =
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut cell = Cell::from_json(c).ok_or_else(|| bad(format!("cell {i} is malformed")))?;
                cell.provenance =
                    match c.get("provenance").and_then(Value::as_u64) {
                        None => None,
                        Some(k) => Some(records.get(k as usize).cloned().ok_or_else(|| {
                            bad(format!("cell {i} names provenance record {k} of {}", records.len()))
                        })?),
                    };
                Ok(cell)
            })
            .collect::<Result<Vec<_>>>()?;
    Ok(ResultTable { cells })
}

/// Save a table as `path` (JSON, with its records) atomically.
pub fn save(table: &ResultTable, path: &Path) -> Result<()> {
    crate::fsio::write_json(path, &to_json(table))
}

/// Load a saved results file.
pub fn load(path: &Path) -> Result<ResultTable> {
    let v = crate::fsio::read_json(path)?;
    from_json(&v, &path.display().to_string())
}
