//! Batched products C[i] = op(A[i]) op(B[i]) through BLAS (`blas.rs`), with
//! their gradients: attention's q·kᵀ and p·v where it is not one fused op.
//! Each product is one strided BLAS call; the products are handed out to
//! promot's tasks in groups.

use std::ffi::c_int;

use candle_core::Tensor;
use rayon::prelude::*;

use super::blas::{here, written, Shared, MIN_FLOPS};
use super::fused::values;
use crate::error::Result;

/// Batched product C[i] = op(A[i]) op(B[i]) over the leading dimensions of
/// A (..., m, k) and B (..., k, n) (each stored transposed when `ta` / `tb`),
/// with its gradients: attention's q·kᵀ and p·v. Through BLAS when a library
/// is loaded and both are f32 on the CPU, else candle's matmul. No
/// broadcasting: the leading dimensions must be equal.
pub fn batched_matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    Ok(a.apply_op2_arc(&b, std::sync::Arc::new(Box::new(Batched { ta, tb })))?)
}

/// `batched_matmul`'s op; forward only when applied with `apply_op2_no_bwd`.
struct Batched {
    ta: bool,
    tb: bool,
}

/// `batched_matmul` outside autograd, through BLAS (which must be loaded).
pub(crate) fn batched_product(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> candle_core::Result<Tensor> {
    a.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, &Batched { ta, tb })
}

impl candle_core::CustomOp2 for Batched {
    fn name(&self) -> &'static str {
        "blas-batched-matmul"
    }

    fn cpu_fwd(
        &self,
        a: &candle_core::CpuStorage,
        a_layout: &candle_core::Layout,
        b: &candle_core::CpuStorage,
        b_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let Some(blas) = here() else {
            candle_core::bail!("blas: no BLAS library loaded");
        };
        let (ad, bd) = (a_layout.dims(), b_layout.dims());
        let (ra, rb) = (ad.len(), bd.len());
        if ra < 2 || ra != rb || ad[..ra - 2] != bd[..rb - 2] {
            candle_core::bail!("blas: cannot batch-multiply {ad:?} by {bd:?}");
        }
        let (ta, tb) = (self.ta, self.tb);
        let (m, k) = if ta {
            (ad[ra - 1], ad[ra - 2])
        } else {
            (ad[ra - 2], ad[ra - 1])
        };
        let (kb, n) = if tb {
            (bd[rb - 1], bd[rb - 2])
        } else {
            (bd[rb - 2], bd[rb - 1])
        };
        if k != kb || [m, n, k].into_iter().any(|x| x > c_int::MAX as usize) {
            candle_core::bail!("blas: cannot batch-multiply {ad:?} by {bd:?} (ta {ta}, tb {tb})");
        }
        let (av, bv) = (values(a, a_layout)?, values(b, b_layout)?);
        let count: usize = ad[..ra - 2].iter().product();
        let mut dims = ad[..ra - 2].to_vec();
        dims.extend([m, n]);
        if m == 0 || n == 0 || k == 0 || count == 0 {
            return Ok((candle_core::CpuStorage::F32(vec![0f32; count * m * n]), dims.into()));
        }
        // Products are handed out in groups, one per task; none under MIN_FLOPS of work.
        let by_work = (2 * count * m * n).saturating_mul(k) / MIN_FLOPS;
        let tasks = blas.tasks().min(count).min(by_work).max(1);
        let group = count.div_ceil(tasks);
        let (lda, ldb) = (if ta { m } else { k }, if tb { k } else { n });
        let fill = |c: Shared| {
            (0..tasks).into_par_iter().for_each(|g| {
                for i in g * group..((g + 1) * group).min(count) {
                    let (ai, bi) = (&av[i * m * k..(i + 1) * m * k], &bv[i * k * n..(i + 1) * k * n]);
                    // SAFETY: product i's operands (dims checked above) and its own output block.
                    unsafe {
                        blas.call_strided(
                            (ta, tb),
                            (m, n, k),
                            (ai.as_ptr(), lda),
                            (bi.as_ptr(), ldb),
                            (c.at(i * m * n), n),
                            (1.0, 0.0),
                        )
                    };
                }
            })
        };
        // SAFETY: the groups cover products 0 .. count, each written whole by sgemm.
        let c = unsafe { written(count * m * n, fill) };
        Ok((candle_core::CpuStorage::F32(c), dims.into()))
    }

    /// C = op(A) op(B): dA = G op(B)ᵀ (stored (k, m) when `ta`: op(B) Gᵀ),
    /// dB = op(A)ᵀ G (stored (n, k) when `tb`: Gᵀ op(A)).
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _c: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (ta, tb) = (self.ta, self.tb);
        let grad_a = match (a.track_op(), ta) {
            (false, _) => None,
            (true, false) => Some(batched_product(g, b, false, !tb)?),
            (true, true) => Some(batched_product(b, g, tb, true)?),
        };
        let grad_b = match (b.track_op(), tb) {
            (false, _) => None,
            (true, false) => Some(batched_product(a, g, !ta, false)?),
            (true, true) => Some(batched_product(g, a, true, ta)?),
        };
        Ok((grad_a, grad_b))
    }
}
