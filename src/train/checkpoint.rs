//! Training checkpoints: everything needed to continue a run exactly as if it
//! had never stopped — trainable values (model and prompts), optimiser state,
//! the step, the dropout stream position and the history so far.
//!
//! Layout: DIR/step-000120/{state.safetensors, state.json} and DIR/latest
//! naming the newest complete one. A step directory is written under a
//! temporary name and renamed when complete, then `latest` is replaced
//! atomically, so a crash at any moment leaves the previous checkpoint usable.
//! A directory replaced under the same name (DIR/best, or a step saved
//! again) is first moved aside to `.NAME.old` and removed only once the new
//! one is in place; readers fall back to it, so no moment lacks a complete copy.
//! With keep-best, DIR/best holds the best-evaluated trainable values the
//! same way, so a resumed run still ends on its best state.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::folder_lock::FolderLock;
use crate::fsio;
use crate::params::Param;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    pub step: usize,
    pub optimizer_steps: Vec<u64>,
    pub dropout_seed: String,
    pub dropout_word_pos: String,
    /// Losses are f32 values; kept as f32 so they survive the JSON round trip bit for bit.
    pub losses: Vec<f32>,
    pub evals: Vec<(usize, f64)>,
    pub best: Option<(usize, f64)>,
    /// The step at which the run reached its goal and ended (absent in
    /// checkpoints from before goals existed).
    #[serde(default)]
    pub goal_step: Option<usize>,
}

pub struct Checkpoint {
    pub meta: Meta,
    pub tensors: HashMap<String, Tensor>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_seed(s: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return Err(Error::msg("checkpoint: bad dropout seed"));
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| Error::msg("checkpoint: bad dropout seed"))?;
    }
    Ok(out)
}

pub fn seed_hex(seed: &[u8; 32]) -> String {
    hex(seed)
}

/// Save trainable values and optimiser state under `dir`, atomically.
pub fn save(dir: &Path, params: &[Param], optim: &[BTreeMap<String, Tensor>], meta: &Meta) -> Result<PathBuf> {
    let mut tensors = param_tensors(params)?;
    for (i, state) in optim.iter().enumerate() {
        for (k, v) in state {
            tensors.insert(format!("optim{i}/{k}"), v.contiguous()?);
        }
    }
    let name = format!("step-{:06}", meta.step);
    let final_dir = write_dir(dir, &name, &tensors, meta)?;
    let previous = latest_name(dir);
    fsio::write_atomic(&dir.join("latest"), name.as_bytes())?;
    // Keep only the newest checkpoint (and never the one just written).
    if let Some(prev) = previous.filter(|p| *p != name) {
        let _ = std::fs::remove_dir_all(dir.join(prev));
    }
    Ok(final_dir)
}

/// Save the best-evaluated trainable values as DIR/best (atomically,
/// replacing the previous best), so a run resumed after a crash, or resumed
/// when already finished, still ends on its best state.
pub fn save_best(dir: &Path, params: &[Param], meta: &Meta) -> Result<PathBuf> {
    write_dir(dir, BEST, &param_tensors(params)?, meta)
}

/// The best-evaluated values saved under `dir`, if any.
pub fn load_best(dir: &Path, device: &candle_core::Device) -> Result<Option<Checkpoint>> {
    match complete_dir(dir, BEST) {
        Some(best) => load_dir(&best, device).map(Some),
        None => Ok(None),
    }
}

/// Remove DIR/best (a fresh run must not end on an older run's best).
pub fn clear_best(dir: &Path) -> Result<()> {
    for best in [dir.join(BEST), aside(dir, BEST)] {
        if best.exists() {
            std::fs::remove_dir_all(&best).map_err(|e| Error::file(&best, e))?;
        }
    }
    Ok(())
}

const BEST: &str = "best";

fn param_tensors(params: &[Param]) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::new();
    for p in params {
        tensors.insert(format!("param/{}", p.name()), p.var().as_tensor().contiguous()?);
    }
    Ok(tensors)
}

/// Write DIR/NAME/{state.safetensors, state.json} under a temporary name,
/// then rename it into place.
fn write_dir(dir: &Path, name: &str, tensors: &HashMap<String, Tensor>, meta: &Meta) -> Result<PathBuf> {
    fsio::ensure_dir(dir)?;
    let tmp = dir.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = fsio::ensure_dir(&tmp)
        .and_then(|()| fsio::save_safetensors(&tmp.join("state.safetensors"), tensors))
        .and_then(|()| fsio::write_json(&tmp.join("state.json"), &serde_json::to_value(meta)?));
    if let Err(e) = written {
        // (A full disk: leave no partial checkpoint taking space; the previous one is untouched.)
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let final_dir = dir.join(name);
    let old = aside(dir, name);
    if final_dir.exists() {
        // Moved aside, not removed: until the new one is in place it is the copy readers use.
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&final_dir, &old).map_err(|e| Error::file(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| Error::file(&final_dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(final_dir)
}

/// Where `write_dir` moves DIR/NAME while it puts a new one in its place.
fn aside(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.old"))
}

/// DIR/NAME if complete, else the copy moved aside while it was being replaced.
fn complete_dir(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), aside(dir, name)]
        .into_iter()
        .find(|d| d.join("state.json").exists())
}

/// Remove every checkpoint under `dir` (a fresh start); other files stay.
/// Fails, removing nothing, while a run holds the folder (`FolderLock`).
pub fn clear(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let _lock = FolderLock::acquire(dir, "clearing its checkpoints")?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("step-") || name.starts_with(".step-") || name == BEST || name.starts_with(".best.") {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::file(e.path(), err))?;
        } else if name == "latest" {
            std::fs::remove_file(e.path()).map_err(|err| Error::file(e.path(), err))?;
        }
    }
    Ok(())
}

fn latest_name(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("latest"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The newest complete checkpoint under `dir`, if any.
pub fn load_latest(dir: &Path, device: &candle_core::Device) -> Result<Option<Checkpoint>> {
    let Some(name) = latest_name(dir) else { return Ok(None) };
    let step_dir = complete_dir(dir, &name).unwrap_or_else(|| dir.join(&name));
    load_dir(&step_dir, device).map(Some)
}

fn load_dir(step_dir: &Path, device: &candle_core::Device) -> Result<Checkpoint> {
    let meta_path = step_dir.join("state.json");
    let meta: Meta = serde_json::from_value(fsio::read_json(&meta_path)?)
        .map_err(|e| Error::file(&meta_path, format!("not a promot checkpoint: {e}")))?;
    let tensors = fsio::load_safetensors(&step_dir.join("state.safetensors"), device)?;
    Ok(Checkpoint { meta, tensors })
}

impl Checkpoint {
    /// Write the saved values back into the parameters.
    pub fn restore_params(&self, params: &[Param]) -> Result<()> {
        for p in params {
            let key = format!("param/{}", p.name());
            let t = self.tensors.get(&key).ok_or_else(|| {
                Error::msg(format!(
                    "checkpoint has no value for '{}'; was it made with the same trainable parameters?",
                    p.name()
                ))
            })?;
            p.assign(t)?;
        }
        Ok(())
    }

    /// The optimiser state of optimiser `i`.
    pub fn optim_state(&self, i: usize) -> BTreeMap<String, Tensor> {
        let prefix = format!("optim{i}/");
        self.tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    }
}
