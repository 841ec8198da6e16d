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
pub mod settings;
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
pub use settings::{by_name, GroupSettings, OptimizerConfig};
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
