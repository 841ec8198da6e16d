//! The elementwise activations with a fused backward, forward and backward
//! side by side; candle builds each from several elementwise ops (the GELU's
//! backward is 12 passes), here each direction is one pass:
//!
//!   gelu      y = x/2 (1 + tanh u), u = c (x + 0.044715 x³), c = sqrt(2/π)
//!             dx = g (½(1 + tanh u) + ½ x (1 - tanh² u) c (1 + 3·0.044715 x²))
//!   silu      y = x σ(x)                   dx = g σ(x) (1 + x (1 - σ(x)))
//!   relu      y = max(x, 0)                dx = g [x > 0]
//!   swiglu    y = silu(a) u                da = g u silu'(a), du = g silu(a)
//!
//! Each is one op on contiguous f32 tensors on the CPU; the entry points in
//! `kernels` pick it or the composed candle ops. tests/fused.rs checks values
//! and gradients.

use candle_core::{CpuStorage, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::fused::{contiguous, values, MIN_WORK};
use crate::error::Result;

const GELU_C: f32 = 0.797_884_6; // sqrt(2/π)
const GELU_A: f32 = 0.044_715;

/// The elementwise activations with a fused backward.
#[derive(Clone, Copy)]
enum Act {
    GeluTanh,
    Silu,
    Relu,
}

impl Act {
    fn forward(self, x: f32) -> f32 {
        match self {
            Act::GeluTanh => 0.5 * x * (1.0 + tanh(GELU_C * (x + GELU_A * x * x * x))),
            Act::Silu => x / (1.0 + (-x).exp()),
            Act::Relu => x.max(0.0),
        }
    }

    fn derivative(self, x: f32) -> f32 {
        match self {
            Act::GeluTanh => {
                let t = tanh(GELU_C * (x + GELU_A * x * x * x));
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x)
            }
            Act::Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 + x * (1.0 - s))
            }
            Act::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Act::GeluTanh => "fused-gelu-tanh",
            Act::Silu => "fused-silu",
            Act::Relu => "fused-relu",
        }
    }
}

/// tanh through one `exp`: 1 - 2 / (1 + e^{2u}), which saturates to ±1
/// without NaN and is within ~1e-7 of libm's `tanhf` (whose `expm1f` made it
/// a tenth of a toy training step), an absolute error the GELU, 1 + tanh,
/// does not see.
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (1.0 + (2.0 * u).exp())
}

/// Elementwise chunks per rayon task at the least.
const MIN_ELEMS: usize = MIN_WORK;

fn par_map(x: &[f32], g: Option<&[f32]>, f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(MIN_ELEMS).enumerate().for_each(|(c, chunk)| {
        let at = c * MIN_ELEMS;
        for (j, o) in chunk.iter_mut().enumerate() {
            *o = f(x[at + j], g.map_or(1.0, |g| g[at + j]));
        }
    });
    out
}

/// The tanh approximation of GELU (transformers' `gelu_new`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    activation(x, Act::GeluTanh)
}

/// x σ(x).
pub fn silu(x: &Tensor) -> Result<Tensor> {
    activation(x, Act::Silu)
}

/// max(x, 0), with PyTorch's derivative (0 at x = 0; candle's relu says 1).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    activation(x, Act::Relu)
}

fn activation(x: &Tensor, act: Act) -> Result<Tensor> {
    Ok(x.apply_op1_arc(std::sync::Arc::new(Box::new(act)))?)
}

impl candle_core::CustomOp1 for Act {
    fn name(&self) -> &'static str {
        Act::name(*self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = par_map(values(s, l)?, None, |x, _| self.forward(x));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&contiguous(g)?, &ActGrad(*self))?))
    }
}

/// (x, g) -> g f'(x).
struct ActGrad(Act);

impl candle_core::CustomOp2 for ActGrad {
    fn name(&self) -> &'static str {
        "fused-activation-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dx = par_map(values(xs, xl)?, Some(values(gs, gl)?), |x, g| g * self.0.derivative(x));
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

// ---------------------------------------------------------------- swiglu

/// silu(gate) ⊙ up, the Llama MLP's gated activation, as one op:
/// d gate = g ⊙ up ⊙ silu'(gate), d up = g ⊙ silu(gate).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok(gate.apply_op2_arc(up, std::sync::Arc::new(Box::new(SwiGlu)))?)
}

struct SwiGlu;

impl candle_core::CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        u: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = par_map(values(a, al)?, Some(values(u, ul)?), |a, u| Act::Silu.forward(a) * u);
        Ok((CpuStorage::F32(y), al.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = contiguous(g)?;
        let d_gate = gate.apply_op3_no_bwd(up, &g, &SwiGluGrad { wrt_gate: true })?;
        let d_up = gate.apply_op3_no_bwd(up, &g, &SwiGluGrad { wrt_gate: false })?;
        Ok((Some(d_gate), Some(d_up)))
    }
}

/// (gate, up, g) -> one of SwiGlu's input gradients.
struct SwiGluGrad {
    wrt_gate: bool,
}

impl candle_core::CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "fused-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        u: &CpuStorage,
        ul: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, u, g) = (values(a, al)?, values(u, ul)?, values(g, gl)?);
        if a.len() != u.len() || a.len() != g.len() {
            candle_core::bail!(
                "swiglu: {} gate, {} up and {} gradient values",
                a.len(),
                u.len(),
                g.len()
            );
        }
        let dx = if self.wrt_gate {
            par_map(a, Some(g), |a, g| g * Act::Silu.derivative(a))
                .into_iter()
                .zip(u)
                .map(|(d, u)| d * u)
                .collect()
        } else {
            par_map(a, Some(g), |a, g| g * Act::Silu.forward(a))
        };
        Ok((CpuStorage::F32(dx), al.shape().clone()))
    }
}
