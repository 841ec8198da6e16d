//! `metrics.jsonl`: one JSON object per training step, in the run's folder
//! (`run_dir`, else `checkpoint_dir`), for plotting and for tracing a run
//! later:
//!
//! ```text
//! {"step":1,"loss":2.31,"lr":{"model":0.001},"grad_norm":4.2,"steps_per_sec":3.1,"label":"fine-tuning"}
//! {"step":2,"loss":2.18,"lr":{"model":0.001},"grad_norm":3.9,"steps_per_sec":3.3,"label":"fine-tuning","eval":0.61}
//! ```
//!
//! `step` counts steps done (as checkpoints do); `lr` is each parameter
//! group's learning rate for that step; `grad_norm` the gradient's global norm
//! before clipping; `steps_per_sec` the rate of that step alone (its batch,
//! forward, backward and update); `eval` the evaluation's score when one ran
//! after that step.
//!
//! A fresh run (from step 0) starts the file anew. A run resumed from the
//! checkpoint at step s keeps the lines of steps 1..=s and drops any after
//! (written before the interruption, then undone by resuming), so the file
//! always has one line per step of the run's history.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The log's file name inside the run folder.
pub const FILE: &str = "metrics.jsonl";
/// Beside it, what the run is (`write_run_record`).
pub const RUN_FILE: &str = "run.json";

/// Write `record` (what a `train` call is: promot's build, model, options,
/// data) as `run.json` in the run's folder (`run_dir`, else
/// `checkpoint_dir`; neither: nothing). Each call rewrites it, so after a
/// resume it describes the call that continued the run.
pub fn write_run_record(
    run_dir: Option<&Path>,
    checkpoint_dir: Option<&Path>,
    record: &serde_json::Value,
) -> Result<()> {
    match run_dir.or(checkpoint_dir) {
        Some(dir) => crate::fsio::write_json(&dir.join(RUN_FILE), record),
        None => Ok(()),
    }
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub loss: f64,
    pub lr: BTreeMap<String, f64>,
    pub grad_norm: f64,
    pub steps_per_sec: f64,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval: Option<f64>,
}

/// The log of one `train` call; does nothing when the run has no folder.
pub struct MetricsLog {
    file: Option<(PathBuf, File)>,
    label: String,
    mark: Instant,
    pending: Option<StepRecord>,
}

impl MetricsLog {
    /// No folder: nothing is written.
    pub fn disabled() -> Self {
        MetricsLog {
            file: None,
            label: String::new(),
            mark: Instant::now(),
            pending: None,
        }
    }

    /// The log in `dir` for a run that continues from step `start` (0: a
    /// fresh run): earlier lines past `start` are dropped first.
    pub fn open(dir: &Path, start: usize, label: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create the run folder: {e}")))?;
        let path = dir.join(FILE);
        truncate_after(&path, start)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::file(&path, format!("cannot open the metrics log: {e}")))?;
        Ok(MetricsLog {
            file: Some((path, file)),
            label: label.to_string(),
            mark: Instant::now(),
            pending: None,
        })
    }

    /// The log of a run with these folders (`run_dir` first), or a disabled one.
    pub fn for_run(run_dir: Option<&Path>, checkpoint_dir: Option<&Path>, start: usize, label: &str) -> Result<Self> {
        match run_dir.or(checkpoint_dir) {
            Some(dir) => Self::open(dir, start, label),
            None => Ok(Self::disabled()),
        }
    }

    /// Where the log is written, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    /// Step `step` (counted from 1) is done: its loss, gradient norm and the
    /// learning rate of each group. Its rate is the time since the last line.
    pub fn step(&mut self, step: usize, loss: f64, grad_norm: f64, lr: impl IntoIterator<Item = (String, f64)>) {
        if self.file.is_none() {
            return;
        }
        let secs = self.mark.elapsed().as_secs_f64();
        self.pending = Some(StepRecord {
            step,
            loss,
            lr: lr.into_iter().collect(),
            grad_norm,
            steps_per_sec: if secs > 0.0 { 1.0 / secs } else { 0.0 },
            label: self.label.clone(),
            eval: None,
        });
    }

    /// The evaluation after the current step scored `score`.
    pub fn eval(&mut self, score: f64) {
        if let Some(r) = &mut self.pending {
            r.eval = Some(score);
        }
    }

    /// Write the current step's line (flushed, so a crash loses at most it).
    pub fn write(&mut self) -> Result<()> {
        let (Some((path, file)), Some(record)) = (&mut self.file, self.pending.take()) else {
            return Ok(());
        };
        let mut line = serde_json::to_string(&record)?;
        line.push('\n');
        file.write_all(line.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| Error::file(path, format!("cannot write the metrics log: {e}")))?;
        self.mark = Instant::now();
        Ok(())
    }
}

/// Keep only the lines of steps `1..=start` (all dropped for `start` 0); a
/// line that does not parse (cut off by a crash) is dropped too.
fn truncate_after(path: &Path, start: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept = if start == 0 {
        String::new()
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
        text.lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s as usize <= start)
            })
            .map(|line| format!("{line}\n"))
            .collect()
    };
    crate::fsio::write_atomic(path, kept.as_bytes())
}

/// Read a metrics log back, one record per line; a malformed line is an
/// error naming it (`file:line`).
pub fn read(path: &Path) -> Result<Vec<StepRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::msg(format!("{}:{}: not a metrics line: {e}", path.display(), i + 1)))
        })
        .collect()
}
