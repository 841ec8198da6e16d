//! Inverted dropout from one seeded stream, and the residual add with
//! dropout (x + dropout(y)), one op each way on the CPU in f32.
//!
//!   y = x ⊙ m / (1 - p),  m_i = [u_i < (1 - p) · 2³²],  u_i the stream's next u32
//!   dx = g ⊙ m / (1 - p)
//!
//! The stream is rand_chacha's ChaCha8, whose word w is a function of the seed
//! and w alone. Elsewhere (and when the generic path is forced) a call takes
//! the next n words' positions and `StreamMask` makes its mask from them where
//! the tensor lives: on a GPU in one kernel (`cuda/dropout.cu`), again in the
//! backward pass, so no mask is drawn on the host or uploaded, and every
//! device drops the same elements from the same seed.

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
        if !super::fast(x.device().is_cpu() && x.dtype() == DType::F32) {
            let Some(mask) = self.stream_mask(x.elem_count(), train)? else {
                return Ok(x.clone());
            };
            let y = x
                .to_dtype(DType::F32)?
                .contiguous()?
                .apply_op1_arc(Arc::new(Box::new(mask)))?;
            return Ok(y.to_dtype(x.dtype())?);
        }
        let Some(mask) = self.mask(x.elem_count(), train)? else {
            return Ok(x.clone());
        };
        Ok(x.contiguous()?.apply_op1_arc(Arc::new(Box::new(mask)))?)
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
        Ok(self.take(n, train)?.map(|(rng, threshold, scale)| Masked {
            kept: Arc::new(draw(&rng, n, threshold)),
            scale,
        }))
    }

    /// The next `n` values' mask as its place in the stream, or None when
    /// nothing is dropped.
    fn stream_mask(&self, n: usize, train: bool) -> Result<Option<StreamMask>> {
        Ok(self.take(n, train)?.map(|(rng, threshold, scale)| StreamMask {
            seed: rng.get_seed(),
            start: rng.get_word_pos() as u64,
            threshold,
            scale,
        }))
    }

    /// The stream at the next mask's first word, the keep threshold and the
    /// scale, moving the stream past the mask's `n` words; None when nothing
    /// is dropped.
    fn take(&self, n: usize, train: bool) -> Result<Option<(ChaCha8Rng, u32, f32)>> {
        let p = self.p();
        if !train || p <= 0.0 {
            return Ok(None);
        }
        let keep = 1.0 - p;
        // One u32 per element against a fixed threshold: a third of the cost of an f64 draw.
        let threshold = (keep * u32::MAX as f64) as u32;
        let mut rng = self.rng.lock().map_err(|_| Error::msg("dropout rng poisoned"))?;
        let at = rng.clone();
        let start = rng.get_word_pos();
        rng.set_word_pos(start + n as u128);
        Ok(Some((at, threshold, (1.0 / keep) as f32)))
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

/// `n` keep flags from the stream's position on, flag i `next_u32() <
/// threshold` for its word i: the same flags as one sequential draw, made in
/// parallel chunks, each from a copy of the stream moved to its word.
fn draw(rng: &ChaCha8Rng, n: usize, threshold: u32) -> Vec<bool> {
    const CHUNK: usize = 1 << 16;
    let start = rng.get_word_pos();
    let mut kept = vec![false; n];
    kept.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| {
        let mut r = rng.clone();
        r.set_word_pos(start + (i * CHUNK) as u128);
        chunk.iter_mut().for_each(|k| *k = r.next_u32() < threshold);
    });
    kept
}

/// A dropout mask named by its place in the stream: element i is kept (and
/// scaled) when word `start + i` under `seed` is below `threshold`. As an op,
/// y = x ⊙ mask and dx = g ⊙ mask, the mask made afresh each time where the
/// tensor lives: drawn on the CPU, one kernel on a GPU (`cuda.rs`).
#[derive(Clone)]
pub(crate) struct StreamMask {
    seed: [u8; 32],
    start: u64,
    threshold: u32,
    scale: f32,
}

impl candle_core::CustomOp1 for StreamMask {
    fn name(&self) -> &'static str {
        "dropout-stream"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_word_pos(self.start as u128);
        let n = l.shape().elem_count();
        let mask = Masked {
            kept: Arc::new(draw(&rng, n, self.threshold)),
            scale: self.scale,
        };
        let x = slice_of(s, l, n)?;
        Ok((candle_core::CpuStorage::F32(mask.mul(x)), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
        let key = std::array::from_fn(|i| u32::from_le_bytes(std::array::from_fn(|j| self.seed[4 * i + j])));
        super::cuda::dropout(s, l, key, self.start, self.threshold, self.scale)
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(g.contiguous()?.apply_op1_no_bwd(self)?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The stream-position mask (what a GPU and the forced generic path run)
    /// drops exactly what the drawn one does, forward and backward, call after call.
    #[test]
    fn stream_mask_equals_the_drawn_mask() {
        let (drawn, named) = (Dropout::new(0.3, 11), Dropout::new(0.3, 11));
        for n in [1usize, 17, 1000, 70_001] {
            let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() + 1.5).collect();
            let x = Var::from_vec(values, n, &Device::Cpu).unwrap();
            let a = x
                .apply_op1_arc(Arc::new(Box::new(drawn.mask(n, true).unwrap().unwrap())))
                .unwrap();
            let b = x
                .apply_op1_arc(Arc::new(Box::new(named.stream_mask(n, true).unwrap().unwrap())))
                .unwrap();
            let (a_vals, b_vals) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
            assert_eq!(a_vals, b_vals, "n = {n}");
            let dropped = a_vals.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            if n >= 1000 {
                assert!((dropped - 0.3).abs() < 0.05, "dropped {dropped} of {n}");
            }
            let w = Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap();
            let ga = (a * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let grad = |g: &candle_core::backprop::GradStore| g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(grad(&ga), grad(&gb), "n = {n}");
            assert_eq!(drawn.rng_state().unwrap(), named.rng_state().unwrap());
        }
        assert!(named.stream_mask(5, false).unwrap().is_none());
    }

    /// cuda/dropout.cu's block function, transcribed: ChaCha8 with a 64-bit
    /// block counter and stream 0 gives rand_chacha's words, at any position.
    #[test]
    fn the_kernel_block_function_gives_rand_chacha_words() {
        fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
            s[a] = s[a].wrapping_add(s[b]);
            s[d] = (s[d] ^ s[a]).rotate_left(16);
            s[c] = s[c].wrapping_add(s[d]);
            s[b] = (s[b] ^ s[c]).rotate_left(12);
            s[a] = s[a].wrapping_add(s[b]);
            s[d] = (s[d] ^ s[a]).rotate_left(8);
            s[c] = s[c].wrapping_add(s[d]);
            s[b] = (s[b] ^ s[c]).rotate_left(7);
        }
        fn block(key: &[u32; 8], counter: u64) -> [u32; 16] {
            let mut input = [0u32; 16];
            input[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
            input[4..12].copy_from_slice(key);
            input[12] = counter as u32;
            input[13] = (counter >> 32) as u32;
            let mut s = input;
            for _ in 0..4 {
                for (a, b, c, d) in [(0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)] {
                    quarter(&mut s, a, b, c, d);
                }
                for (a, b, c, d) in [(0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)] {
                    quarter(&mut s, a, b, c, d);
                }
            }
            std::array::from_fn(|i| s[i].wrapping_add(input[i]))
        }
        // The standard ChaCha8 vector (zero key, zero nonce) starts 3e 00 ef 2f, as
        // cuda/dropout.cu's block function gives it (checked by compiling it for the host).
        assert_eq!(ChaCha8Rng::from_seed([0; 32]).next_u32(), 0x2fef_003e);
        assert_eq!(block(&[0; 8], 0)[0], 0x2fef_003e);
        for seed in [0u64, 7, 123_456_789] {
            let rng = ChaCha8Rng::seed_from_u64(seed);
            let bytes = rng.get_seed();
            let key = std::array::from_fn(|i| u32::from_le_bytes(std::array::from_fn(|j| bytes[4 * i + j])));
            for word in [0u128, 5, 16, 63, 64, 1000, 123_457, (1u128 << 36) + 3] {
                let mut r = rng.clone();
                r.set_word_pos(word);
                let expected: Vec<u32> = (0..40).map(|_| r.next_u32()).collect();
                let got: Vec<u32> = (word..word + 40)
                    .map(|w| block(&key, (w / 16) as u64)[(w % 16) as usize])
                    .collect();
                assert_eq!(got, expected, "seed {seed}, word {word}");
            }
        }
    }
}
