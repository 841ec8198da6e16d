//! Token-level cross-entropy with label smoothing, ignoring padding.
//!
//! Matches torch.nn.CrossEntropyLoss(ignore_index, label_smoothing=eps):
//!   loss_i = (1 - eps) * (-log p[y_i]) + eps * mean_v(-log p[v])
//! averaged over the positions whose mask is 1; the per-token losses are
//! `kernels::cross_entropy`.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// logits (b, t, v), targets (b, t) u32, mask (b, t) with 1 for real target tokens.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, mask: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    if targets.dims() != [b, t] || mask.dims() != [b, t] {
        return Err(Error::msg(format!(
            "cross_entropy: logits {:?} need targets and mask of shape [{b}, {t}], got {:?} and {:?}",
            logits.dims(),
            targets.dims(),
            mask.dims()
        )));
    }
    let per_token =
        crate::kernels::cross_entropy(&logits.reshape((b * t, v))?, &targets.flatten_all()?, label_smoothing)?
            .reshape((b, t))?;
    let mask = mask.to_dtype(DType::F32)?;
    let count = mask.sum_all()?;
    let total = (per_token * &mask)?.sum_all()?;
    // max(count, 1) keeps an all-padding batch at loss 0 instead of NaN.
    Ok(total.broadcast_div(&count.maximum(1f32)?)?)
}
