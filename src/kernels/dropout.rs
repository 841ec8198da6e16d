//! Inverted dropout from one seeded stream, and the residual add with
//! dropout (x + dropout(y)), one op each way on the CPU in f32; elsewhere
//! (and when the generic path is forced) the same mask multiplies on the
//! tensor's device.
//!
//!   y = x ⊙ m / (1 - p),  m_i = [u_i < (1 - p) · 2³²],  u_i the stream's next u32
//!   dx = g ⊙ m / (1 - p)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor};
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};

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
        let Some(mask) = self.mask(x.elem_count(), train)? else {
            return Ok(x.clone());
        };
        if super::fast(x.device().is_cpu() && x.dtype() == DType::F32) {
            return Ok(x.contiguous()?.apply_op1_arc(Arc::new(Box::new(mask)))?);
        }
        let scale = mask.scale;
        let mask: Vec<f32> = mask.kept.iter().map(|&k| if k { scale } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }

    /// x + dropout(y): the residual connection, one op and one pass on the CPU.
    pub fn residual(&self, x: &Tensor, y: &Tensor, train: bool) -> Result<Tensor> {
        let fused = x.device().is_cpu() && x.dtype() == DType::F32 && y.dtype() == DType::F32;
        if !super::fast(fused && x.dims() == y.dims()) {
            return Ok((x + self.apply(y, train)?)?);
        }
        let Some(mask) = self.mask(y.elem_count(), train)? else {
            return Ok((x + y)?);
        };
        Ok(x.contiguous()?
            .apply_op2_arc(&y.contiguous()?, Arc::new(Box::new(MaskedAdd(mask))))?)
    }

    /// The next `n` values' mask, or None when nothing is dropped.
    pub(crate) fn mask(&self, n: usize, train: bool) -> Result<Option<Masked>> {
        let p = self.p();
        if !train || p <= 0.0 {
            return Ok(None);
        }
        let keep = 1.0 - p;
        // One u32 per element against a fixed threshold: a third of the cost of an f64 draw.
        let threshold = (keep * u32::MAX as f64) as u32;
        Ok(Some(Masked {
            kept: Arc::new(self.draw(n, threshold)?),
            scale: (1.0 / keep) as f32,
        }))
    }

    /// `n` keep flags, flag i from the stream's next word i: `next_u32() <
    /// threshold` in order, the same masks as one sequential draw, but made in
    /// parallel chunks, each from a copy of the stream moved to its word.
    fn draw(&self, n: usize, threshold: u32) -> Result<Vec<bool>> {
        const CHUNK: usize = 1 << 16;
        let mut rng = self.rng.lock().map_err(|_| Error::msg("dropout rng poisoned"))?;
        let start = rng.get_word_pos();
        let mut kept = vec![false; n];
        kept.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| {
            let mut r = rng.clone();
            r.set_word_pos(start + (i * CHUNK) as u128);
            chunk.iter_mut().for_each(|k| *k = r.next_u32() < threshold);
        });
        rng.set_word_pos(start + n as u128);
        Ok(kept)
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

/// A dropout mask: `scale` where kept, 0 elsewhere. As an op, y = x ⊙ mask
/// and dx = g ⊙ mask, one pass each way, and the mask is no graph node
/// (candle's product rule would also compute, zero and accumulate a gradient
/// for it).
pub(crate) struct Masked {
    pub(crate) kept: Arc<Vec<bool>>,
    pub(crate) scale: f32,
}

impl Masked {
    /// base + x ⊙ mask (base 0 when None).
    fn mul_add(&self, x: &[f32], base: Option<&[f32]>) -> Vec<f32> {
        const CHUNK: usize = 1 << 15;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, y)| {
            let at = c * CHUNK;
            let (x, kept) = (&x[at..at + y.len()], &self.kept[at..at + y.len()]);
            for ((y, &x), &k) in y.iter_mut().zip(x).zip(kept) {
                *y = if k { x * self.scale } else { 0.0 };
            }
            if let Some(base) = base {
                y.iter_mut().zip(&base[at..]).for_each(|(y, b)| *y += b);
            }
        });
        y
    }

    fn mul(&self, x: &[f32]) -> Vec<f32> {
        self.mul_add(x, None)
    }

    /// x ⊙ mask in place, for values at `offset` in the masked tensor.
    pub(crate) fn apply_in_place(&self, x: &mut [f32], offset: usize) {
        for (x, &k) in x.iter_mut().zip(&self.kept[offset..]) {
            *x = if k { *x * self.scale } else { 0.0 };
        }
    }
}

/// The f32 values of a contiguous CPU operand that a mask of `len` values covers.
fn slice_of<'a>(s: &'a candle_core::CpuStorage, l: &candle_core::Layout, len: usize) -> candle_core::Result<&'a [f32]> {
    let x = super::fused::values(s, l)?;
    if x.len() != len {
        candle_core::bail!("dropout: {} values for a mask of {len}", x.len());
    }
    Ok(x)
}

/// (x, y) -> x + y ⊙ mask; dx = g, dy = g ⊙ mask.
struct MaskedAdd(Masked);

impl candle_core::CustomOp2 for MaskedAdd {
    fn name(&self) -> &'static str {
        "residual-dropout"
    }

    fn cpu_fwd(
        &self,
        xs: &candle_core::CpuStorage,
        xl: &candle_core::Layout,
        ys: &candle_core::CpuStorage,
        yl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let n = self.0.kept.len();
        let (x, y) = (slice_of(xs, xl, n)?, slice_of(ys, yl, n)?);
        Ok((
            candle_core::CpuStorage::F32(self.0.mul_add(y, Some(x))),
            xl.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        _out: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(g.clone()), Some(g.contiguous()?.apply_op1_no_bwd(&self.0)?)))
    }
}

impl candle_core::CustomOp1 for Masked {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = slice_of(s, l, self.kept.len())?;
        Ok((candle_core::CpuStorage::F32(self.mul(x)), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(g.contiguous()?.apply_op1_no_bwd(self)?))
    }
}
