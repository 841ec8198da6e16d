//! The options of `train`, declared once: this struct's fields are the option
//! names scripts use, its `Default` gives the defaults `help("train")` lists,
//! and an unknown key is an error naming the known ones. `build` turns it into
//! the trainer's [`TrainOptions`] (prompts and the evaluation hook are not
//! data, so the caller attaches them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{BatchOptions, Keep, TrainOptions};
use crate::data::fewshot::DEFAULT_SEPARATOR;
use crate::error::{Error, Result};
use crate::model::precision::MatmulDtype;
use crate::optim::{OptimOptions, Schedule};
use crate::options::{number, opt_number};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimiser steps to train for (a resumed run continues up to it).
    pub steps: usize,
    pub batch_size: usize,
    /// Learning rate of model weights.
    #[serde(deserialize_with = "number")]
    pub lr: f64,
    /// Learning rate of soft prompts (prompt tuning uses a much larger one).
    #[serde(deserialize_with = "number")]
    pub prompt_lr: f64,
    /// adafactor, adamw or sgd.
    pub optimizer: String,
    /// constant, linear_warmup, linear_warmup_decay or rsqrt.
    pub schedule: String,
    pub warmup: u64,
    /// Clip the global gradient norm to this (none: no clipping).
    #[serde(deserialize_with = "opt_number")]
    pub clip_norm: Option<f64>,
    #[serde(deserialize_with = "number")]
    pub dropout: f64,
    #[serde(deserialize_with = "number")]
    pub label_smoothing: f64,
    /// Demonstrations prepended to every input (the "+1-shot" methods).
    pub shots: usize,
    /// Between demonstrations and the query; none: the model's own.
    pub separator: Option<String>,
    /// Call the `evaluate` function every this many steps (0: never).
    pub eval_every: usize,
    /// "best" restores the best-evaluated state at the end; "last" keeps the last.
    pub keep: Keep,
    pub checkpoint_dir: Option<PathBuf>,
    /// Where `metrics.jsonl` (one line per step) goes; none: `checkpoint_dir`.
    pub run_dir: Option<PathBuf>,
    /// Save a checkpoint every this many steps (0: at evaluations and the end).
    pub save_every: usize,
    /// Continue from the latest checkpoint in `checkpoint_dir`.
    pub resume: bool,
    /// Seeds batches, demonstrations and dropout.
    pub seed: u64,
    pub max_input_len: usize,
    pub max_target_len: usize,
    /// Group examples of similar length (less padding).
    pub bucket_by_length: bool,
    #[serde(deserialize_with = "opt_number")]
    pub weight_decay: Option<f64>,
    #[serde(deserialize_with = "opt_number")]
    pub momentum: Option<f64>,
    /// Adafactor on model weights: scale each step by the weight's RMS
    /// (T5X's default, the paper's code base; none: off, as transformers).
    pub multiply_by_parameter_scale: Option<bool>,
    /// Adafactor on model weights: factor a matrix's second moment only when
    /// both its largest dims are at least this (T5X: 128; none: every matrix,
    /// as transformers).
    pub min_dim_size_to_factor: Option<usize>,
    /// Adafactor on prompts: scale each step by the prompt's RMS (the
    /// prompt-tuning code: off).
    pub prompt_multiply_by_parameter_scale: Option<bool>,
    /// "f32", or "bf16": products with bf16 operands and f32 sums, f32
    /// weights and loss (mixed precision, as PyTorch's autocast).
    pub dtype: MatmulDtype,
    pub quiet: bool,
    /// Name shown in progress lines.
    pub label: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            batch_size: 8,
            lr: 1e-3,
            prompt_lr: 0.2,
            optimizer: "adafactor".into(),
            schedule: "constant".into(),
            warmup: 0,
            clip_norm: None,
            dropout: 0.1,
            label_smoothing: 0.1,
            shots: 0,
            separator: None,
            eval_every: 0,
            keep: Keep::Last,
            checkpoint_dir: None,
            run_dir: None,
            save_every: 0,
            resume: true,
            seed: 0,
            max_input_len: 512,
            max_target_len: 128,
            bucket_by_length: false,
            weight_decay: None,
            momentum: None,
            multiply_by_parameter_scale: None,
            min_dim_size_to_factor: None,
            prompt_multiply_by_parameter_scale: None,
            dtype: MatmulDtype::F32,
            quiet: false,
            label: "train".into(),
        }
    }
}

impl TrainConfig {
    /// The trainer's options, checked (schedule name, dropout range).
    pub fn build(&self) -> Result<TrainOptions> {
        let schedule = Schedule::from_name(&self.schedule, self.warmup, self.steps as u64)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::msg(format!(
                "option 'dropout' must be in [0, 1), got {}",
                self.dropout
            )));
        }
        let mut opts = self.with_schedule(schedule);
        let flag = |b: Option<bool>| b.map(|b| if b { 1.0 } else { 0.0 });
        let model_knobs = [
            ("multiply_by_parameter_scale", flag(self.multiply_by_parameter_scale)),
            ("min_dim_size_to_factor", self.min_dim_size_to_factor.map(|n| n as f64)),
        ];
        let prompt_knobs = [
            (
                "multiply_by_parameter_scale",
                flag(self.prompt_multiply_by_parameter_scale),
            ),
            ("min_dim_size_to_factor", self.min_dim_size_to_factor.map(|n| n as f64)),
        ];
        let shared = [("weight_decay", self.weight_decay), ("momentum", self.momentum)];
        for (options, knobs) in [
            (&mut opts.optim_options, model_knobs),
            (&mut opts.prompt_optim_options, prompt_knobs),
        ] {
            for (key, value) in shared.iter().chain(knobs.iter()) {
                if let Some(v) = value {
                    options.set(key, *v)?;
                }
            }
        }
        Ok(opts)
    }

    fn with_schedule(&self, schedule: Schedule) -> TrainOptions {
        TrainOptions {
            steps: self.steps,
            batch: BatchOptions {
                batch_size: self.batch_size,
                max_input_len: self.max_input_len,
                max_target_len: self.max_target_len,
                shots: self.shots,
                separator: self.separator.clone().unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
                bucket_by_length: self.bucket_by_length,
                seed: self.seed,
            },
            optimizer: self.optimizer.clone(),
            optim_options: OptimOptions::default(),
            prompt_optim_options: OptimOptions::default(),
            lr: self.lr,
            prompt_lr: self.prompt_lr,
            schedule,
            clip_norm: self.clip_norm,
            dropout: self.dropout,
            label_smoothing: self.label_smoothing,
            prompt: None,
            task_prompts: Default::default(),
            eval_every: self.eval_every,
            keep: self.keep.clone(),
            checkpoint_dir: self.checkpoint_dir.clone(),
            run_dir: self.run_dir.clone(),
            save_every: self.save_every,
            resume: self.resume,
            dtype: self.dtype,
            quiet: self.quiet,
            label: self.label.clone(),
        }
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainConfig::default().with_schedule(Schedule::Constant)
    }
}
