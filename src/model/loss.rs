//! Token-level cross-entropy with label smoothing, ignoring padding.
//!
//! Matches torch.nn.CrossEntropyLoss(ignore_index, label_smoothing=eps):
//!   loss_i = (1 - eps) * (-log p[y_i]) + eps * mean_v(-log p[v])
//! averaged over the positions whose mask is 1. On the CPU in f32 the
//! per-token losses come from one fused kernel (`fused::cross_entropy_rows`,
//! no log-probability tensor held), elsewhere from `composed`.

use candle_core::{DType, Tensor, D};

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
    let ids = targets.to_dtype(DType::U32)?;
    let fused = super::fused::cross_entropy_rows(&logits.reshape((b * t, v))?, &ids.flatten_all()?, label_smoothing)?;
    let per_token = match fused {
        Some(rows) => rows.reshape((b, t))?,
        None => composed(logits, &ids, label_smoothing)?,
    };
    let mask = mask.to_dtype(DType::F32)?;
    let count = mask.sum_all()?;
    let total = (per_token * &mask)?.sum_all()?;
    // max(count, 1) keeps an all-padding batch at loss 0 instead of NaN.
    Ok(total.broadcast_div(&count.maximum(1f32)?)?)
}

/// The same per-token loss (b, t) from candle's ops: where the fused kernel
/// does not apply (another device or dtype), and as its reference in tests.
pub fn composed(logits: &Tensor, targets: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?; // (b, t, v)
    let nll = logp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?.neg()?; // (b, t)
    Ok(if label_smoothing > 0.0 {
        let uniform = (logp.sum(D::Minus1)?.neg()? / v as f64)?;
        ((nll * (1.0 - label_smoothing))? + (uniform * label_smoothing)?)?
    } else {
        nll
    })
}
