//! Fused kernels, forward and backward side by side: softmax over the last
//! dimension, RMS norm and the label-smoothed cross-entropy (the activations
//! are in `activation.rs`). The CPU code is here; built with CUDA, each op's
//! `cuda_fwd` runs the same formula as one kernel (`cuda.rs`, `cuda/fused.cu`).
//!
//! candle builds each of these from several elementwise ops, and each op
//! reads and writes the whole tensor (and allocates its result): a softmax
//! is 5 passes forward and more backward. Here each
//! direction is one pass over the rows (rayon's pool, the one `blas` and
//! `gemv` use), with the same formulas:
//!
//!   softmax   y = exp(x - max x) / Σ exp(x - max x)       dx = y ⊙ (g - Σ g ⊙ y)
//!   rms_norm  r = 1 / sqrt(mean(x²) + eps), y = x r w     dx = r (g ⊙ w - x r² mean(g ⊙ w ⊙ x)),
//!                                                          dw = Σ_rows g ⊙ x r
//!   cross-entropy with label smoothing ε over v classes, per row, target y:
//!             ℓ = (1 - ε)(lse(x) - x_y) + ε (lse(x) - mean x)  dx = g (softmax(x) - (1 - ε) onehot(y) - ε / v)
//!
//! The cross-entropy never materializes log-probabilities: forward keeps one
//! number per row, and backward recomputes the softmax row by row, so the
//! (rows, vocabulary) logits are the only tensor of that size a step holds.
//!
//! `kernels::softmax`, `kernels::rms_norm` and `kernels::cross_entropy` take
//! these for contiguous f32 tensors on the CPU (and, built with CUDA, on a
//! GPU) and the composed candle ops (`composed.rs`) otherwise, so every
//! device and dtype computes the same function. tests/fused.rs checks values
//! and gradients against the composed ops; scripts/gpu-check.sh the CUDA side
//! against the CPU.
//!
//! Shape legend: n rows, d the last (normalized / softmaxed) dimension.

#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{CpuStorage, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;

/// Elements per rayon task at the least: below this, splitting costs more
/// than it saves (and on a busy machine waits for a descheduled worker).
pub(super) const MIN_WORK: usize = 1 << 15;
/// Rows per task at the least, for the row reductions.
const MIN_ROWS: usize = 16;

/// The f32 values of a contiguous CPU operand (every fused op and BLAS
/// product reads its operands through this).
pub(crate) fn values<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<f32>()?[start..end]),
        None => candle_core::bail!("fused: operand is not contiguous"),
    }
}

/// `values` of a tensor's storage, borrowed (`Tensor::storage_and_layout`),
/// for the backward passes that read their inputs without copying them.
pub(crate) fn storage_values<'a>(s: &'a candle_core::Storage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match s {
        candle_core::Storage::Cpu(cpu) => values(cpu, l),
        _ => candle_core::bail!("fused: an operand is not on the CPU"),
    }
}

/// Out rows of length `d`, filled in parallel by `f(row index, out row)`.
fn par_rows(n: usize, d: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; n * d];
    if d > 0 {
        out.par_chunks_mut(d)
            .enumerate()
            .with_min_len(MIN_ROWS.max(MIN_WORK / d))
            .for_each(|(i, row)| f(i, row));
    }
    out
}

/// (rows, the last dimension) of a layout: what a row kernel iterates over.
pub(super) fn last_dim(l: &Layout) -> candle_core::Result<(usize, usize)> {
    let d = *l.dims().last().unwrap_or(&1);
    Ok((l.shape().elem_count().checked_div(d).unwrap_or(0), d))
}

pub(super) fn contiguous(t: &Tensor) -> candle_core::Result<Tensor> {
    t.contiguous()
}

// ---------------------------------------------------------------- softmax

/// Below this, `f32::exp` rounds to +0 (e^-103.97 is half the smallest
/// subnormal).
const EXP_ZERO_BELOW: f32 = -104.0;

/// `x.exp()`, bit for bit, without calling it where the result is +0. Masked
/// attention logits (-1e9) took glibc's underflow path there, which sets
/// errno: 3.5% of an evaluation profile on SmolLM2 (`xflowf`, `with_errnof`).
#[inline]
fn exp_or_zero(x: f32) -> f32 {
    if x < EXP_ZERO_BELOW {
        0.0
    } else {
        x.exp()
    }
}

/// Softmax over the last dimension (any rank) of contiguous f32 on the CPU.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    Ok(x.apply_op1_arc(std::sync::Arc::new(Box::new(Softmax)))?)
}

/// One row's softmax, in place.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = exp_or_zero(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The softmax's input gradient from its output y and output gradient g.
pub(crate) fn softmax_grad(y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
    y.contiguous()?.apply_op2_no_bwd(&contiguous(g)?, &SoftmaxGrad)
}

struct Softmax;

impl candle_core::CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(s, l)?;
        let (n, d) = last_dim(l)?;
        let y = par_rows(n, d, |i, out| {
            out.copy_from_slice(&x[i * d..(i + 1) * d]);
            softmax_in_place(out);
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        super::cuda::softmax(s, l)
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(softmax_grad(y, g)?))
    }
}

/// (y, g) -> dx = y ⊙ (g - Σ g ⊙ y), per row.
struct SoftmaxGrad;

impl candle_core::CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, g) = (values(ys, yl)?, values(gs, gl)?);
        let (n, d) = last_dim(yl)?;
        let dx = par_rows(n, d, |i, out| {
            let (yr, gr) = (&y[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]);
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((o, &yv), &gv) in out.iter_mut().zip(yr).zip(gr) {
                *o = yv * (gv - dot);
            }
        });
        Ok((CpuStorage::F32(dx), yl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        ys: &CudaStorage,
        yl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        super::cuda::softmax_grad(ys, yl, gs, gl)
    }
}

// ---------------------------------------------------------------- rms_norm

/// x (..., d) · r · w (d), r = 1 / sqrt(mean(x²) + eps) per row; x and w
/// contiguous f32 on the CPU (`kernels::rms_norm` checks).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.apply_op2_arc(w, std::sync::Arc::new(Box::new(RmsNorm { eps: eps as f32 })))?)
}

struct RmsNorm {
    eps: f32,
}

impl RmsNorm {
    fn inv_rms(&self, row: &[f32]) -> f32 {
        let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / row.len().max(1) as f32;
        1.0 / (mean_sq + self.eps).sqrt()
    }
}

impl candle_core::CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (values(xs, xl)?, values(ws, wl)?);
        let (n, d) = last_dim(xl)?;
        let y = par_rows(n, d, |i, out| {
            let row = &x[i * d..(i + 1) * d];
            let r = self.inv_rms(row);
            for ((o, &v), &wv) in out.iter_mut().zip(row).zip(w) {
                *o = v * r * wv;
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        super::cuda::rms_norm(xs, xl, ws, wl, self.eps)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = contiguous(g)?;
        let dx = if x.track_op() {
            Some(x.apply_op3_no_bwd(w, &g, &RmsNormGradX { eps: self.eps })?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&g, &RmsNormGradW { eps: self.eps })?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// (x, w, g) -> dx = r (g ⊙ w - x r² mean(g ⊙ w ⊙ x)), per row.
struct RmsNormGradX {
    eps: f32,
}

impl candle_core::CustomOp3 for RmsNormGradX {
    fn name(&self) -> &'static str {
        "fused-rms-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, g) = (values(xs, xl)?, values(ws, wl)?, values(gs, gl)?);
        let (n, d) = last_dim(xl)?;
        let norm = RmsNorm { eps: self.eps };
        let dx = par_rows(n, d, |i, out| {
            let (xr, gr) = (&x[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]);
            let r = norm.inv_rms(xr);
            let mean_gwx = xr.iter().zip(gr).zip(w).map(|((a, b), c)| a * b * c).sum::<f32>() / d as f32;
            let k = r * r * mean_gwx;
            for (((o, &xv), &gv), &wv) in out.iter_mut().zip(xr).zip(gr).zip(w) {
                *o = r * (gv * wv - xv * k);
            }
        });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        super::cuda::rms_norm_grad_x((xs, xl), (ws, wl), (gs, gl), self.eps)
    }
}

/// (x, g) -> dw = Σ_rows g ⊙ x r, summed over row blocks in parallel.
struct RmsNormGradW {
    eps: f32,
}

impl candle_core::CustomOp2 for RmsNormGradW {
    fn name(&self) -> &'static str {
        "fused-rms-norm-grad-w"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (values(xs, xl)?, values(gs, gl)?);
        let (n, d) = last_dim(xl)?;
        let norm = RmsNorm { eps: self.eps };
        let block = MIN_ROWS * 4;
        let dw = (0..n.div_ceil(block))
            .into_par_iter()
            .map(|b| {
                let mut acc = vec![0f32; d];
                for i in b * block..((b + 1) * block).min(n) {
                    let (xr, gr) = (&x[i * d..(i + 1) * d], &g[i * d..(i + 1) * d]);
                    let r = norm.inv_rms(xr);
                    for ((a, &xv), &gv) in acc.iter_mut().zip(xr).zip(gr) {
                        *a += gv * xv * r;
                    }
                }
                acc
            })
            .reduce(
                || vec![0f32; d],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        Ok((CpuStorage::F32(dw), Shape::from(d)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        super::cuda::rms_norm_grad_w(xs, xl, gs, gl, self.eps)
    }
}

// ---------------------------------------------------------------- cross-entropy

/// Per-row cross-entropy of logits (n, v), contiguous f32 on the CPU,
/// against class ids (n) u32, with label smoothing `eps`.
pub fn cross_entropy_rows(logits: &Tensor, targets: &Tensor, eps: f64) -> Result<Tensor> {
    let op = CrossEntropy { eps: eps as f32 };
    Ok(logits.apply_op2_arc(targets, std::sync::Arc::new(Box::new(op)))?)
}

struct CrossEntropy {
    eps: f32,
}

/// The u32 class ids of a contiguous CPU operand.
fn class_ids<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [u32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<u32>()?[a..b]),
        None => candle_core::bail!("cross-entropy: targets are not contiguous"),
    }
}

impl CrossEntropy {
    /// (max, log Σ exp(x - max)) of one row.
    fn lse(row: &[f32]) -> (f32, f32) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (max, row.iter().map(|&v| exp_or_zero(v - max)).sum::<f32>().ln())
    }

    fn class(targets: &[u32], i: usize, v: usize) -> candle_core::Result<usize> {
        let y = targets[i] as usize;
        if y >= v {
            candle_core::bail!("cross-entropy: target id {y} at row {i} is outside the {v} classes");
        }
        Ok(y)
    }
}

impl candle_core::CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = values(xs, xl)?;
        let targets = class_ids(ts, tl)?;
        let (n, v) = last_dim(xl)?;
        for i in 0..n {
            Self::class(targets, i, v)?;
        }
        let loss = par_rows(n, 1, |i, out| {
            let row = &x[i * v..(i + 1) * v];
            let (max, log_sum) = Self::lse(row);
            let lse = max + log_sum;
            let nll = lse - row[targets[i] as usize];
            out[0] = if self.eps > 0.0 {
                let mean = row.iter().sum::<f32>() / v as f32;
                (1.0 - self.eps) * nll + self.eps * (lse - mean)
            } else {
                nll
            };
        });
        Ok((CpuStorage::F32(loss), Shape::from(n)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ts: &CudaStorage,
        tl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        super::cuda::cross_entropy(xs, xl, ts, tl, self.eps)
    }

    fn bwd(
        &self,
        x: &Tensor,
        targets: &Tensor,
        _loss: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = x.apply_op3_no_bwd(targets, &contiguous(g)?, &CrossEntropyGrad { eps: self.eps })?;
        Ok((Some(grad), None))
    }
}

/// (logits, targets, g) -> g_i (softmax(x_i) - (1 - ε) onehot(y_i) - ε / v).
struct CrossEntropyGrad {
    eps: f32,
}

impl candle_core::CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (values(xs, xl)?, values(gs, gl)?);
        let targets = class_ids(ts, tl)?;
        let (n, v) = last_dim(xl)?;
        let smooth = self.eps / v as f32;
        let dx = par_rows(n, v, |i, out| {
            let row = &x[i * v..(i + 1) * v];
            let (max, log_sum) = CrossEntropy::lse(row);
            let scale = g[i] / log_sum.exp();
            for (o, &xv) in out.iter_mut().zip(row) {
                *o = scale * exp_or_zero(xv - max) - g[i] * smooth;
            }
            out[targets[i] as usize] -= g[i] * (1.0 - self.eps);
        });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ts: &CudaStorage,
        tl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        super::cuda::cross_entropy_grad((xs, xl), (ts, tl), (gs, gl), self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_or_zero_is_exp_bit_for_bit() {
        // Every f32 from -120 to -80 in steps of 2^-10, the boundary included.
        let mut x = -120.0f32;
        while x < -80.0 {
            assert_eq!(exp_or_zero(x).to_bits(), x.exp().to_bits(), "at {x}");
            x += 1.0 / 1024.0;
        }
        for x in [EXP_ZERO_BELOW, f32::MIN, -1e9, 0.0, 1.0, 88.0] {
            assert_eq!(exp_or_zero(x).to_bits(), x.exp().to_bits(), "at {x}");
        }
    }
}
