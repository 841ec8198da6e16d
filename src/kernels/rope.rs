//! The rotary position rotation as one op on the CPU in f32, forward and
//! backward side by side. With x = [x₁ | x₂] split at half the head width and
//! rotate_half(x) = [-x₂ | x₁]:
//!
//!   y  = x ⊙ cos + rotate_half(x) ⊙ sin
//!   dx = g ⊙ cos + [ (g ⊙ sin)₂ | -(g ⊙ sin)₁ ]      (rotate_half's transpose)
//!
//! Composed from candle ops the rotation is seven graph nodes per call (two
//! narrows, a negation, a concatenation, two products and a sum), each writing
//! a tensor and each gradient zeroed and accumulated by candle's backprop; here
//! it is one op and one pass each way.
//!
//! Shape legend: b batch, h heads, n positions, k head width (even); tables
//! cos and sin (b, 1, n, k).

use candle_core::{CpuStorage, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::fused::{storage_values, values};
use crate::error::Result;

/// How the heads of x are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadLayout {
    /// x (b, h, n, k).
    Split,
    /// x (b, n, h k) with this many heads, in place.
    Merged(usize),
}

/// Whether x's shape suits the one-op rotation.
pub(super) fn fits(x: &Tensor, layout: HeadLayout) -> bool {
    let even = x.dim(D::Minus1).is_ok_and(|k| k % 2 == 0);
    match layout {
        HeadLayout::Split => x.rank() == 4 && even,
        HeadLayout::Merged(h) => x.rank() == 3 && h > 0 && x.dim(2).is_ok_and(|hk| hk % h == 0 && (hk / h) % 2 == 0),
    }
}

/// The rotation of x as one op.
pub(super) fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor, layout: HeadLayout) -> Result<Tensor> {
    let op = Rotate {
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        heads_last: match layout {
            HeadLayout::Split => None,
            HeadLayout::Merged(h) => Some(h),
        },
    };
    Ok(x.contiguous()?.apply_op1_arc(std::sync::Arc::new(Box::new(op)))?)
}

/// The rotation as one op (its backward applies the transpose), on x
/// (b, h, n, k), or with `heads_last` = Some(h) on x (b, n, h k).
struct Rotate {
    cos: Tensor,
    sin: Tensor,
    heads_last: Option<usize>,
}

/// Rows per rayon task at the least.
const MIN_ROWS: usize = 64;

impl Rotate {
    /// y = x ⊙ cos + R(x) ⊙ sin (R = rotate_half), or with `transpose`
    /// y = x ⊙ cos + Rᵀ(x ⊙ sin); x contiguous, rows of k values.
    fn run(&self, x: &[f32], dims: &[usize], transpose: bool) -> candle_core::Result<Vec<f32>> {
        let (b, h, n, k) = match (dims, self.heads_last) {
            (&[b, h, n, k], None) => (b, h, n, k),
            (&[b, n, hk], Some(h)) if h > 0 && hk % h == 0 => (b, h, n, hk / h),
            _ => candle_core::bail!("rope: x {dims:?} is not (b, h, n, k) or (b, n, h k)"),
        };
        if self.cos.dims() != [b, 1, n, k] || self.sin.dims() != [b, 1, n, k] || k % 2 != 0 {
            candle_core::bail!("rope: tables {:?} for x {dims:?}", self.cos.dims());
        }
        let (cs, cl) = self.cos.storage_and_layout();
        let (ss, sl) = self.sin.storage_and_layout();
        let (cos, sin) = (storage_values(&cs, cl)?, storage_values(&ss, sl)?);
        let half = k / 2;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(k.max(1))
            .enumerate()
            .with_min_len(MIN_ROWS)
            .for_each(|(row, out)| {
                // Row (bi, hj, ni) or (bi, ni, hj): tables at (bi, ni), whatever the head.
                let (bi, ni) = match self.heads_last {
                    None => (row / (h * n), row % n),
                    Some(_) => (row / (n * h), (row / h) % n),
                };
                let t = (bi * n + ni) * k;
                let (xr, c, s) = (&x[row * k..][..k], &cos[t..][..k], &sin[t..][..k]);
                for i in 0..half {
                    let (a, z) = (xr[i], xr[i + half]);
                    if transpose {
                        out[i] = a * c[i] + z * s[i + half];
                        out[i + half] = z * c[i + half] - a * s[i];
                    } else {
                        out[i] = a * c[i] - z * s[i];
                        out[i + half] = z * c[i + half] + a * s[i + half];
                    }
                }
            });
        Ok(y)
    }
}

impl candle_core::CustomOp1 for Rotate {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(s, l)?;
        Ok((CpuStorage::F32(self.run(x, l.dims(), false)?), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let dx = {
            let (gs, gl) = g.storage_and_layout();
            self.run(storage_values(&gs, gl)?, gl.dims(), true)?
        };
        Ok(Some(Tensor::from_vec(dx, g.shape(), g.device())?))
    }
}
