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

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::blas::{self, Shared};
use super::layers::{Dropout, Masked};
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
                // SAFETY: q and keys of this pair, (n, k) and (m, k), inside
                // the checked operands; `out` is its own (n, m) block.
                unsafe {
                    lib.call_strided(
                        (false, true),
                        (d.n, d.m, d.k),
                        (qi.as_ptr(), d.k),
                        (ki.as_ptr(), d.k),
                        (out.as_mut_ptr(), d.m),
                    )
                };
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

// ------------------------------------------------ whole attention, heads in place

/// Whether `attend` takes its fused path for these operands.
pub fn attend_applies(q: &Tensor, bias: &Tensor) -> bool {
    let fits = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    fits(q) && fits(bias) && blas::get().is_some()
}

/// Multi-head attention with heads left in place:
///
///   q (b, n, h k), kv (b, m, 2 h k) = [keys | values] -> ctx (b, n, h k),
///   ctx_j = dropout(softmax(q_j k_jᵀ + bias_j)) v_j for each head j.
///
/// The products read each head as a strided block of q's and kv's rows, so
/// no (b, h, n, k) copies are made in either direction, and the whole
/// computation is one graph node. The attention weights P (b, h, n, m) are
/// kept for backward, as the composed ops keep them; the dropout mask is
/// `drop`'s next b h n m values, as `Dropout::apply` on the weights would draw.
/// Needs `attend_applies`; `keys` and `values` in one tensor because a custom
/// op has at most three inputs and the bias may train.
pub fn attend(q: &Tensor, kv: &Tensor, bias: &Tensor, heads: usize, drop: &Dropout, train: bool) -> Result<Tensor> {
    let (b, n, hk) = q.dims3()?;
    let m = kv.dim(1)?;
    if heads == 0 || hk % heads != 0 {
        return Err(crate::error::Error::msg(format!(
            "attention: width {hk} is not {heads} heads"
        )));
    }
    let op = Attend {
        heads,
        mask: drop.mask(b * heads * n * m, train)?,
        weights: Mutex::new(None),
    };
    let (q, kv, bias) = (q.contiguous()?, kv.contiguous()?, bias.contiguous()?);
    Ok(q.apply_op3_arc(&kv, &bias, Arc::new(Box::new(op)))?)
}

struct Attend {
    heads: usize,
    mask: Option<Masked>,
    /// P from forward, for backward.
    weights: Mutex<Option<Arc<Vec<f32>>>>,
}

/// The f32 values of a contiguous tensor's CPU storage, borrowed.
fn cpu_values<'a>(s: &'a candle_core::Storage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match s {
        candle_core::Storage::Cpu(cpu) => blas::values(cpu, l),
        _ => candle_core::bail!("attention: an operand is not on the CPU"),
    }
}

impl Attend {
    /// Checked dimensions: (Dims of the per-head problem, h k).
    fn dims(&self, q: &[usize], kv: &[usize], bias: &[usize]) -> candle_core::Result<(Dims, usize)> {
        let bad = || candle_core::Error::Msg(format!("attention: q {q:?}, kv {kv:?} and bias {bias:?} do not fit"));
        let (&[b, n, hk], &[kb, m, hk2]) = (q, kv) else {
            return Err(bad());
        };
        let h = self.heads;
        if kb != b || hk2 != 2 * hk || h == 0 || hk % h != 0 {
            return Err(bad());
        }
        let d = Dims::of(&[b, h, n, hk / h], &[b, h, m, hk / h], bias)?;
        Ok((d, hk))
    }
}

impl candle_core::CustomOp3 for Attend {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        ql: &Layout,
        kv: &CpuStorage,
        kvl: &Layout,
        bias: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some(lib) = blas::get() else {
            candle_core::bail!("attention: no BLAS library loaded");
        };
        let (d, hk) = self.dims(ql.dims(), kvl.dims(), bl.dims())?;
        let (qv, kvv, bv) = (blas::values(q, ql)?, blas::values(kv, kvl)?, blas::values(bias, bl)?);
        let (n, m, k, nm) = (d.n, d.m, d.k, d.n * d.m);
        if let Some(mask) = &self.mask {
            if mask.kept.len() != d.b * d.h * nm {
                candle_core::bail!(
                    "attention: a dropout mask of {} for {} weights",
                    mask.kept.len(),
                    d.b * d.h * nm
                );
            }
        }
        if n * m * k == 0 {
            candle_core::bail!("attention: empty heads, queries or keys ({n} x {m} x {k})");
        }
        let fill = |p: Shared, out: Shared| {
            (0..d.b * d.h).into_par_iter().for_each(|pair| {
                let (i, j) = (pair / d.h, pair % d.h);
                let qi = qv[i * n * hk + j * k..].as_ptr();
                let ki = kvv[i * m * 2 * hk + j * k..].as_ptr();
                let vi = kvv[i * m * 2 * hk + hk + j * k..].as_ptr();
                // SAFETY: head j of batch i is n (or m) rows of k values, hk
                // (or 2 hk) apart, inside q (or kv) whose dims were checked;
                // this pair's (n, m) block of P is written by this task alone,
                // whole, by sgemm before it is borrowed.
                let pw = unsafe {
                    let at = p.at(pair * nm);
                    lib.call_strided((false, true), (n, m, k), (qi, hk), (ki, 2 * hk), (at, m));
                    std::slice::from_raw_parts_mut(at, nm)
                };
                bias_softmax_rows(&d, pair, pw, bv);
                let dropped;
                let pd: &[f32] = match &self.mask {
                    Some(mask) => {
                        let mut t = pw.to_vec();
                        mask.apply_in_place(&mut t, pair * nm);
                        dropped = t;
                        &dropped
                    }
                    None => pw,
                };
                // SAFETY: ctx rows of batch i, columns j k .. (j + 1) k: written
                // by this pair only; v as q above.
                unsafe {
                    let c = out.at(i * n * hk + j * k);
                    lib.call_strided((false, false), (n, k, m), (pd.as_ptr(), m), (vi, 2 * hk), (c, hk));
                }
            })
        };
        let mut p = Vec::new();
        // SAFETY: the pairs cover every (n, m) block of P and every head's
        // columns of every row of ctx, and sgemm writes each whole.
        let ctx = unsafe { blas::written(d.b * n * hk, |out| p = blas::written(d.b * d.h * nm, |p| fill(p, out))) };
        *self
            .weights
            .lock()
            .map_err(|_| candle_core::Error::Msg("attention: poisoned".into()))? = Some(Arc::new(p));
        Ok((CpuStorage::F32(ctx), Shape::from((d.b, n, hk))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        kv: &Tensor,
        bias: &Tensor,
        _ctx: &Tensor,
        dctx: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(lib) = blas::get() else {
            candle_core::bail!("attention: no BLAS library loaded");
        };
        let poisoned = || candle_core::Error::Msg("attention: poisoned".into());
        let Some(p) = self.weights.lock().map_err(|_| poisoned())?.clone() else {
            candle_core::bail!("attention: backward before forward");
        };
        let (d, hk) = self.dims(q.dims(), kv.dims(), bias.dims())?;
        let (n, m, k, nm) = (d.n, d.m, d.k, d.n * d.m);
        let (q, kv, dctx) = (q.contiguous()?, kv.contiguous()?, dctx.contiguous()?);
        let ((qs, ql), (kvs, kvl), (gs, gl)) = (
            q.storage_and_layout(),
            kv.storage_and_layout(),
            dctx.storage_and_layout(),
        );
        let (qv, kvv, g) = (cpu_values(&qs, ql)?, cpu_values(&kvs, kvl)?, cpu_values(&gs, gl)?);
        let keep_ds = bias.track_op();
        let mut ds_all = vec![0f32; if keep_ds { d.b * d.h * nm } else { 0 }];
        let ds_out = Shared(ds_all.as_mut_ptr());
        let fill = |dq_out: Shared, dkv_out: Shared| {
            (0..d.b * d.h).into_par_iter().for_each(|pair| {
                let (i, j) = (pair / d.h, pair % d.h);
                let pw = &p[pair * nm..][..nm];
                let (qo, kvo) = (i * n * hk + j * k, i * m * 2 * hk + j * k);
                let (qi, ki, vi, gi) = (&qv[qo..], &kvv[kvo..], &kvv[kvo + hk..], &g[qo..]);
                // P' = dropout(P); dv = P'ᵀ G.
                let dropped;
                let pd: &[f32] = match &self.mask {
                    Some(mask) => {
                        let mut t = pw.to_vec();
                        mask.apply_in_place(&mut t, pair * nm);
                        dropped = t;
                        &dropped
                    }
                    None => pw,
                };
                // SAFETY (all four products): operands are heads of q, kv, dctx
                // (rows hk or 2 hk apart, dims checked) or this pair's own (n, m)
                // buffers; outputs are this pair's head columns of dq / dkv.
                let mut dp = vec![0f32; nm];
                unsafe {
                    let dv = dkv_out.at(kvo + hk);
                    lib.call_strided(
                        (true, false),
                        (m, k, n),
                        (pd.as_ptr(), m),
                        (gi.as_ptr(), hk),
                        (dv, 2 * hk),
                    );
                    // dP' = G vᵀ, then dP = dropout(dP').
                    lib.call_strided(
                        (false, true),
                        (n, m, k),
                        (gi.as_ptr(), hk),
                        (vi.as_ptr(), 2 * hk),
                        (dp.as_mut_ptr(), m),
                    );
                }
                if let Some(mask) = &self.mask {
                    mask.apply_in_place(&mut dp, pair * nm);
                }
                // dS = P ⊙ (dP - Σ dP ⊙ P), row by row, in place.
                for (dr, pr) in dp.chunks_mut(m.max(1)).zip(pw.chunks(m.max(1))) {
                    let dot: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    dr.iter_mut().zip(pr).for_each(|(x, &y)| *x = y * (*x - dot));
                }
                unsafe {
                    let dqi = dq_out.at(qo);
                    lib.call_strided(
                        (false, false),
                        (n, k, m),
                        (dp.as_ptr(), m),
                        (ki.as_ptr(), 2 * hk),
                        (dqi, hk),
                    );
                    let dki = dkv_out.at(kvo);
                    lib.call_strided(
                        (true, false),
                        (m, k, n),
                        (dp.as_ptr(), m),
                        (qi.as_ptr(), hk),
                        (dki, 2 * hk),
                    );
                    if keep_ds {
                        // This pair's own (n, m) block of dS.
                        std::ptr::copy_nonoverlapping(dp.as_ptr(), ds_out.at(pair * nm), nm);
                    }
                }
            })
        };
        let mut dq = Vec::new();
        // SAFETY: the pairs cover every head's columns of every row of dq and
        // of both halves of dkv, and sgemm writes each whole.
        let dkv = unsafe {
            blas::written(kvv.len(), |dkv_out| {
                dq = blas::written(qv.len(), |dq_out| fill(dq_out, dkv_out))
            })
        };
        let dev = q.device();
        let grad_q = match q.track_op() {
            true => Some(Tensor::from_vec(dq, q.shape(), dev)?),
            false => None,
        };
        let grad_kv = match kv.track_op() {
            true => Some(Tensor::from_vec(dkv, kv.shape(), dev)?),
            false => None,
        };
        let grad_bias = match keep_ds {
            true => {
                let mut g = Tensor::from_vec(ds_all, (d.b, d.h, n, m), dev)?;
                for (dim, (&full, &have)) in [d.b, d.h, n, m].iter().zip(bias.dims()).enumerate() {
                    if have == 1 && full > 1 {
                        g = g.sum_keepdim(dim)?;
                    }
                }
                Some(g)
            }
            false => None,
        };
        Ok((grad_q, grad_kv, grad_bias))
    }
}
