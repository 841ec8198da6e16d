//! Evaluation results cached on disk, keyed by everything that determines
//! them: the model's weights, the attached prompt, the task's content, the
//! shot count, the limit and the decoding options. A repeated evaluation is
//! answered from here instantly.
//!
//! Location: $PROMOT_CACHE, else .promot-cache/ in the current directory.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Cell, EvalOptions, EvalTask};
use crate::error::Result;
use crate::fsio;
use crate::model::LanguageModel;
use crate::prompt::SoftPrompt;

pub fn cache_dir() -> PathBuf {
    std::env::var_os("PROMOT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".promot-cache"))
        .join("eval")
}

fn hash_tensor(h: &mut Sha256, name: &str, t: &candle_core::Tensor) -> Result<()> {
    h.update(name.as_bytes());
    let values: Vec<f32> = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
    for v in values {
        h.update(v.to_le_bytes());
    }
    Ok(())
}

/// A hash of every weight (and the prompt, if any): the "checkpoint hash".
pub fn model_fingerprint(model: &dyn LanguageModel, prompt: Option<&SoftPrompt>) -> Result<String> {
    let mut h = Sha256::new();
    h.update(model.config_json().to_string().as_bytes());
    for p in model.params().iter() {
        hash_tensor(&mut h, p.name(), p.var().as_tensor())?;
    }
    if let Some(p) = prompt {
        hash_tensor(&mut h, "prompt", p.param().var().as_tensor())?;
    }
    Ok(format!("{:x}", h.finalize()))
}

pub fn cell_key(model_hash: &str, task: &EvalTask, shots: usize, opts: &EvalOptions) -> String {
    let mut h = Sha256::new();
    h.update(model_hash.as_bytes());
    h.update(task.name.as_bytes());
    h.update(task.metric.name().as_bytes());
    h.update(format!("{:?}|{}|{}", task.kind, task.max_new_tokens, task.pool_is_eval).as_bytes());
    let mut example = |e: &super::EvalExample| {
        h.update(e.input.as_bytes());
        if let Some(f) = &e.fields {
            h.update(serde_json::Value::Object(f.clone()).to_string().as_bytes());
        }
        for r in &e.references {
            h.update(r.as_bytes());
        }
    };
    task.examples.iter().for_each(&mut example);
    task.pool.iter().for_each(&mut example);
    task.episodes.values().flatten().for_each(&mut example);
    h.update(format!("{:?}|{:?}", task.template, task.caps).as_bytes());
    for (k, eps) in &task.episodes {
        h.update(format!("episodes{k}:{}", eps.len()).as_bytes());
    }
    let g = opts.generate_options(0);
    h.update(
        format!(
            "k={shots}|limit={:?}|beams={}|lp={}|es={}|seed={}|max_in={}|probe={:?}{}|sep={:?}",
            opts.limit,
            g.num_beams,
            g.length_penalty,
            g.early_stopping,
            opts.seed,
            opts.max_input_len,
            opts.probe,
            if opts.probe_every_word { " every word" } else { "" },
            opts.separator
        )
        .as_bytes(),
    );
    format!("{:x}", h.finalize())
}

pub fn get(key: &str) -> Option<Cell> {
    let v = fsio::read_json(cache_dir().join(format!("{key}.json"))).ok()?;
    // A cell cached before examples' statistics were kept cannot be resampled: evaluate it again.
    Cell::from_json(&v).filter(|c| c.resamplable() > 0)
}

/// Best effort: a cache that cannot be written only costs time later.
pub fn put(key: &str, cell: &Cell) {
    let _ = fsio::write_json(&cache_dir().join(format!("{key}.json")), &cell.to_json());
}
