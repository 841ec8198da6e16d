//! The options of `train`, declared once: this struct's fields are the option
//! names scripts use, its `Default` gives the defaults `help("train")` lists,
//! and an unknown key is an error naming the known ones. `build` turns it into
//! the trainer's [`TrainOptions`] (prompts and the evaluation hook are not
//! data, so the caller attaches them).
//!
//! Each parameter group has its own optimiser settings, one literal each
//! (`optim::GroupSettings`): `weights_optimizer` for the model's weights,
//! `prompt_optimizer` for soft prompts. The flat keys (`lr`, `prompt_lr`, `optimizer`, `schedule`,
//! `warmup`, `weight_decay`, `momentum`, `multiply_by_parameter_scale`,
//! `prompt_multiply_by_parameter_scale`, `min_dim_size_to_factor`) are
//! shorthand: each one given sets that setting in its group(s), over the
//! literal; `optimizer` switches both groups to that optimiser at its
//! defaults, keeping their learning rates and schedules.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{BatchOptions, Keep, TrainOptions};
use crate::data::fewshot::DEFAULT_SEPARATOR;
use crate::error::{Error, Result};
use crate::kernels::precision::MatmulDtype;
use crate::optim::GroupSettings;
use crate::options::{number, opt_number};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimiser steps to train for (a resumed run continues up to it).
    pub steps: usize,
    pub batch_size: usize,
    /// The model weights' optimiser: #{ optimizer, lr, schedule, warmup, and
    /// that optimiser's own options } (transformers' Adafactor at 1e-3).
    pub weights_optimizer: GroupSettings,
    /// The soft prompts' optimiser, as `weights_optimizer` (Adafactor at 0.2).
    pub prompt_optimizer: GroupSettings,
    /// Shorthand: the weights' learning rate.
    #[serde(deserialize_with = "opt_number")]
    pub lr: Option<f64>,
    /// Shorthand: the prompts' learning rate.
    #[serde(deserialize_with = "opt_number")]
    pub prompt_lr: Option<f64>,
    /// Shorthand: both groups' optimiser (adafactor, adamw or sgd) at its defaults.
    pub optimizer: Option<String>,
    /// Shorthand: both groups' schedule (constant, linear_warmup, linear_warmup_decay or rsqrt).
    pub schedule: Option<String>,
    /// Shorthand: both groups' warm-up steps.
    pub warmup: Option<u64>,
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
    /// Shorthand: both groups' weight decay.
    #[serde(deserialize_with = "opt_number")]
    pub weight_decay: Option<f64>,
    /// Shorthand: both groups' momentum (Adafactor's and AdamW's beta1, SGD's momentum).
    #[serde(deserialize_with = "opt_number")]
    pub momentum: Option<f64>,
    /// Shorthand, Adafactor on model weights: scale each step by the weight's
    /// RMS (T5X's default, the paper's code base).
    pub multiply_by_parameter_scale: Option<bool>,
    /// Shorthand, Adafactor: factor a matrix's second moment only when both
    /// its largest dims are at least this (T5X: 128), in both groups.
    pub min_dim_size_to_factor: Option<usize>,
    /// Shorthand, Adafactor on prompts: scale each step by the prompt's RMS.
    pub prompt_multiply_by_parameter_scale: Option<bool>,
    /// "f32", or "bf16": products with bf16 operands and f32 sums, f32
    /// weights and loss (mixed precision, as PyTorch's autocast), on the CPU
    /// (BLAS path) and on a GPU (bf16 copies through cuBLAS).
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
            weights_optimizer: GroupSettings::adafactor(1e-3),
            prompt_optimizer: GroupSettings::adafactor(0.2),
            lr: None,
            prompt_lr: None,
            optimizer: None,
            schedule: None,
            warmup: None,
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
    /// The trainer's options, checked (dropout range; each group's optimiser
    /// and schedule are checked when training builds them).
    pub fn build(&self) -> Result<TrainOptions> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::msg(format!(
                "option 'dropout' must be in [0, 1), got {}",
                self.dropout
            )));
        }
        let (weights, prompts) = self.groups()?;
        Ok(self.with_groups(weights, prompts))
    }

    /// The two groups' settings: the literals with the shorthand keys given on top.
    pub fn groups(&self) -> Result<(GroupSettings, GroupSettings)> {
        let (mut weights, mut prompts) = (self.weights_optimizer.clone(), self.prompt_optimizer.clone());
        let groups = [
            (&mut weights, self.lr, "weights"),
            (&mut prompts, self.prompt_lr, "prompts"),
        ];
        for (group, lr, name) in groups {
            if let Some(optimizer) = &self.optimizer {
                group.switch_to(optimizer)?;
            }
            if let Some(lr) = lr {
                group.optimizer.set_lr(lr);
            }
            if let Some(schedule) = &self.schedule {
                group.schedule = schedule.clone();
            }
            if let Some(warmup) = self.warmup {
                group.warmup = warmup;
            }
            let momentum = if group.optimizer.name() == "sgd" {
                "momentum"
            } else {
                "beta1"
            };
            let scale = match name {
                "weights" => self.multiply_by_parameter_scale,
                _ => self.prompt_multiply_by_parameter_scale,
            };
            let knobs = [
                ("weight_decay", self.weight_decay.map(serde_json::Value::from)),
                (momentum, self.momentum.map(serde_json::Value::from)),
                (
                    "min_dim_size_to_factor",
                    self.min_dim_size_to_factor.map(serde_json::Value::from),
                ),
                ("multiply_by_parameter_scale", scale.map(serde_json::Value::from)),
            ];
            for (key, value) in knobs {
                if let Some(value) = value {
                    group.optimizer = group
                        .optimizer
                        .with(key, value)
                        .map_err(|e| Error::msg(format!("option '{key}' for the {name}: {e}")))?;
                }
            }
        }
        Ok((weights, prompts))
    }

    fn with_groups(&self, weights: GroupSettings, prompts: GroupSettings) -> TrainOptions {
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
            weights,
            prompts,
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
            run_record: None,
            dtype: self.dtype,
            quiet: self.quiet,
            label: self.label.clone(),
        }
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        let c = TrainConfig::default();
        c.with_groups(c.weights_optimizer.clone(), c.prompt_optimizer.clone())
    }
}
