//! Attention weights as one op, forward and backward side by side:
//!
//!   S = q kᵀ + bias        P = softmax(S) over the keys
//!   dS = P ⊙ (dP - Σ_keys dP ⊙ P)
//!   dq = dS k              dk = dSᵀ q              dbias = dS summed over bias's broadcast dimensions
//!
//! Composed from candle ops, the same function is four graph nodes (the
//! product, the bias add, the softmax and, in backward, the bias gradient's
//! reduction), each writing a (b, h, n, m) tensor and each gradient accumulated
//! into a zeroed buffer by candle's backprop. Here the product is a BLAS sgemm
//! per (batch, head) written straight into the output, the bias add and the
//! softmax are one pass over its rows while they are in cache, and backward
//! writes dS once and multiplies it through BLAS.
//!
//! Shape legend: b batch, h heads, n queries, m keys, k per-head width.
//! q (b, h, n, k), keys (b, h, m, k), bias (b or 1, h or 1, n or 1, m), P (b, h, n, m).
//!
//! The fused path needs a BLAS library (`blas`) and f32 tensors on the CPU;
//! anything else runs the composed candle ops, so every device and dtype
//! computes the same function. tests/fused.rs checks values and gradients
//! against the composed ops.

use candle_core::{CpuStorage, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::blas;
use crate::error::Result;

/// softmax(q kᵀ + bias) over the last dimension, in q's dtype; see the module docs.
pub fn weights(q: &Tensor, keys: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let fits = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.rank() == 4;
    if !(fits(q) && fits(keys) && fits(bias) && blas::get().is_some()) {
        // Scores in the inputs' dtype, the softmax in f32 (as HF computes it).
        let scores = blas::batched_matmul(q, keys, false, true)?.broadcast_add(bias)?;
        return Ok(super::fused::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?);
    }
    let (q, keys, bias) = (q.contiguous()?, keys.contiguous()?, bias.contiguous()?);
    Ok(q.apply_op3_arc(&keys, &bias, std::sync::Arc::new(Box::new(Weights)))?)
}

struct Weights;

/// The dimensions of one call, checked.
struct Dims {
    b: usize,
    h: usize,
    n: usize,
    m: usize,
    k: usize,
    /// bias's (b, h, n) extents: each 1 (broadcast) or the full size.
    bias: [usize; 3],
}

impl Dims {
    fn of(q: &[usize], keys: &[usize], bias: &[usize]) -> candle_core::Result<Dims> {
        let bad = || {
            candle_core::Error::Msg(format!(
                "attention: q {q:?}, keys {keys:?} and bias {bias:?} do not fit"
            ))
        };
        let dims4 = |x: &[usize]| <[usize; 4]>::try_from(x).map_err(|_| bad());
        let ([b, h, n, k], [kb, kh, m, kk], [bb, bh, bn, bm]) = (dims4(q)?, dims4(keys)?, dims4(bias)?);
        let fits = |x: usize, full: usize| x == 1 || x == full;
        if (kb, kh, kk) != (b, h, k) || !fits(bb, b) || !fits(bh, h) || !fits(bn, n) || bm != m {
            return Err(bad());
        }
        Ok(Dims {
            b,
            h,
            n,
            m,
            k,
            bias: [bb, bh, bn],
        })
    }

    /// Offset of bias row `row` of (batch, head) pair `pair`.
    fn bias_row(&self, pair: usize, row: usize) -> usize {
        let [bb, bh, bn] = self.bias;
        let (i, j) = (pair / self.h, pair % self.h);
        let (i, j, row) = (
            if bb == 1 { 0 } else { i },
            if bh == 1 { 0 } else { j },
            if bn == 1 { 0 } else { row },
        );
        ((i * bh + j) * bn + row) * self.m
    }
}

/// Rows of one (batch, head) pair: add the bias, then softmax in place.
fn bias_softmax_rows(d: &Dims, pair: usize, rows: &mut [f32], bias: &[f32]) {
    for (r, row) in rows.chunks_mut(d.m).enumerate() {
        let b = &bias[d.bias_row(pair, r)..][..d.m];
        row.iter_mut().zip(b).for_each(|(x, &y)| *x += y);
        super::fused::softmax_in_place(row);
    }
}

impl candle_core::CustomOp3 for Weights {
    fn name(&self) -> &'static str {
        "attention-weights"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        ql: &Layout,
        keys: &CpuStorage,
        kl: &Layout,
        bias: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some(lib) = blas::get() else {
            candle_core::bail!("attention: no BLAS library loaded");
        };
        let d = Dims::of(ql.dims(), kl.dims(), bl.dims())?;
        let (qv, kv, bv) = (blas::values(q, ql)?, blas::values(keys, kl)?, blas::values(bias, bl)?);
        let (nk, mk, nm) = (d.n * d.k, d.m * d.k, d.n * d.m);
        let mut p = vec![0f32; d.b * d.h * nm];
        if nm > 0 {
            p.par_chunks_mut(nm).enumerate().for_each(|(pair, out)| {
                let (qi, ki) = (&qv[pair * nk..][..nk], &kv[pair * mk..][..mk]);
                lib.call(false, true, d.n, d.m, d.k, qi, d.k, ki, out);
                bias_softmax_rows(&d, pair, out, bv);
            });
        }
        Ok((CpuStorage::F32(p), Shape::from((d.b, d.h, d.n, d.m))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        keys: &Tensor,
        bias: &Tensor,
        p: &Tensor,
        dp: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ds = super::fused::softmax_grad(p, dp)?; // (b, h, n, m)
        let grad_q = match q.track_op() {
            true => Some(blas::batched_product(&ds, &keys.detach(), false, false)?),
            false => None,
        };
        let grad_keys = match keys.track_op() {
            true => Some(blas::batched_product(&ds, &q.detach(), true, false)?),
            false => None,
        };
        let grad_bias = match bias.track_op() {
            true => {
                let mut g = ds;
                for (dim, (&full, &have)) in p.dims().iter().zip(bias.dims()).enumerate() {
                    if have == 1 && full > 1 {
                        g = g.sum_keepdim(dim)?;
                    }
                }
                Some(g)
            }
            false => None,
        };
        Ok((grad_q, grad_keys, grad_bias))
    }
}
