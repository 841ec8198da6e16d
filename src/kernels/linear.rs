//! y = x Wᵀ over x (b, n, d) and W (o, d): the path choice, and the frozen
//! weight's op.
//!
//! Paths, in order: BLAS sgemm for the product and both gradients, the
//! weight's gradient only for a tracked (trainable) W (`blas.rs`); a few rows
//! outside autograd, as decoding has them (`gemv.rs`); on the CPU, a frozen
//! W whose input still needs a gradient (every layer in ProMoT's stage 1,
//! where only the prompt trains) through `InputGradOnly`, since autograd's
//! matmul rule would also compute W's gradient, a third of the layer's
//! backward cost, only to drop it; candle's matmul otherwise (every other
//! device and dtype; bf16 copies under a bf16 scope, `composed::matmul`).

use candle_core::Tensor;

use super::{blas, fast, gemv};
use crate::error::{Error, Result};

/// x (b, n, d) @ w (o, d)ᵀ -> (b, n, o). No bias (callers add theirs). A
/// weight is frozen when its tensor is not tracked (`Param::tensor`).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, n, d) = x.dims3()?;
    if fast(blas::applies(x, w) && !gemv::applies(x, w)) {
        return blas::linear_wt(x, w);
    }
    let x2 = x.reshape((b * n, d))?;
    let y = if fast(gemv::applies(&x2, w)) {
        gemv::matmul_wt(&x2, w)?
    } else if fast(!w.track_op() && x2.track_op() && x2.device().is_cpu()) {
        let y = x2.detach().matmul(&w.t()?)?.contiguous()?;
        x2.apply_op2(&y, InputGradOnly { weight: w.clone() })?
    } else {
        super::composed::matmul(&x2, &w.t()?)?
    };
    Ok(y.reshape((b, n, w.dim(0)?))?)
}

/// x (b, n, d) against several weights (o_i, d) -> (b, n, Σ o_i), their
/// outputs side by side: one product with the weights stacked on the BLAS
/// path (attention's keys and values), one product each otherwise.
pub fn linear_concat(x: &Tensor, ws: &[Tensor]) -> Result<Tensor> {
    let Some(first) = ws.first() else {
        return Err(Error::msg("linear_concat: no weights"));
    };
    if fast(blas::applies(x, first) && ws.iter().all(|w| blas::applies(x, w))) {
        return blas::linear_wt(x, &Tensor::cat(ws, 0)?);
    }
    let parts = ws.iter().map(|w| linear(x, w)).collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 2)?)
}

/// Passes a precomputed x Wᵀ (arg 2, untracked) through as the result while
/// giving x (arg 1) its gradient g W, and W none.
struct InputGradOnly {
    weight: Tensor, // (o, d)
}

impl candle_core::CustomOp2 for InputGradOnly {
    fn name(&self) -> &'static str {
        "linear-frozen-weight"
    }

    fn cpu_fwd(
        &self,
        _x: &candle_core::CpuStorage,
        _x_layout: &candle_core::Layout,
        y: &candle_core::CpuStorage,
        y_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        match y_layout.contiguous_offsets() {
            Some((0, end)) if end == y_layout.shape().elem_count() => Ok((y.clone(), y_layout.shape().clone())),
            _ => candle_core::bail!("linear-frozen-weight: the product must be contiguous"),
        }
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.matmul(&self.weight)?), None))
    }
}
