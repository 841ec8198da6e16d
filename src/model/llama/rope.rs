//! Rotary position embeddings: the tables for a batch of positions and the
//! rotation, forward and backward side by side. With x = [x₁ | x₂] split at
//! half the head width and rotate_half(x) = [-x₂ | x₁]:
//!
//!   y  = x ⊙ cos + rotate_half(x) ⊙ sin
//!   dx = g ⊙ cos + [ (g ⊙ sin)₂ | -(g ⊙ sin)₁ ]      (rotate_half's transpose)
//!
//! Composed from candle ops the rotation is seven graph nodes per call (two
//! narrows, a negation, a concatenation, two products and a sum), each writing
//! a tensor and each gradient zeroed and accumulated by candle's backprop; on
//! the CPU in f32 it is one op and one pass each way.
//!
//! Shape legend: b batch, h heads, n positions, k head width (even).

use candle_core::{CpuStorage, DType, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::error::Result;
use crate::model::fused::{storage_values, values};

/// Rotary tables for one batch of positions, (b, 1, n, k) each.
pub(super) struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// Tables for per-row positions (b rows of n each) and the model's
    /// inverse frequencies (k / 2 of them).
    pub(super) fn new(inv_freq: &[f32], positions: &[Vec<u32>], dtype: DType, device: &Device) -> Result<Rope> {
        let (b, n, half) = (positions.len(), positions.first().map_or(0, Vec::len), inv_freq.len());
        let mut cos = Vec::with_capacity(b * n * 2 * half);
        let mut sin = Vec::with_capacity(b * n * 2 * half);
        for row in positions {
            for &p in row {
                for _ in 0..2 {
                    for f in inv_freq {
                        let angle = p as f32 * f;
                        cos.push(angle.cos());
                        sin.push(angle.sin());
                    }
                }
            }
        }
        let shape = (b, 1, n, 2 * half);
        Ok(Rope {
            cos: Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
        })
    }

    /// Whether the one-op rotation applies (f32 on the CPU).
    pub(super) fn fused(&self) -> bool {
        self.cos.device().is_cpu() && self.cos.dtype() == DType::F32
    }

    /// x (b, n, h k), heads in place, rotated head by head; needs `fused`.
    pub(super) fn apply_heads_last(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let op = Rotate {
            cos: self.cos.contiguous()?,
            sin: self.sin.contiguous()?,
            heads_last: Some(heads),
        };
        Ok(x.contiguous()?.apply_op1_arc(std::sync::Arc::new(Box::new(op)))?)
    }

    /// x (b, h, n, k) rotated: x ⊙ cos + rotate_half(x) ⊙ sin.
    pub(super) fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused() && x.dtype() == DType::F32 && x.rank() == 4 && x.dim(D::Minus1)? % 2 == 0 {
            let op = Rotate {
                cos: self.cos.contiguous()?,
                sin: self.sin.contiguous()?,
                heads_last: None,
            };
            return Ok(x.contiguous()?.apply_op1_arc(std::sync::Arc::new(Box::new(op)))?);
        }
        let half = x.dim(D::Minus1)? / 2;
        let rotated = Tensor::cat(
            &[&x.narrow(D::Minus1, half, half)?.neg()?, &x.narrow(D::Minus1, 0, half)?],
            D::Minus1,
        )?;
        Ok((x.broadcast_mul(&self.cos)? + rotated.broadcast_mul(&self.sin)?)?)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn seeded(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 2654435761 + seed) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The fused rotation against the composed ops, values and input gradient.
    #[test]
    fn fused_rotation_matches_the_composed_ops() {
        let positions = vec![vec![0, 1, 2, 5, 9], vec![3, 3, 4, 0, 1]];
        let rope = Rope::new(&[1.0, 0.1, 0.01], &positions, DType::F32, &Device::Cpu).unwrap();
        let x = Var::from_tensor(&seeded(&[2, 3, 5, 6], 7)).unwrap();
        let probe = seeded(&[2, 3, 5, 6], 11);
        let composed = |x: &Tensor| {
            let half = 3;
            let rotated = Tensor::cat(&[&x.narrow(3, half, half)?.neg()?, &x.narrow(3, 0, half)?], 3)?;
            x.broadcast_mul(&rope.cos)? + rotated.broadcast_mul(&rope.sin)?
        };
        let ours = rope.apply(x.as_tensor()).unwrap();
        let theirs = composed(x.as_tensor()).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&ours, &theirs) < 1e-6);
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(diff(g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap()) < 1e-6);
    }

    /// Heads in place (b, n, h k) rotate as the split (b, h, n, k) heads do, both ways.
    #[test]
    fn heads_last_matches_heads_first() {
        let positions = vec![vec![4, 1, 0], vec![2, 7, 3]];
        let rope = Rope::new(&[1.0, 0.3], &positions, DType::F32, &Device::Cpu).unwrap();
        let (b, n, h, k) = (2, 3, 5, 4);
        let x = Var::from_tensor(&seeded(&[b, n, h * k], 3)).unwrap();
        let probe = seeded(&[b, n, h * k], 5);
        let split = |t: &Tensor| t.reshape((b, n, h, k))?.transpose(1, 2)?.contiguous();
        let merge = |t: &Tensor| t.transpose(1, 2)?.reshape((b, n, h * k));
        let ours = rope.apply_heads_last(x.as_tensor(), h).unwrap();
        let theirs = merge(&rope.apply(&split(x.as_tensor()).unwrap()).unwrap()).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&ours, &theirs) < 1e-6);
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(diff(g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap()) < 1e-6);
    }
}
