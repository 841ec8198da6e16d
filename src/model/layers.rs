//! The small building blocks shared by the models: linear maps over named
//! parameters, T5's RMS layer norm, and seeded dropout.
//!
//! Shape legend: b batch, n positions, d model width, o output width.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, D};
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::params::Param;

/// x (b, n, d) @ w (o, d)^T -> (b, n, o). No bias: T5 has none.
///
/// A frozen weight whose input still needs a gradient (every layer in
/// ProMoT's stage 1, where only the prompt trains) goes through
/// `InputGradOnly`: autograd's matmul rule would also compute the weight's
/// gradient, a third of the layer's backward cost, only to drop it. A few
/// rows outside autograd (a decoding step) go through `gemv`. On the CPU in
/// f32 with a BLAS library loaded (`blas`), the product and both gradients
/// are BLAS sgemm calls, the weight's gradient again only for a trainable
/// weight; the candle paths below are for everything else.
pub fn linear(x: &Tensor, w: &Param) -> Result<Tensor> {
    let weight = w.tensor();
    let (b, n, d) = x.dims3()?;
    let x2 = x.reshape((b * n, d))?;
    let y = if super::gemv::applies(&x2, &weight) {
        super::gemv::matmul_wt(&x2, &weight)?
    } else if super::blas::applies(&x2, &weight) {
        super::blas::linear_wt(&x2, &weight)?
    } else if !w.is_trainable() && x2.track_op() && x2.device().is_cpu() {
        let y = x2.detach().matmul(&weight.t()?)?.contiguous()?;
        x2.apply_op2(&y, InputGradOnly { weight: weight.clone() })?
    } else {
        x2.matmul(&weight.t()?)?
    };
    Ok(y.reshape((b, n, weight.dim(0)?))?)
}

/// Passes a precomputed x W^T (arg 2, untracked) through as the result while
/// giving x (arg 1) its gradient, grad W, and W none.
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

/// T5's layer norm: scale by the root mean square, no mean subtraction, no
/// bias, computed in f32 whatever the parameter dtype (as HF does).
pub fn rms_norm(x: &Tensor, w: &Param, eps: f64) -> Result<Tensor> {
    if let Some(y) = super::fused::rms_norm(x, &w.tensor(), eps)? {
        return Ok(y);
    }
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let mean_sq = x32.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x32.broadcast_div(&(mean_sq + eps)?.sqrt()?)?;
    let w = w.tensor();
    Ok(normed.to_dtype(w.dtype())?.broadcast_mul(&w)?.to_dtype(dtype)?)
}

/// Inverted dropout whose masks come from one seeded stream, so a training run
/// is reproducible and can be resumed from its checkpointed stream position.
#[derive(Clone, Debug)]
pub struct Dropout {
    /// The rate, as f64 bits (shared handles see a change made by the trainer).
    p: Arc<AtomicU64>,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Self {
        Self {
            p: Arc::new(AtomicU64::new(p.to_bits())),
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed))),
        }
    }

    pub fn p(&self) -> f64 {
        f64::from_bits(self.p.load(Ordering::Relaxed))
    }

    pub fn set_p(&self, p: f64) {
        self.p.store(p.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed)
    }

    pub fn apply(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let p = self.p();
        if !train || p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - p;
        let scale = (1.0 / keep) as f32;
        let n = x.elem_count();
        // One u32 per element against a fixed threshold: a third of the cost of an f64 draw.
        let threshold = (keep * u32::MAX as f64) as u32;
        let mask: Vec<f32> = {
            let mut rng = self.rng.lock().map_err(|_| Error::msg("dropout rng poisoned"))?;
            (0..n)
                .map(|_| if rng.next_u32() < threshold { scale } else { 0.0 })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }

    /// (seed, stream position) — enough to continue the exact same masks.
    pub fn rng_state(&self) -> Result<([u8; 32], u128)> {
        let rng = self.rng.lock().map_err(|_| Error::msg("dropout rng poisoned"))?;
        Ok((rng.get_seed(), rng.get_word_pos()))
    }

    pub fn set_rng_state(&self, seed: [u8; 32], word_pos: u128) -> Result<()> {
        let mut rng = self.rng.lock().map_err(|_| Error::msg("dropout rng poisoned"))?;
        *rng = ChaCha8Rng::from_seed(seed);
        rng.set_word_pos(word_pos);
        Ok(())
    }

    pub fn reseed(&self, seed: u64) -> Result<()> {
        let mut rng = self.rng.lock().map_err(|_| Error::msg("dropout rng poisoned"))?;
        *rng = ChaCha8Rng::seed_from_u64(seed);
        Ok(())
    }
}
