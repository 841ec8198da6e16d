//! Compute kernels, kept apart from the models (as llm.c keeps `llmc/` apart
//! from `train_gpt2.c`). A model calls one entry point per op and the entry
//! point picks the path; no model names a path.
//!
//! | entry point | what |
//! |---|---|
//! | [`linear`], [`linear_concat`] | x Wᵀ over (b, n, d), and over several weights at once |
//! | [`attend`] | a whole teacher-forced attention, heads in place |
//! | [`attention_weights`], [`batched_matmul`] | the pieces of a cached (decoding) attention |
//! | [`softmax`], [`rms_norm`], [`cross_entropy`] | row-wise ops |
//! | [`rope`] | the rotary position rotation |
//! | [`relu`], [`gelu_tanh`], [`gelu_erf`], [`silu`], [`swiglu`] | activations |
//! | [`Dropout`] | seeded dropout and the residual add with dropout |
//! | [`precision`] | the products' precision (f32, or bf16 with f32 sums) |
//!
//! The paths, in the order an entry point tries them:
//!
//! | path | when | files |
//! |---|---|---|
//! | bf16 products | a BLAS product below, under `precision::scope(Bf16)` (the generic path's products: bf16 copies, `composed::matmul`) | `precision.rs`, `bf16.rs` |
//! | BLAS products, one-op attention | f32 on the CPU with a BLAS library loaded | `blas.rs`, `batched.rs`, `attention.rs`, `linear.rs` |
//! | few-row products | f32 on the CPU, a few rows outside autograd (decoding) | `gemv.rs` |
//! | fused CPU ops | f32 on the CPU | `fused.rs`, `activation.rs`, `rope.rs`, `dropout.rs` |
//! | fused CUDA ops | softmax, RMS norm, cross-entropy: f32 on a GPU, built with CUDA | `fused.rs`, `cuda.rs`, `cuda/fused.cu` |
//! | stream dropout | dropout anywhere but the fused CPU path: its mask made from the stream where the tensor lives | `dropout.rs`, `cuda.rs`, `cuda/dropout.cu` |
//! | device-generic | every other device and dtype, or when forced | `composed.rs` |
//!
//! The device-generic path is what Metal runs, and CUDA for everything but
//! the three fused CUDA ops. It is built only from candle ops that have a
//! backward pass: candle's own fused `softmax_last_dim`, `rms_norm`,
//! `layer_norm`, rotary and `sdpa` ops have none (gradients would stop there
//! silently) and are never used; promot's fused ops carry their own backward.
//! [`force_generic`] (or `PROMOT_KERNELS=generic` in the environment) makes
//! every device take it, the CPU included, so the path a GPU takes is checked
//! against transformers on any machine (tests/generic_kernels.rs), and on a
//! GPU the fused CUDA ops can be compared with it.

pub mod activation;
pub mod attention;
pub mod batched;
pub mod bf16;
pub mod blas;
pub mod composed;
#[cfg(feature = "cuda")]
mod cuda;
mod dropout;
pub mod fused;
pub mod gemv;
mod linear;
pub mod precision;
mod rope;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use candle_core::{DType, Tensor};

use crate::error::Result;

pub use attention::Heads;
pub use dropout::Dropout;
pub use linear::{linear, linear_concat};
pub use rope::HeadLayout;

// ---------------------------------------------------------------- path choice

static FORCED: OnceLock<AtomicBool> = OnceLock::new();
static FAST_PATHS_TAKEN: AtomicUsize = AtomicUsize::new(0);

fn forced() -> &'static AtomicBool {
    FORCED.get_or_init(|| {
        let env = std::env::var("PROMOT_KERNELS").unwrap_or_default();
        AtomicBool::new(env.eq_ignore_ascii_case("generic"))
    })
}

/// Take the device-generic path everywhere, the CPU included, from now on in
/// this process (`false` goes back to the fast CPU paths).
pub fn force_generic(on: bool) {
    forced().store(on, Ordering::Relaxed)
}

/// Whether the device-generic path is forced.
pub fn generic_forced() -> bool {
    forced().load(Ordering::Relaxed)
}

/// How many times a fast path (fused, BLAS, bf16, gemv) was chosen in
/// this process: a test that forces the generic path checks it stays 0.
pub fn fast_paths_taken() -> usize {
    FAST_PATHS_TAKEN.load(Ordering::Relaxed)
}

/// The one gate of every fast path: `ok` (the path's own conditions)
/// and the generic path not forced. Counts the paths taken.
fn fast(ok: bool) -> bool {
    let take = ok && !generic_forced();
    if take {
        FAST_PATHS_TAKEN.fetch_add(1, Ordering::Relaxed);
    }
    take
}

/// f32, contiguous, on the CPU: what the fused CPU ops read.
fn cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() && t.rank() >= 1
}

/// What `fused.rs`'s softmax, RMS norm and cross-entropy read: f32,
/// contiguous and not empty, on the CPU or, built with CUDA, on a GPU (where
/// each runs as one kernel, `cuda.rs`).
fn fused_f32(t: &Tensor) -> bool {
    let device_ok = t.device().is_cpu() || (cfg!(feature = "cuda") && t.device().is_cuda());
    device_ok && t.dtype() == DType::F32 && t.is_contiguous() && t.rank() >= 1 && t.elem_count() > 0
}

// ---------------------------------------------------------------- entry points

/// softmax(q kᵀ + bias) over the keys, for split heads: q (b, h, n, k), keys
/// (b, h, m, k), bias broadcasting to (b, h, n, m); scores in q's dtype, the
/// softmax in f32, the weights back in q's dtype (as transformers computes them).
pub fn attention_weights(q: &Tensor, keys: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let ok = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.rank() == 4;
    if fast(ok(q) && ok(keys) && ok(bias) && blas::get().is_some()) {
        return attention::weights(q, keys, bias);
    }
    let scores = batched_matmul(q, keys, false, true)?.broadcast_add(bias)?;
    Ok(softmax(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?)
}

/// Multi-head (or grouped-query) attention with heads in place, teacher-forced:
///
///   q (b, n, h k), kv (b, m, 2 g k) = [keys | values] -> ctx (b, n, h k),
///   ctx_j = dropout(softmax(scale q_j k_{j/r}ᵀ + bias_j)) v_{j/r}, r = h / g,
///
/// bias broadcasting to (b, h, n, m). The dropout mask is `drop`'s next
/// b h n m values, whichever path runs.
pub fn attend(q: &Tensor, kv: &Tensor, bias: &Tensor, heads: Heads, drop: &Dropout, train: bool) -> Result<Tensor> {
    let ok = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if fast(ok(q) && ok(kv) && ok(bias) && blas::get().is_some()) {
        return attention::attend(q, kv, bias, heads, drop, train);
    }
    composed::attend(q, kv, bias, heads, drop, train)
}

/// Batched product C[i] = op(A[i]) op(B[i]) over equal leading dimensions,
/// each operand read transposed when `ta` / `tb`, with its gradients.
pub fn batched_matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    let ok = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32 && t.rank() >= 2;
    if fast(ok(a) && ok(b) && blas::get().is_some()) {
        return batched::batched_matmul(a, b, ta, tb);
    }
    let op = |t: &Tensor, tr: bool| if tr { t.t() } else { Ok(t.clone()) };
    composed::matmul(&op(a, ta)?, &op(b, tb)?)
}

/// Softmax over the last dimension (any rank).
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    if fast(fused_f32(x)) {
        return fused::softmax_last_dim(x);
    }
    composed::softmax(x)
}

/// RMS norm over the last dimension, scaled by w (d): x / sqrt(mean(x²) + eps) · w,
/// computed in f32 whatever the dtype (as transformers does).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let same_device = x.device().same_device(w.device());
    if fast(fused_f32(x) && fused_f32(w) && same_device && w.rank() == 1 && x.dims().last() == Some(&w.dim(0)?)) {
        return fused::rms_norm(x, w, eps);
    }
    composed::rms_norm(x, w, eps)
}

/// Per-row cross-entropy of logits (n, v) against class ids (n), with label
/// smoothing `eps` (torch.nn.CrossEntropyLoss's rule), in f32:
///
///   loss_i = (1 - eps)(-log p[y_i]) + eps · mean_v(-log p[v])
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, eps: f64) -> Result<Tensor> {
    let targets = targets.to_dtype(DType::U32)?;
    let ok = fused_f32(logits)
        && logits.rank() == 2
        && targets.is_contiguous()
        && targets.device().same_device(logits.device())
        && targets.dims() == [logits.dim(0)?];
    if fast(ok) {
        return fused::cross_entropy_rows(logits, &targets, eps);
    }
    composed::cross_entropy(logits, &targets, eps)
}

/// The rotary rotation y = x ⊙ cos + rotate_half(x) ⊙ sin, with tables cos
/// and sin (b, 1, n, k), on x laid out as `layout` says.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, layout: HeadLayout) -> Result<Tensor> {
    let ok = cpu_f32(cos) && cpu_f32(sin) && x.device().is_cpu() && x.dtype() == DType::F32;
    if fast(ok && rope::fits(x, layout)) {
        return rope::rotate(x, cos, sin, layout);
    }
    composed::rope(x, cos, sin, layout)
}

/// max(x, 0), with PyTorch's derivative (0 at x = 0).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if fast(cpu_f32(x)) {
        return activation::relu(x);
    }
    composed::relu(x)
}

/// The tanh approximation of GELU (transformers' `gelu_new`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if fast(cpu_f32(x)) {
        return activation::gelu_tanh(x);
    }
    Ok(x.gelu()?)
}

/// The exact GELU, x Φ(x).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    Ok(x.gelu_erf()?)
}

/// x σ(x).
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if fast(cpu_f32(x)) {
        return activation::silu(x);
    }
    Ok(candle_nn::ops::silu(x)?)
}

/// silu(gate) ⊙ up, the Llama MLP's gated activation.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fast(cpu_f32(gate) && cpu_f32(up) && gate.dims() == up.dims()) {
        return activation::swiglu(gate, up);
    }
    Ok(silu(gate)?.mul(up)?)
}
