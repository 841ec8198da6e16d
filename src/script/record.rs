//! Self-describing results in scripts: `evaluate` stamps its table with what
//! made it (`Session::evaluate`, `crate::eval::record`), `save` writes that into the JSON,
//! `provenance(r)` shows it, and `compare` takes saved files as well as tables.

use std::path::Path;

use rhai::{Array, Dynamic, Engine, ImmutableString};

use super::eval::json_to_dynamic;
use super::tensor::reg;
use super::{to_rhai, RResult};

use crate::eval::{record, ResultTable};

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
