//! Gradient clipping by global L2 norm, like `torch.nn.utils.clip_grad_norm_`.

use std::collections::HashSet;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, TensorId};

use crate::error::{Error, Result};
use crate::params::Param;

/// The trainable params, each once even if listed twice (shared weights).
fn distinct_trainable(params: &[Param]) -> Vec<&Param> {
    let mut seen: HashSet<TensorId> = HashSet::new();
    params
        .iter()
        .filter(|p| p.is_trainable() && seen.insert(p.var().as_tensor().id()))
        .collect()
}

/// The global L2 norm of the gradients of the trainable `params` (params that
/// are frozen or have no gradient contribute nothing).
pub fn grad_norm(params: &[Param], grads: &GradStore) -> Result<f64> {
    let mut squares: Vec<Tensor> = Vec::new();
    for p in distinct_trainable(params) {
        if let Some(g) = grads.get(p.var().as_tensor()) {
            // Each tensor in f32 (as the optimisers compute), the total in f64.
            squares.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?.to_dtype(DType::F64)?);
        }
    }
    if squares.is_empty() {
        return Ok(0.0);
    }
    let total = Tensor::stack(&squares, 0)?.sum_all()?.to_scalar::<f64>()?;
    Ok(total.sqrt())
}

/// Scale the trainable params' gradients by max_norm / (norm + 1e-6) when that
/// factor is below 1, so their global L2 norm is at most `max_norm`.
///
/// Returns the norm *before* clipping and the (possibly scaled) gradients. A
/// non-finite norm leaves the gradients as they are: the caller sees the NaN
/// or infinity and decides (e.g. skip the step).
pub fn clip_grad_norm(params: &[Param], mut grads: GradStore, max_norm: f64) -> Result<(f64, GradStore)> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::msg(format!(
            "clip_grad_norm: max_norm must be a finite number > 0, got {max_norm}"
        )));
    }
    let norm = grad_norm(params, &grads)?;
    let coef = max_norm / (norm + 1e-6);
    if !norm.is_finite() || coef >= 1.0 {
        return Ok((norm, grads));
    }
    for p in distinct_trainable(params) {
        let var = p.var().as_tensor();
        if let Some(g) = grads.remove(var) {
            grads.insert(var, (g * coef)?);
        }
    }
    Ok((norm, grads))
}
