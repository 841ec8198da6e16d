//! Single operations at t5-small's shapes and the matmul backends' GFLOP/s:
//! where a training step's milliseconds go (see benches/train_step.rs).

use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};

use promot::error::Result;
use promot::kernels::blas;
use promot::kernels::precision::{self, MatmulDtype};
use promot::kernels::{linear, Dropout};
use promot::model::layers::rms_norm;
use promot::params::Param;

const BATCH: usize = 8;
const INPUT_LEN: usize = 128;
const TARGET_LEN: usize = 32;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn ms(s: f64) -> f64 {
    s * 1e3
}

/// Mean milliseconds of `f` over `reps` calls after two warm-up calls.
pub fn time_op(reps: usize, mut f: impl FnMut() -> Result<Tensor>) -> Result<f64> {
    for _ in 0..2 {
        f()?;
    }
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(ms(t.elapsed().as_secs_f64()) / reps as f64)
}

fn randn(shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::randn(0f32, 1f32, shape, device)?)
}

/// Single operations at the encoder's shapes (b 8, s 128, d 512, f 2048, h 8)
/// and the loss's (8 x 32 x 32128): where a step's milliseconds go.
pub fn op_profile(device: &Device) -> Result<()> {
    let (b, s, d, f, h, k, v) = (BATCH, INPUT_LEN, 512, 2048, 8, 64, 32128);
    let n = b * s;
    let reps = env_usize("PROMOT_BENCH_OP_REPS", 10);
    println!("\nop timings (mean ms per call; encoder shapes b={b} s={s}, {n} rows)");
    let row = |name: &str, value: f64| println!("  {name:<62} {value:>8.2}");

    // Matmul layout: promot's linear multiplies by a transposed view of W.
    let x3 = randn(&[b, s, d], device)?;
    let w_in = Param::new("wi", randn(&[f, d], device)?)?;
    let x = x3.reshape((n, d))?;
    let w_t = w_in.tensor().t()?.contiguous()?;
    row(
        "linear (1024x512)·Wᵀ, W (2048x512) as a transposed view",
        time_op(reps, || linear(&x3, &w_in.tensor()))?,
    );
    row(
        "same with Wᵀ stored contiguous (512x2048)",
        time_op(reps, || Ok(x.matmul(&w_t)?))?,
    );
    // Backward of that linear: dX = G·W is needed; dW = Xᵀ·G is wasted when W is frozen.
    let g = randn(&[n, f], device)?;
    let w = w_in.tensor();
    row(
        "  backward dX = G·W (1024x2048 · 2048x512)",
        time_op(reps, || Ok(g.matmul(&w)?))?,
    );
    row(
        "  backward dW = Xᵀ·G (512x1024 · 1024x2048), wasted if frozen",
        time_op(reps, || Ok(x.t()?.matmul(&g)?))?,
    );
    // Attention score matmul, batched over b*h small matrices.
    let q = randn(&[b, h, s, k], device)?;
    let kt = randn(&[b, h, s, k], device)?;
    row(
        "attention scores q·kᵀ (64 x 128x64·64x128)",
        time_op(reps, || Ok(q.matmul(&kt.t()?)?))?,
    );

    // Softmax over (b, h, s, s): promot composes 5 ops; candle's fused kernel has no backward.
    let scores = randn(&[b, h, s, s], device)?;
    row(
        "softmax (8,8,128,128) composed (candle_nn::ops::softmax)",
        time_op(reps, || Ok(candle_nn::ops::softmax(&scores, D::Minus1)?))?,
    );
    row(
        "softmax (8,8,128,128) fused softmax_last_dim (no backward)",
        time_op(reps, || Ok(candle_nn::ops::softmax_last_dim(&scores)?))?,
    );

    // rms_norm over (b, s, d): promot's composed f32 version vs candle's fused one.
    let norm_w = Param::new("ln", Tensor::ones(d, DType::F32, device)?)?;
    row(
        "rms_norm (8,128,512) promot layers::rms_norm (composed)",
        time_op(reps, || rms_norm(&x3, &norm_w, 1e-6))?,
    );
    row(
        "rms_norm (8,128,512) candle_nn::ops::rms_norm (fused, no backward)",
        time_op(reps, || Ok(candle_nn::ops::rms_norm(&x3, &norm_w.tensor(), 1e-6)?))?,
    );

    // Dropout: promot draws one f64 per element from a seeded ChaCha8 on one thread.
    let drop = Dropout::new(0.1, 0);
    let hidden = randn(&[b, s, f], device)?;
    let mask = drop.apply(&Tensor::ones((b, s, f), DType::F32, device)?, true)?;
    row(
        "dropout (8,128,2048) promot Dropout::apply (mask + mul)",
        time_op(reps, || drop.apply(&hidden, true))?,
    );
    row(
        "dropout (8,128,2048) candle_nn::ops::dropout (Tensor::rand mask)",
        time_op(reps, || Ok(candle_nn::ops::dropout(&hidden, 0.1)?))?,
    );
    row(
        "dropout (8,128,2048) multiply by a ready mask (the floor)",
        time_op(reps, || Ok(hidden.mul(&mask)?))?,
    );

    // The loss: log_softmax over the vocabulary for every target position.
    let logits = randn(&[b, TARGET_LEN, v], device)?;
    row(
        "log_softmax (8,32,32128) for the cross-entropy",
        time_op(reps, || Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?))?,
    );
    let hid = randn(&[b * TARGET_LEN, d], device)?;
    let emb = randn(&[v, d], device)?;
    row(
        "tied lm head (256x512)·Eᵀ, E (32128x512), candle matmul",
        time_op(reps, || Ok(hid.matmul(&emb.t()?)?))?,
    );
    Ok(())
}

/// GFLOP/s of y = x Wᵀ at the model's two defining shapes, for candle's gemm
/// and (when loaded) BLAS, with W stored (o, d) as the models hold it.
pub fn gemm_rates(device: &Device) -> Result<()> {
    let reps = env_usize("PROMOT_BENCH_OP_REPS", 10);
    println!(
        "matmul GFLOP/s (y = x·Wᵀ, mean of {reps} calls)   {:>10} {:>10} {:>10}",
        "candle", "blas", "blas bf16"
    );
    for (name, m, d, o) in [
        ("feed-forward 1024x512 · 512x2048", 1024, 512, 2048),
        ("vocabulary   256x512 · 512x32128", 256, 512, 32128),
    ] {
        let x = randn(&[m, d], device)?;
        let w = randn(&[o, d], device)?;
        let gflop = 2.0 * (m * d * o) as f64 / 1e9;
        let candle = gflop / (time_op(reps, || Ok(x.matmul(&w.t()?)?))? / 1e3);
        let rate = |dtype| -> Result<String> {
            if !blas::applies(&x, &w) {
                return Ok(format!("{:>10}", "-"));
            }
            let _dtype = precision::scope(dtype, &Device::Cpu)?;
            let rate = gflop / (time_op(reps, || blas::linear_wt(&x, &w))? / 1e3);
            Ok(format!("{rate:>10.1}"))
        };
        let (blas, bf16) = (rate(MatmulDtype::F32)?, rate(MatmulDtype::Bf16)?);
        println!("  {name:<47} {candle:>10.1} {blas} {bf16}");
    }
    Ok(())
}
