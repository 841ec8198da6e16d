//! The layers both families are built from, over named parameters: a linear
//! map with an optional bias, and the RMS norm. The compute is in
//! `crate::kernels`, which picks its path.
//!
//! Shape legend: b batch, n positions, d input width, o output width.

use candle_core::Tensor;

use crate::error::Result;
use crate::kernels;
use crate::params::{Param, ParamStore};

/// y = x Wᵀ (+ b): W (o, d) at `{prefix}.weight`, b (o) at `{prefix}.bias`
/// when the model has one (Qwen2's attention; T5 has none).
pub struct Linear {
    w: Param,
    b: Option<Param>,
}

impl Linear {
    pub fn load(ps: &ParamStore, prefix: &str) -> Result<Self> {
        let bias = format!("{prefix}.bias");
        let b = ps.contains(&bias).then(|| ps.get(&bias).cloned()).transpose()?;
        Ok(Self {
            w: ps.get(&format!("{prefix}.weight"))?.clone(),
            b,
        })
    }

    pub fn weight(&self) -> &Param {
        &self.w
    }

    /// (b, n, d) -> (b, n, o)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = kernels::linear(x, &self.w.tensor())?;
        match &self.b {
            Some(b) => Ok(y.broadcast_add(&b.tensor())?),
            None => Ok(y),
        }
    }
}

/// Several linear maps of one input, outputs side by side (b, n, Σ o):
/// attention's keys and values. No biases.
pub fn linear_concat(x: &Tensor, maps: &[&Linear]) -> Result<Tensor> {
    let ws = maps.iter().map(|m| m.w.tensor()).collect::<Vec<_>>();
    kernels::linear_concat(x, &ws)
}

/// RMS norm with a learned scale: x / sqrt(mean(x²) + eps) · w, in f32
/// whatever the parameter dtype (as transformers does; T5 calls it its layer norm).
pub fn rms_norm(x: &Tensor, w: &Param, eps: f64) -> Result<Tensor> {
    kernels::rms_norm(x, &w.tensor(), eps)
}
