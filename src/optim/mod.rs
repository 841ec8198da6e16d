//! Optimisers for promot: Adafactor (what T5X and the prompt-tuning code train
//! with), AdamW and SGD, plus learning-rate schedules and gradient clipping.
//!
//! Every optimiser works on [`Param`]s and a candle `GradStore`. A parameter is
//! updated only when it is trainable *and* has a gradient; anything else is left
//! bit-identical and gets no optimiser state. State is kept per parameter name,
//! computed in f32 whatever the parameter dtype, and can be exported/imported as
//! named tensors so a resumed run continues bit-identically.

pub mod adafactor;
pub mod adamw;
pub mod clip;
pub mod schedule;
pub mod sgd;

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::params::Param;

pub use adafactor::{Adafactor, AdafactorConfig};
pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, grad_norm};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

/// A first-order optimiser over named parameters.
pub trait Optimizer: Send {
    /// The optimiser's rule for one trainable parameter, given its value and gradient.
    fn update_param(&mut self, p: &Param, value: Tensor, grad: Tensor) -> Result<()>;
    /// Count one completed step (the count goes into checkpoints).
    fn count_step(&mut self);
    /// Update every trainable param that has a gradient. Frozen params and
    /// params with no gradient are untouched (no state is created for them).
    fn step(&mut self, params: &[Param], grads: &GradStore) -> Result<()> {
        check_distinct(params)?;
        for p in params {
            if let Some((value, grad)) = value_and_grad(p, grads)? {
                self.update_param(p, value, grad)?;
            }
        }
        self.count_step();
        Ok(())
    }
    /// The learning rate the next `step` will use.
    fn learning_rate(&self) -> f64;
    /// Change the learning rate (schedules call this before each step).
    fn set_learning_rate(&mut self, lr: f64);
    /// "adafactor", "adamw" or "sgd".
    fn name(&self) -> &'static str;
    /// State for checkpoints: named tensors ("adafactor.vr/<param name>", ...)
    /// and the number of `step` calls so far.
    fn state(&self) -> Result<(BTreeMap<String, Tensor>, u64)>;
    /// Replace all state with a snapshot from [`Optimizer::state`]; a resumed
    /// run then continues bit-identically.
    fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, step: u64) -> Result<()>;
}

/// Optional knobs shared by [`build`]; `None` keeps the optimiser's default.
///
/// `momentum` is Adafactor's `beta1`, AdamW's `beta1` or SGD's momentum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimOptions {
    pub weight_decay: Option<f64>,
    pub momentum: Option<f64>,
    /// AdamW's second-moment decay.
    pub beta2: Option<f64>,
    /// AdamW's denominator epsilon.
    pub eps: Option<f64>,
    /// Adafactor's update-clipping threshold (RMS).
    pub clip_threshold: Option<f64>,
    /// Adafactor's second-moment decay exponent (beta2_t = 1 - t^decay_rate).
    pub decay_rate: Option<f64>,
    /// Adafactor: scale the step by max(eps2, RMS(param)).
    pub multiply_by_parameter_scale: Option<bool>,
    /// Adafactor: T5X's factoring rule; factor a tensor's second moment over
    /// its two largest dims only when the smaller of them is at least this
    /// (unset: transformers' rule, every rank ≥ 2 tensor over its last two dims).
    pub min_dim_size_to_factor: Option<usize>,
    /// SGD: Nesterov momentum.
    pub nesterov: Option<bool>,
}

impl OptimOptions {
    /// T5X's Adafactor as it trains model weights: T5X's T5.1.1 model configs
    /// (t5x/examples/t5/t5_1_1/*.gin) set only `decay_rate=0.8, step_offset=0`
    /// and the standard logical factor rules (for 2-D weights T5X then falls
    /// back to its size heuristic), so the rest are `t5x.adafactor.Adafactor`'s
    /// defaults: `multiply_by_parameter_scale=True` (eps2 1e-3),
    /// `min_dim_size_to_factor=128`, `clipping_threshold=1.0`, `beta1=None`,
    /// `weight_decay_rate=None`, eps1 1e-30 (promot's default too). promot
    /// writes the decay exponent with its sign: decay_rate -0.8. Use with
    /// `build("adafactor", lr, ...)`.
    pub fn paper_weights() -> Self {
        Self {
            multiply_by_parameter_scale: Some(true),
            min_dim_size_to_factor: Some(128),
            decay_rate: Some(-0.8),
            clip_threshold: Some(1.0),
            ..Self::default()
        }
    }

    /// The prompt-tuning code's Adafactor for the prompt it trains
    /// (prompt_tuning/configs/models/t5_1_1_prompt.gin): as [`Self::paper_weights`]
    /// but `multiply_by_parameter_scale=False`, so the step is lr itself, not
    /// relative to the prompt's RMS. With min_dim_size_to_factor 128 a
    /// 100-token prompt (100 × d_model) is not factored. That config also sets
    /// `weight_decay_rate=1e-5`, which T5X applies as `x·(1 - 1e-5)` per step
    /// independent of the learning rate; promot's `weight_decay` is scaled by
    /// the learning rate, so it is left off here.
    pub fn paper_prompts() -> Self {
        Self {
            multiply_by_parameter_scale: Some(false),
            ..Self::paper_weights()
        }
    }

    /// Set one knob by name (for scripts): weight_decay, momentum (alias beta1),
    /// beta2, eps, clip_threshold, decay_rate, multiply_by_parameter_scale,
    /// min_dim_size_to_factor (a whole number >= 0) and nesterov (booleans:
    /// non-zero is true).
    pub fn set(&mut self, key: &str, value: f64) -> Result<()> {
        if !value.is_finite() {
            return Err(Error::msg(format!(
                "optimizer option '{key}' must be a finite number, got {value}"
            )));
        }
        match key {
            "weight_decay" => self.weight_decay = Some(value),
            "momentum" | "beta1" => self.momentum = Some(value),
            "beta2" => self.beta2 = Some(value),
            "eps" => self.eps = Some(value),
            "clip_threshold" => self.clip_threshold = Some(value),
            "decay_rate" => self.decay_rate = Some(value),
            "multiply_by_parameter_scale" => self.multiply_by_parameter_scale = Some(value != 0.0),
            "min_dim_size_to_factor" => {
                if value < 0.0 || value.fract() != 0.0 || value > u32::MAX as f64 {
                    return Err(Error::msg(format!(
                        "optimizer option 'min_dim_size_to_factor' must be a whole number >= 0, got {value}"
                    )));
                }
                self.min_dim_size_to_factor = Some(value as usize)
            }
            "nesterov" => self.nesterov = Some(value != 0.0),
            _ => {
                return Err(Error::msg(format!(
                    "unknown optimizer option '{key}' (expected weight_decay, momentum, beta1, beta2, eps, \
                     clip_threshold, decay_rate, multiply_by_parameter_scale, min_dim_size_to_factor or nesterov)"
                )))
            }
        }
        Ok(())
    }
}

/// The optimiser called `name` ("adafactor", "adamw", "sgd") with its defaults.
pub fn by_name(name: &str, lr: f64) -> Result<Box<dyn Optimizer>> {
    build(name, lr, &OptimOptions::default())
}

/// The optimiser called `name` with the knobs in `opts` applied; a knob that
/// the optimiser does not have is an error rather than silently ignored.
pub fn build(name: &str, lr: f64, opts: &OptimOptions) -> Result<Box<dyn Optimizer>> {
    check_lr(lr)?;
    let reject = |knob: &str, set: bool| -> Result<()> {
        if set {
            return Err(Error::msg(format!("optimizer '{name}' has no option '{knob}'")));
        }
        Ok(())
    };
    match name {
        "adafactor" => {
            reject("beta2", opts.beta2.is_some())?;
            reject("eps", opts.eps.is_some())?;
            reject("nesterov", opts.nesterov.is_some())?;
            let d = AdafactorConfig::default();
            let cfg = AdafactorConfig {
                lr,
                beta1: opts.momentum.or(d.beta1),
                weight_decay: opts.weight_decay.unwrap_or(d.weight_decay),
                clip_threshold: opts.clip_threshold.unwrap_or(d.clip_threshold),
                decay_rate: opts.decay_rate.unwrap_or(d.decay_rate),
                multiply_by_parameter_scale: opts
                    .multiply_by_parameter_scale
                    .unwrap_or(d.multiply_by_parameter_scale),
                min_dim_size_to_factor: opts.min_dim_size_to_factor.or(d.min_dim_size_to_factor),
                ..d
            };
            Ok(Box::new(Adafactor::new(cfg)?))
        }
        "adamw" => {
            reject("clip_threshold", opts.clip_threshold.is_some())?;
            reject("decay_rate", opts.decay_rate.is_some())?;
            reject(
                "multiply_by_parameter_scale",
                opts.multiply_by_parameter_scale.is_some(),
            )?;
            reject("min_dim_size_to_factor", opts.min_dim_size_to_factor.is_some())?;
            reject("nesterov", opts.nesterov.is_some())?;
            let d = AdamWConfig::default();
            let cfg = AdamWConfig {
                lr,
                beta1: opts.momentum.unwrap_or(d.beta1),
                beta2: opts.beta2.unwrap_or(d.beta2),
                eps: opts.eps.unwrap_or(d.eps),
                weight_decay: opts.weight_decay.unwrap_or(d.weight_decay),
            };
            Ok(Box::new(AdamW::new(cfg)?))
        }
        "sgd" => {
            reject("beta2", opts.beta2.is_some())?;
            reject("eps", opts.eps.is_some())?;
            reject("clip_threshold", opts.clip_threshold.is_some())?;
            reject("decay_rate", opts.decay_rate.is_some())?;
            reject(
                "multiply_by_parameter_scale",
                opts.multiply_by_parameter_scale.is_some(),
            )?;
            reject("min_dim_size_to_factor", opts.min_dim_size_to_factor.is_some())?;
            let d = SgdConfig::default();
            let cfg = SgdConfig {
                lr,
                momentum: opts.momentum.unwrap_or(d.momentum),
                weight_decay: opts.weight_decay.unwrap_or(d.weight_decay),
                nesterov: opts.nesterov.unwrap_or(d.nesterov),
            };
            Ok(Box::new(Sgd::new(cfg)?))
        }
        _ => Err(Error::msg(format!(
            "unknown optimizer '{name}' (expected adafactor, adamw or sgd)"
        ))),
    }
}

// ---- helpers shared by the optimisers -------------------------------------

/// A learning rate must be a finite, non-negative number.
pub(crate) fn check_lr(lr: f64) -> Result<()> {
    if !lr.is_finite() || lr < 0.0 {
        return Err(Error::msg(format!(
            "learning rate must be a finite number >= 0, got {lr}"
        )));
    }
    Ok(())
}

/// `value` must lie in [lo, hi); used to validate betas and momenta.
pub(crate) fn check_range(what: &str, value: f64, lo: f64, hi: f64) -> Result<()> {
    if !value.is_finite() || value < lo || value >= hi {
        return Err(Error::msg(format!("{what} must be in [{lo}, {hi}), got {value}")));
    }
    Ok(())
}

/// Refuse a parameter list naming one parameter twice: it would be updated
/// twice and share state. Checked before anything is modified.
pub(crate) fn check_distinct(params: &[Param]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for p in params {
        if !seen.insert(p.name()) {
            return Err(Error::msg(format!(
                "parameter {} is listed twice for the optimizer",
                p.name()
            )));
        }
    }
    Ok(())
}

/// What a step works on for one parameter: its current value and gradient in
/// f32, detached from autograd. `None` for frozen params and params without a
/// gradient: those are skipped entirely.
pub(crate) fn value_and_grad(p: &Param, grads: &GradStore) -> Result<Option<(Tensor, Tensor)>> {
    if !p.is_trainable() {
        return Ok(None);
    }
    let var = p.var();
    let Some(grad) = grads.get(var.as_tensor()) else {
        return Ok(None);
    };
    if grad.dims() != var.dims() {
        return Err(Error::msg(format!(
            "parameter {}: gradient has shape {:?}, parameter has {:?}",
            p.name(),
            grad.dims(),
            var.dims()
        )));
    }
    let value = var.as_tensor().detach().to_dtype(DType::F32)?;
    let grad = grad.detach().to_dtype(DType::F32)?.to_device(var.device())?;
    Ok(Some((value, grad)))
}

/// Store a freshly computed f32 value back into the parameter's variable.
pub(crate) fn write_back(p: &Param, value: &Tensor) -> Result<()> {
    let var = p.var();
    var.set(&value.to_dtype(var.dtype())?)?;
    Ok(())
}

/// A state tensor restored from a checkpoint, as f32 on `device`, with a shape check.
pub(crate) fn state_tensor(t: &Tensor, device: &Device, dims: &[usize], what: &str) -> Result<Tensor> {
    if t.dims() != dims {
        return Err(Error::msg(format!(
            "optimizer state {what}: expected shape {dims:?}, got {:?}",
            t.dims()
        )));
    }
    Ok(t.to_dtype(DType::F32)?.to_device(device)?)
}

/// A per-parameter step count as a checkpointable scalar tensor.
pub(crate) fn step_tensor(step: u64) -> Result<Tensor> {
    Ok(Tensor::new(step as i64, &Device::Cpu)?)
}

/// Read back a step count written by [`step_tensor`].
pub(crate) fn step_from_tensor(t: &Tensor, key: &str) -> Result<u64> {
    if t.rank() != 0 {
        return Err(Error::msg(format!(
            "optimizer state {key}: expected a scalar step count, got shape {:?}",
            t.dims()
        )));
    }
    let v = t.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_scalar::<f64>()?;
    if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0) {
        return Err(Error::msg(format!(
            "optimizer state {key}: step count must be a whole number >= 0, got {v}"
        )));
    }
    Ok(v as u64)
}

/// Split a state key "<prefix>.<slot>/<param name>" into (slot, param name),
/// checking that it belongs to the optimiser with `prefix`.
pub(crate) fn split_state_key<'a>(prefix: &str, key: &'a str) -> Result<(&'a str, &'a str)> {
    let bad = || {
        Error::msg(format!(
            "optimizer state key '{key}' does not belong to {prefix} (expected '{prefix}.<slot>/<param>')"
        ))
    };
    let (head, name) = key.split_once('/').ok_or_else(bad)?;
    let slot = head
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('.'))
        .ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok((slot, name))
}
