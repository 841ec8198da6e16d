//! y = x W^T for an x of a few rows, as decoding has it: one new token per
//! sequence per step, so m (rows of x) is the batch, often 1-16, while W is a
//! whole layer (o, d). A general GEMM packs W into its tile layout on every
//! call, which at this shape costs several times the product itself (a
//! profile of SmolLM2 decoding spent ~45% of its time packing weights). Here
//! each weight row is read once, straight from its storage, and dotted with
//! every row of x.
//!
//! Shape legend: m rows of x, d input width, o output width (rows of W).
//!
//!   y[r, j] = sum_i x[r, i] * W[j, i]
//!
//! Only for inference (no autograd graph), f32 and the CPU; `linear` falls
//! back to candle's matmul otherwise.

use candle_core::{DType, Storage, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// At most this many rows of x take this path.
pub const MAX_ROWS: usize = 16;
/// Weight rows per parallel task (a few KB of output, a few hundred KB of W).
const ROWS_PER_TASK: usize = 64;
/// Independent accumulators per dot product (SIMD lanes for the compiler).
const LANES: usize = 16;

/// Whether `x (m, d) @ w (o, d)^T` takes this path.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && !x.track_op()
        && !w.track_op()
        && x.rank() >= 2
        && x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1) <= MAX_ROWS
}

/// x (m, d) @ w (o, d)^T -> (m, o), reading W in place.
pub fn matmul_wt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (m, d) = x.dims2()?;
    let (o, dw) = w.dims2()?;
    if d != dw {
        return Err(Error::msg(format!(
            "gemv: x {:?} and W {:?} do not match",
            x.dims(),
            w.dims()
        )));
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let w = w.contiguous()?;
    let (storage, layout) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::msg("gemv: W is not on the CPU"));
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::msg("gemv: W is not contiguous"))?;
    let ws = &cpu.as_slice::<f32>()?[start..end];
    // yt (o, m): each task fills the outputs of its weight rows.
    let mut yt = vec![0f32; o * m];
    yt.par_chunks_mut(ROWS_PER_TASK * m)
        .zip(ws.par_chunks(ROWS_PER_TASK * d))
        .for_each(|(out, rows)| dot_rows(rows, &xs, d, out));
    let mut y = vec![0f32; m * o];
    for j in 0..o {
        for r in 0..m {
            y[r * o + j] = yt[j * m + r];
        }
    }
    Ok(Tensor::from_vec(y, (m, o), x.device())?)
}

/// out[j * m + r] = rows[j] · xs[r] for each weight row j and row r of x.
fn dot_rows(rows: &[f32], xs: &[f32], d: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features this copy is compiled for.
        return unsafe { dot_rows_avx2(rows, xs, d, out) };
    }
    dot_rows_portable(rows, xs, d, out)
}

/// The same with AVX2 + FMA intrinsics (written out, so it is fast whatever
/// the optimisation level this crate is built at): two 8-lane accumulators
/// per dot product.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2(rows: &[f32], xs: &[f32], d: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let m = xs.len() / d;
    let full = d / 16 * 16;
    for (wr, o) in rows.chunks_exact(d).zip(out.chunks_exact_mut(m)) {
        for (xr, y) in xs.chunks_exact(d).zip(o.iter_mut()) {
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (pw, px) = (wr.as_ptr(), xr.as_ptr());
            let mut i = 0;
            while i < full {
                // SAFETY: i + 16 <= full <= d, the length of both rows.
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), _mm256_loadu_ps(px.add(i)), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i + 8)), _mm256_loadu_ps(px.add(i + 8)), a1);
                i += 16;
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(a0, a1));
            let tail: f32 = wr[full..].iter().zip(&xr[full..]).map(|(a, b)| a * b).sum();
            *y = lanes.iter().sum::<f32>() + tail;
        }
    }
}

#[inline(always)]
fn dot_rows_portable(rows: &[f32], xs: &[f32], d: usize, out: &mut [f32]) {
    let m = xs.len() / d;
    for (wr, o) in rows.chunks_exact(d).zip(out.chunks_exact_mut(m)) {
        for (xr, y) in xs.chunks_exact(d).zip(o.iter_mut()) {
            *y = dot(wr, xr);
        }
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (pa, pb) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] += pa[k] * pb[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_candle_matmul() {
        let dev = Device::Cpu;
        for (m, d, o) in [(1, 576, 1536), (4, 37, 130), (16, 64, 1), (3, 1, 5)] {
            let x = Tensor::randn(0f32, 1.0, (m, d), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (o, d), &dev).unwrap();
            let want: Vec<f32> = x
                .matmul(&w.t().unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got: Vec<f32> = matmul_wt(&x, &w).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{m}x{d}x{o}: {a} vs {b}");
            }
        }
    }
}
