//! Self-describing results in scripts: `evaluate` stamps its table with what
//! made it (`crate::eval::record`), `save` writes that into the JSON,
//! `provenance(r)` shows it, and `compare` takes saved files as well as tables.

use std::path::{Path, PathBuf};

use rhai::{Array, Dynamic, Engine, ImmutableString};

use super::eval::json_to_dynamic;
use super::model::{builtin_path, ScriptModel};
use super::tensor::reg;
use super::{to_rhai, RResult};
use serde_json::{json, Value};

use crate::eval::record::{self, Provenance};
use crate::eval::{cache, EvalOptions, EvalTask, ResultTable};
use crate::model::loading;
use crate::provenance::{self, Build};
use crate::train::{metrics_log, TaskData, TrainConfig, TrainOptions};

/// Attach the record of this evaluation to the cells of `table`.
pub fn stamp(m: &ScriptModel, tasks: &[EvalTask], opts: &EvalOptions, table: &mut ResultTable) -> RResult<()> {
    let p = Provenance::of(m.lm(), &m.source, location(&m.source).as_deref(), tasks, opts).map_err(to_rhai)?;
    record::stamp(table, p);
    Ok(())
}

/// Where a model named `source` lies on this machine, looked up locally only
/// (never the network): a directory or file, "smollm2", or a hub id's
/// snapshot in the Hugging Face cache. `None` for a model made in memory.
fn location(source: &str) -> Option<PathBuf> {
    let spec = builtin_path(source);
    if spec == "smollm2" || Path::new(&spec).exists() {
        return loading::resolve(&spec).ok();
    }
    let config = hf_hub::Cache::from_env().model(spec).get("config.json")?;
    config.parent().map(Path::to_path_buf)
}

/// Describe a `train` call in its run folder (`run.json` beside
/// `metrics.jsonl`): promot's build, the model and a hash of its weights as
/// the call starts, the options, the prompts and a hash of each task's data.
pub fn describe_run(m: &ScriptModel, opts: &TrainOptions, config: &TrainConfig, tasks: &[TaskData]) -> RResult<()> {
    let (run_dir, checkpoint_dir) = (opts.run_dir.as_deref(), opts.checkpoint_dir.as_deref());
    if run_dir.or(checkpoint_dir).is_none() {
        return Ok(());
    }
    let prompts: Vec<Value> = opts
        .prompt
        .iter()
        .chain(opts.task_prompts.values())
        .map(|p| json!({"name": p.name, "length": p.len(), "trains": p.is_trainable()}))
        .collect();
    let data: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let text: String = t
                .examples
                .iter()
                .map(|e| format!("{}\u{1f}{}\u{1f}{}\u{1e}", e.task, e.input, e.target))
                .collect();
            json!({"task": t.name, "examples": t.examples.len(), "ratio": t.ratio,
                   "sha256": provenance::sha256_hex(text.as_bytes())})
        })
        .collect();
    let record = json!({
        "format": "promot-run/1",
        "promot": Build::current(),
        "model": {
            "source": m.source,
            "weights_sha256_at_start": cache::model_fingerprint(m.lm(), None).map_err(to_rhai)?,
        },
        "options": serde_json::to_value(config).map_err(to_rhai)?,
        "prompts": prompts,
        "data": data,
        "started_unix": provenance::unix_time(),
    });
    metrics_log::write_run_record(run_dir, checkpoint_dir, &record).map_err(to_rhai)
}

/// A Results value, or the path of a saved results file read back.
pub fn results_arg(what: &str, d: &Dynamic) -> RResult<ResultTable> {
    if let Some(t) = d.read_lock::<ResultTable>() {
        return Ok(t.clone());
    }
    if let Some(p) = d.read_lock::<ImmutableString>() {
        return record::load(Path::new(p.as_str())).map_err(|e| to_rhai(format!("{what}: {e}")));
    }
    Err(to_rhai(format!(
        "{what}: expected Results from evaluate or the path of a saved results file, got {}",
        d.type_name()
    )))
}

pub fn register(engine: &mut Engine) {
    reg(
        engine,
        "provenance",
        &["r: Results", "Array"],
        "What made a results table: one map per evaluate call in it #{promot, model, prompt, tasks, shots, decoding, seed, created_unix}.",
        |t: &mut ResultTable| -> Array {
            let v = record::to_json(t);
            match v.get("provenance") {
                Some(serde_json::Value::Array(list)) => list.iter().map(json_to_dynamic).collect(),
                _ => Array::new(),
            }
        },
    );
}
