//! Attention as fused CPU ops, forward and backward side by side.
//!
//! `weights`: the attention weights of split heads (generation's cached path),
//!
//!   S = q kᵀ + bias        P = softmax(S) over the keys
//!   dS = P ⊙ (dP - Σ_keys dP ⊙ P)
//!   dq = dS k              dk = dSᵀ q              dbias = dS summed over bias's broadcast dimensions
//!
//! and `attend`: the whole attention of a training step, heads in place,
//! grouped key/value heads, a score scale and dropout on the weights (see its
//! docs for the backward).
//!
//! Composed from candle ops, attention is a dozen graph nodes per layer (head
//! splits and merges, the product, the bias add, the softmax, the dropout, the
//! weighted values), each writing a tensor and each gradient accumulated into
//! a zeroed buffer by candle's backprop. Here every product is a BLAS sgemm
//! per (batch, head) written straight into its output, the bias add and the
//! softmax are one pass over the rows while they are in cache, and backward
//! writes dS once and multiplies it through BLAS.
//!
//! Shape legend: b batch, h heads, g key/value heads, n queries, m keys,
//! k per-head width. `weights`: q (b, h, n, k), keys (b, h, m, k), bias
//! (b or 1, h or 1, n or 1, m), P (b, h, n, m).
//!
//! Both need a BLAS library (`blas`) and f32 tensors on the CPU; the entry
//! points `kernels::attention_weights` and `kernels::attend` check, and run
//! the composed candle ops (`composed.rs`) otherwise. tests/blas_attention.rs
//! checks values and gradients against the composed ops.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::blas::{self, Shared};
use super::dropout::{Dropout, Masked};
use super::fused::{storage_values, values};
use crate::error::Result;

/// softmax(q kᵀ + bias) over the last dimension, f32 on the CPU with BLAS
/// (`kernels::attention_weights` checks); see the module docs.
pub fn weights(q: &Tensor, keys: &Tensor, bias: &Tensor) -> Result<Tensor> {
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
        let Some(lib) = blas::here() else {
            candle_core::bail!("attention: no BLAS library loaded");
        };
        let d = Dims::of(ql.dims(), kl.dims(), bl.dims())?;
        let (qv, kv, bv) = (values(q, ql)?, values(keys, kl)?, values(bias, bl)?);
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
                        (1.0, 0.0),
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

/// How `attend` reads its operands.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    /// Query heads h.
    pub query: usize,
    /// Key/value heads g (h for multi-head, fewer for grouped-query
    /// attention: query head j reads key/value head j / (h / g)).
    pub kv: usize,
    /// Scores are scale · q kᵀ (T5: 1, Llama: 1 / sqrt(k)).
    pub scale: f32,
}

/// Multi-head (or grouped-query) attention with heads left in place:
///
///   q (b, n, h k), kv (b, m, 2 g k) = [keys | values] -> ctx (b, n, h k),
///   ctx_j = dropout(softmax(scale q_j k_{j/r}ᵀ + bias_j)) v_{j/r}, r = h / g.
///
/// The products read each head as a strided block of q's and kv's rows, so
/// no (b, h, n, k) copies are made in either direction, and the whole
/// computation is one graph node. The attention weights P (b, h, n, m) are
/// kept for backward, as the composed ops keep them; the dropout mask is
/// `drop`'s next b h n m values, as `Dropout::apply` on the weights would draw.
/// f32 on the CPU with BLAS (`kernels::attend` checks); keys and values in
/// one tensor because a custom op has at most three inputs and the bias may train.
pub fn attend(q: &Tensor, kv: &Tensor, bias: &Tensor, heads: Heads, drop: &Dropout, train: bool) -> Result<Tensor> {
    let (b, n, hk) = q.dims3()?;
    let m = kv.dim(1)?;
    let Heads { query: h, kv: g, .. } = heads;
    if h == 0 || g == 0 || h % g != 0 || hk % h != 0 {
        return Err(crate::error::Error::msg(format!(
            "attention: width {hk} is not {h} query heads in groups over {g} key/value heads"
        )));
    }
    let op = Attend {
        heads,
        mask: drop.mask(b * h * n * m, train)?,
        weights: Mutex::new(None),
    };
    let (q, kv, bias) = (q.contiguous()?, kv.contiguous()?, bias.contiguous()?);
    Ok(q.apply_op3_arc(&kv, &bias, Arc::new(Box::new(op)))?)
}

struct Attend {
    heads: Heads,
    mask: Option<Masked>,
    /// P from forward, for backward.
    weights: Mutex<Option<Arc<Vec<f32>>>>,
}

/// Where one (batch, query head) pair's operands start, and their row strides.
struct Offsets {
    /// h k: q, ctx and dq rows.
    hk: usize,
    /// g k: the values' offset in a kv row (which is 2 g k long).
    gk: usize,
    /// n, m, k, r = h / g.
    n: usize,
    m: usize,
    k: usize,
    r: usize,
}

impl Offsets {
    /// (q / ctx offset, keys offset, values offset) of pair (batch i, query head j).
    fn of(&self, i: usize, j: usize) -> (usize, usize, usize) {
        let kvo = i * self.m * 2 * self.gk + (j / self.r) * self.k;
        (i * self.n * self.hk + j * self.k, kvo, kvo + self.gk)
    }
}

impl Attend {
    /// Checked dimensions: the per-head problem and the offsets.
    fn dims(&self, q: &[usize], kv: &[usize], bias: &[usize]) -> candle_core::Result<(Dims, Offsets)> {
        let bad = || candle_core::Error::Msg(format!("attention: q {q:?}, kv {kv:?} and bias {bias:?} do not fit"));
        let (&[b, n, hk], &[kb, m, kvw]) = (q, kv) else {
            return Err(bad());
        };
        let Heads { query: h, kv: g, .. } = self.heads;
        if h == 0 || g == 0 || h % g != 0 || hk % h != 0 || kb != b || kvw != 2 * g * (hk / h) {
            return Err(bad());
        }
        let k = hk / h;
        let d = Dims::of(&[b, h, n, k], &[b, h, m, k], bias)?;
        let o = Offsets {
            hk,
            gk: g * k,
            n,
            m,
            k,
            r: h / g,
        };
        Ok((d, o))
    }

    /// P' = dropout(P) for pair `pair` (P itself without dropout).
    fn dropped<'a>(&self, pw: &'a [f32], pair: usize, nm: usize) -> std::borrow::Cow<'a, [f32]> {
        match &self.mask {
            Some(mask) => {
                let mut t = pw.to_vec();
                mask.apply_in_place(&mut t, pair * nm);
                std::borrow::Cow::Owned(t)
            }
            None => std::borrow::Cow::Borrowed(pw),
        }
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
        let Some(lib) = blas::here() else {
            candle_core::bail!("attention: no BLAS library loaded");
        };
        let (d, o) = self.dims(ql.dims(), kvl.dims(), bl.dims())?;
        let (qv, kvv, bv) = (values(q, ql)?, values(kv, kvl)?, values(bias, bl)?);
        let (n, m, k, nm, hk, kvw) = (d.n, d.m, d.k, d.n * d.m, o.hk, 2 * o.gk);
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
        let scale = self.heads.scale;
        let fill = |p: Shared, out: Shared| {
            (0..d.b * d.h).into_par_iter().for_each(|pair| {
                let (qo, ko, vo) = o.of(pair / d.h, pair % d.h);
                let (qi, ki, vi) = (qv[qo..].as_ptr(), kvv[ko..].as_ptr(), kvv[vo..].as_ptr());
                // SAFETY: a head is n (or m) rows of k values, hk (or 2 g k)
                // apart, inside q (or kv) whose dims were checked; this pair's
                // (n, m) block of P is written by this task alone, whole, by
                // sgemm (beta 0) before it is borrowed.
                let pw = unsafe {
                    let at = p.at(pair * nm);
                    lib.call_strided((false, true), (n, m, k), (qi, hk), (ki, kvw), (at, m), (scale, 0.0));
                    std::slice::from_raw_parts_mut(at, nm)
                };
                bias_softmax_rows(&d, pair, pw, bv);
                let pd = self.dropped(pw, pair, nm);
                // SAFETY: ctx rows of this batch, this head's k columns:
                // written by this pair only; values as keys above.
                unsafe {
                    let c = out.at(qo);
                    lib.call_strided(
                        (false, false),
                        (n, k, m),
                        (pd.as_ptr(), m),
                        (vi, kvw),
                        (c, hk),
                        (1.0, 0.0),
                    );
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

    /// Per pair, with P' = dropout(P) and G = d ctx:
    ///   dv += P'ᵀ G, dP = dropout(G vᵀ), dS = P ⊙ (dP - Σ dP ⊙ P),
    ///   dq = scale dS k, dk += scale dSᵀ q, dbias = dS (reduced).
    /// The r query heads of a key/value head run in one task, in order, so
    /// their dk and dv sums need no locks and are the same on every run.
    fn bwd(
        &self,
        q: &Tensor,
        kv: &Tensor,
        bias: &Tensor,
        _ctx: &Tensor,
        dctx: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(lib) = blas::here() else {
            candle_core::bail!("attention: no BLAS library loaded");
        };
        let poisoned = || candle_core::Error::Msg("attention: poisoned".into());
        let Some(p) = self.weights.lock().map_err(|_| poisoned())?.clone() else {
            candle_core::bail!("attention: backward before forward");
        };
        let (d, o) = self.dims(q.dims(), kv.dims(), bias.dims())?;
        let (n, m, k, nm, hk, kvw, scale) = (d.n, d.m, d.k, d.n * d.m, o.hk, 2 * o.gk, self.heads.scale);
        let (q, kv, dctx) = (q.contiguous()?, kv.contiguous()?, dctx.contiguous()?);
        let ((qs, ql), (kvs, kvl), (gs, gl)) = (
            q.storage_and_layout(),
            kv.storage_and_layout(),
            dctx.storage_and_layout(),
        );
        let (qv, kvv, g) = (
            storage_values(&qs, ql)?,
            storage_values(&kvs, kvl)?,
            storage_values(&gs, gl)?,
        );
        let keep_ds = bias.track_op();
        let mut ds_all = vec![0f32; if keep_ds { d.b * d.h * nm } else { 0 }];
        let ds_out = Shared(ds_all.as_mut_ptr());
        let groups = d.b * (d.h / o.r);
        let fill = |dq_out: Shared, dkv_out: Shared| {
            (0..groups).into_par_iter().for_each(|group| {
                let (i, first) = (group / (d.h / o.r), (group % (d.h / o.r)) * o.r);
                let mut dp = vec![0f32; nm];
                for (t, j) in (first..first + o.r).enumerate() {
                    let pair = i * d.h + j;
                    let pw = &p[pair * nm..][..nm];
                    let (qo, ko, vo) = o.of(i, j);
                    let pd = self.dropped(pw, pair, nm);
                    // The first query head of the group writes dk and dv, the others add to them.
                    let beta = if t == 0 { 0.0 } else { 1.0 };
                    // SAFETY (all products): operands are heads of q, kv and
                    // dctx (rows hk or 2 g k apart, dims checked) or this
                    // task's own buffers; outputs are this pair's columns of
                    // dq and this group's key/value head columns of dkv,
                    // written by this task alone (first with beta 0).
                    unsafe {
                        let gi = g[qo..].as_ptr();
                        let dv = dkv_out.at(vo);
                        lib.call_strided(
                            (true, false),
                            (m, k, n),
                            (pd.as_ptr(), m),
                            (gi, hk),
                            (dv, kvw),
                            (1.0, beta),
                        );
                        let vi = kvv[vo..].as_ptr();
                        lib.call_strided(
                            (false, true),
                            (n, m, k),
                            (gi, hk),
                            (vi, kvw),
                            (dp.as_mut_ptr(), m),
                            (1.0, 0.0),
                        );
                    }
                    if let Some(mask) = &self.mask {
                        mask.apply_in_place(&mut dp, pair * nm);
                    }
                    for (dr, pr) in dp.chunks_mut(m).zip(pw.chunks(m)) {
                        let dot: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
                        dr.iter_mut().zip(pr).for_each(|(x, &y)| *x = y * (*x - dot));
                    }
                    unsafe {
                        let (ki, qi) = (kvv[ko..].as_ptr(), qv[qo..].as_ptr());
                        let dqi = dq_out.at(qo);
                        lib.call_strided(
                            (false, false),
                            (n, k, m),
                            (dp.as_ptr(), m),
                            (ki, kvw),
                            (dqi, hk),
                            (scale, 0.0),
                        );
                        let dki = dkv_out.at(ko);
                        lib.call_strided(
                            (true, false),
                            (m, k, n),
                            (dp.as_ptr(), m),
                            (qi, hk),
                            (dki, kvw),
                            (scale, beta),
                        );
                        if keep_ds {
                            std::ptr::copy_nonoverlapping(dp.as_ptr(), ds_out.at(pair * nm), nm);
                        }
                    }
                }
            })
        };
        let mut dq = Vec::new();
        // SAFETY: the groups cover every query head's columns of every row of
        // dq and every key/value head's columns of both halves of dkv, each
        // first written whole by sgemm with beta 0.
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
