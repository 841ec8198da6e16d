//! Rotary position embeddings: the cos and sin tables for a batch of
//! positions; the rotation itself is `kernels::rope`.
//!
//! Shape legend: b batch, h heads, n positions, k head width (even).

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::kernels::{self, HeadLayout};

/// Rotary tables for one batch of positions, (b, 1, n, k) each.
pub(super) struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// Tables for per-row positions (b rows of n each) and the model's
    /// inverse frequencies (k / 2 of them), made on the device from the b·n
    /// positions: angle = position · frequency in f32, each frequency twice
    /// (the two halves a head rotates together).
    pub(super) fn new(inv_freq: &[f32], positions: &[Vec<u32>], dtype: DType, device: &Device) -> Result<Rope> {
        let (b, n, half) = (positions.len(), positions.first().map_or(0, Vec::len), inv_freq.len());
        let at: Vec<f32> = positions.iter().flatten().map(|&p| p as f32).collect();
        let at = Tensor::from_vec(at, (b, 1, n, 1), device)?;
        let freq = Tensor::from_slice(inv_freq, (1, 1, 1, half), device)?;
        let angle = at.broadcast_mul(&Tensor::cat(&[&freq, &freq], 3)?)?;
        Ok(Rope {
            cos: angle.cos()?.to_dtype(dtype)?,
            sin: angle.sin()?.to_dtype(dtype)?,
        })
    }

    /// x (b, n, h k), heads in place, rotated head by head.
    pub(super) fn apply_heads_last(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        kernels::rope(x, &self.cos, &self.sin, HeadLayout::Merged(heads))
    }

    /// x (b, h, n, k) rotated: x ⊙ cos + rotate_half(x) ⊙ sin.
    pub(super) fn apply(&self, x: &Tensor) -> Result<Tensor> {
        kernels::rope(x, &self.cos, &self.sin, HeadLayout::Split)
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

    /// The tables hold cos and sin of position · frequency (f32), each
    /// frequency twice, bit for bit.
    #[test]
    fn tables_are_the_cos_and_sin_of_each_angle() {
        let (positions, inv_freq) = (vec![vec![0, 1, 7], vec![2, 0, 511]], [1.0f32, 0.1, 0.003]);
        let rope = Rope::new(&inv_freq, &positions, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(rope.cos.dims(), [2, 1, 3, 6]);
        let want = |f: fn(f32) -> f32| -> Vec<f32> {
            let row = |p: u32| inv_freq.iter().chain(&inv_freq).map(move |q| f(p as f32 * q));
            positions.iter().flatten().flat_map(|&p| row(p)).collect()
        };
        assert_eq!(
            rope.cos.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want(f32::cos)
        );
        assert_eq!(
            rope.sin.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want(f32::sin)
        );
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
