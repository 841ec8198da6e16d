//! The precision of the weight and attention products: `dtype: "f32"` (the
//! default) or `"bf16"`, mixed precision as PyTorch's CPU autocast does it.
//!
//! With bf16, every product of a training step (the linear maps, the tied
//! vocabulary projection, attention's q·kᵀ and p·v, forward and backward)
//! rounds its operands to bf16 and sums in f32: on the CPU through the BLAS
//! path (`blas.rs`, `bf16.rs`), on a GPU and on the forced device-generic path
//! through candle's bf16 matmul (cuBLAS there) on bf16 copies of the operands,
//! whose casts carry the gradients back to f32 (`composed::matmul`). The
//! weights stay f32 (the optimiser's master copy), and so do the activations
//! between products, the norms, softmaxes and the loss.
//!
//! The setting belongs to a thread: the one that runs the graph sets it with
//! [`scope`] (the trainer does, around each step), and a product reads it when
//! it starts, on that thread, and hands it to its worker tasks. So one test or
//! run in bf16 never changes another's f32 products.

use std::cell::Cell;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The precision of the products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulDtype {
    #[default]
    F32,
    Bf16,
}

thread_local! {
    static DTYPE: Cell<MatmulDtype> = const { Cell::new(MatmulDtype::F32) };
}

/// This thread's product precision.
pub fn current() -> MatmulDtype {
    DTYPE.with(Cell::get)
}

/// Restores the thread's previous precision when dropped.
pub struct Scope(MatmulDtype);

impl Drop for Scope {
    fn drop(&mut self) {
        DTYPE.with(|d| d.set(self.0));
    }
}

/// Run this thread's products, for tensors on `device`, at `dtype` until the
/// returned guard drops. On the CPU, bf16 needs the BLAS path
/// (`scripts/get-blas.sh`) or the forced device-generic one: without either
/// some products would silently stay f32, so that is an error. Other devices
/// always take the generic path.
pub fn scope(dtype: MatmulDtype, device: &Device) -> Result<Scope> {
    let rounds = !device.is_cpu() || super::generic_forced() || super::blas::get().is_some();
    if dtype == MatmulDtype::Bf16 && !rounds {
        return Err(Error::msg(
            "dtype 'bf16' runs the products on promot's BLAS path, and no BLAS library is loaded: \
             run `bash scripts/get-blas.sh` (or unset PROMOT_BLAS=off), or use dtype 'f32'",
        ));
    }
    Ok(Scope(DTYPE.with(|d| d.replace(dtype))))
}

/// In words, for the backend line of benchmarks and `help`.
pub fn describe(dtype: MatmulDtype, device: &Device) -> String {
    match dtype {
        MatmulDtype::F32 => "f32".to_string(),
        MatmulDtype::Bf16 if !device.is_cpu() || super::generic_forced() => {
            "bf16 operands, f32 sums (bf16 copies through the device's matmul)".to_string()
        }
        MatmulDtype::Bf16 if super::bf16::has_kernel() => "bf16 operands, f32 sums (AVX512-BF16 kernel)".to_string(),
        MatmulDtype::Bf16 => "bf16 operands, f32 sums (no AVX512-BF16 here: rounded copies through sgemm)".to_string(),
    }
}
