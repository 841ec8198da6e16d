//! Benchmark: one training step of a t5-small-shaped model with random weights
//! (batch 8 x 128 input tokens x 32 target tokens, dropout 0.1, Adafactor), in
//! three settings:
//!
//!   full    every model weight trainable, no prompt (the plain fine-tuning step)
//!   stage1  ProMoT stage 1: a 100-token soft prompt trainable, the model frozen
//!   stage2  ProMoT stage 2: the model trainable, the prompt frozen and attached
//!
//! Each step is timed as forward (embed, attach, loss), backward and optimizer
//! update, after warm-up steps. When benches/results/torch_train_step.json
//! exists (written by benches/train_step_torch.py) the same settings in
//! PyTorch + transformers are printed beside ours with the ratio.
//!
//! First, the matmul backend in use (OpenBLAS when `scripts/get-blas.sh` has
//! fetched it, else candle's gemm; see src/model/blas.rs) and the GFLOP/s of
//! both backends on the model's two defining products: a feed-forward layer
//! (1024x512 · 512x2048) and the vocabulary projection (256x512 · 512x32128).
//!
//! A second part times single operations at the model's shapes, to show where
//! a step's time goes (matmul layout, softmax, rms_norm, dropout masks, the
//! weight-gradient matmuls candle also runs for frozen weights).
//!
//! Run: `cargo bench --bench train_step` (or benches/run.sh for both sides).
//! Environment: PROMOT_BENCH_STEPS (timed steps, default 5),
//! PROMOT_BENCH_WARMUP (default 2), PROMOT_BENCH_OPS=0 skips the op timings,
//! PROMOT_BENCH_ONLY=full|stage1|stage2 times just that setting (for `perf
//! record`; `gemm` prints only the GFLOP/s rows), PROMOT_TORCH_JSON overrides
//! the PyTorch results path, PROMOT_BLAS=off times candle's gemm throughout.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use promot::error::{Error, Result};
use promot::model::blas;
use promot::model::layers::{linear, rms_norm, Dropout};
use promot::model::{LanguageModel, T5Config, T5};
use promot::optim::{self, OptimOptions, Optimizer};
use promot::params::Param;
use promot::prompt::{Init, SoftPrompt};

const BATCH: usize = 8;
const INPUT_LEN: usize = 128;
const TARGET_LEN: usize = 32;
const PROMPT_LEN: usize = 100;
const LR: f64 = 1e-3;

/// google-t5/t5-small's shape (v1.0: relu, tied embeddings), dropout 0.1.
fn t5_small() -> Result<T5Config> {
    Ok(serde_json::from_value(serde_json::json!({
        "vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048,
        "num_layers": 6, "num_decoder_layers": 6, "num_heads": 8,
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu",
        "tie_word_embeddings": true, "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1
    }))?)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One fixed batch of random token ids (no padding), reused every step.
struct Batch {
    ids: Tensor,
    mask: Tensor,
    targets: Tensor,
    target_mask: Tensor,
}

fn random_batch(vocab: usize, device: &Device) -> Result<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Ids 2.. skip pad (0) and eos (1), so every position is a real token.
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(2..vocab as u32)).collect() };
    let input: Vec<u32> = ids(BATCH * INPUT_LEN);
    let target: Vec<u32> = ids(BATCH * TARGET_LEN);
    Ok(Batch {
        ids: Tensor::from_vec(input, (BATCH, INPUT_LEN), device)?,
        mask: Tensor::ones((BATCH, INPUT_LEN), DType::F32, device)?,
        targets: Tensor::from_vec(target, (BATCH, TARGET_LEN), device)?,
        target_mask: Tensor::ones((BATCH, TARGET_LEN), DType::F32, device)?,
    })
}

/// Seconds spent in each phase of one or more steps.
#[derive(Clone, Copy, Default)]
struct Phases {
    forward: f64,
    backward: f64,
    optimizer: f64,
}

impl Phases {
    fn total(&self) -> f64 {
        self.forward + self.backward + self.optimizer
    }
}

/// One training step, as the trainer does it: embed, attach the prompt, loss
/// (dropout on), read the loss, backward, optimizer update.
fn train_step(
    model: &T5,
    prompt: Option<&SoftPrompt>,
    batch: &Batch,
    opt: &mut dyn Optimizer,
    params: &[Param],
) -> Result<Phases> {
    let t0 = Instant::now();
    let embeds = model.embed(&batch.ids)?;
    let (embeds, mask) = match prompt {
        Some(p) => p.attach(&embeds, &batch.mask)?,
        None => (embeds, batch.mask.clone()),
    };
    let out = model.loss(&embeds, &mask, &batch.targets, &batch.target_mask, 0.0, true)?;
    let loss = out.loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    if !loss.is_finite() {
        return Err(Error::msg(format!("loss became {loss}")));
    }
    let t1 = Instant::now();
    let grads: GradStore = out.loss.backward()?;
    let t2 = Instant::now();
    opt.step(params, &grads)?;
    drop(grads);
    let t3 = Instant::now();
    Ok(Phases {
        forward: (t1 - t0).as_secs_f64(),
        backward: (t2 - t1).as_secs_f64(),
        optimizer: (t3 - t2).as_secs_f64(),
    })
}

/// Mean phases over `steps` timed steps after `warmup` untimed ones, plus the
/// fastest whole step.
struct Timing {
    mean: Phases,
    min_total: f64,
}

fn time_steps(
    model: &T5,
    prompt: Option<&SoftPrompt>,
    batch: &Batch,
    params: &[Param],
    warmup: usize,
    steps: usize,
) -> Result<Timing> {
    let mut opt = optim::build("adafactor", LR, &OptimOptions::default())?;
    for _ in 0..warmup {
        train_step(model, prompt, batch, opt.as_mut(), params)?;
    }
    let mut sum = Phases::default();
    let mut min_total = f64::INFINITY;
    for _ in 0..steps {
        let p = train_step(model, prompt, batch, opt.as_mut(), params)?;
        sum.forward += p.forward;
        sum.backward += p.backward;
        sum.optimizer += p.optimizer;
        min_total = min_total.min(p.total());
    }
    let n = steps.max(1) as f64;
    Ok(Timing {
        mean: Phases {
            forward: sum.forward / n,
            backward: sum.backward / n,
            optimizer: sum.optimizer / n,
        },
        min_total,
    })
}

fn ms(s: f64) -> f64 {
    s * 1e3
}

fn print_row(label: &str, t: &Timing) {
    let m = &t.mean;
    println!(
        "{label:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        ms(m.total()),
        ms(t.min_total),
        ms(m.forward),
        ms(m.backward),
        ms(m.optimizer)
    );
}

/// The PyTorch side's JSON, if the Python script has been run.
fn torch_results() -> Option<(serde_json::Value, String)> {
    let path = std::env::var("PROMOT_TORCH_JSON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/benches/results/torch_train_step.json").to_string());
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str(&text).ok().map(|v| (v, path))
}

/// Mean milliseconds of `f` over `reps` calls after two warm-up calls.
fn time_op(reps: usize, mut f: impl FnMut() -> Result<Tensor>) -> Result<f64> {
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
fn op_profile(device: &Device) -> Result<()> {
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
        time_op(reps, || linear(&x3, &w_in))?,
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
fn gemm_rates(device: &Device) -> Result<()> {
    let reps = env_usize("PROMOT_BENCH_OP_REPS", 10);
    println!(
        "matmul GFLOP/s (y = x·Wᵀ, mean of {reps} calls)   {:>10} {:>10}",
        "candle", "blas"
    );
    for (name, m, d, o) in [
        ("feed-forward 1024x512 · 512x2048", 1024, 512, 2048),
        ("vocabulary   256x512 · 512x32128", 256, 512, 32128),
    ] {
        let x = randn(&[m, d], device)?;
        let w = randn(&[o, d], device)?;
        let gflop = 2.0 * (m * d * o) as f64 / 1e9;
        let candle = gflop / (time_op(reps, || Ok(x.matmul(&w.t()?)?))? / 1e3);
        let blas = if blas::applies(&x, &w) {
            let rate = gflop / (time_op(reps, || blas::linear_wt(&x, &w))? / 1e3);
            format!("{rate:>10.1}")
        } else {
            format!("{:>10}", "-")
        };
        println!("  {name:<47} {candle:>10.1} {blas}");
    }
    Ok(())
}

/// Time a single setting by name, nothing else (a clean `perf record` target).
fn time_one_setting(
    model: &T5,
    prompt: &SoftPrompt,
    batch: &Batch,
    name: &str,
    warmup: usize,
    steps: usize,
) -> Result<()> {
    let all_model: Vec<Param> = model.params().iter().cloned().collect();
    let timing = match name {
        "full" => time_steps(model, None, batch, &all_model, warmup, steps)?,
        "stage2" => {
            prompt.freeze();
            time_steps(model, Some(prompt), batch, &all_model, warmup, steps)?
        }
        "stage1" => {
            model.params().set_trainable("*", false)?;
            time_steps(model, Some(prompt), batch, &[prompt.param().clone()], warmup, steps)?
        }
        other => {
            return Err(Error::msg(format!(
                "PROMOT_BENCH_ONLY: unknown setting '{other}' (expected full, stage1 or stage2)"
            )))
        }
    };
    print_row(name, &timing);
    Ok(())
}

fn main() -> Result<()> {
    let steps = env_usize("PROMOT_BENCH_STEPS", 5);
    let warmup = env_usize("PROMOT_BENCH_WARMUP", 2);
    let device = Device::Cpu;
    let cfg = t5_small()?;
    let model = T5::random(cfg.clone(), 0, &device)?;
    let batch = random_batch(cfg.vocab_size, &device)?;
    let prompt = SoftPrompt::new("bench", &model, PROMPT_LEN, Init::Uniform, 1)?;
    let all_model: Vec<Param> = model.params().iter().cloned().collect();
    println!(
        "promot train step: t5-small shape ({:.1}M params), batch {BATCH} x {INPUT_LEN} in x {TARGET_LEN} out, prompt {PROMPT_LEN}, \
         adafactor lr {LR}, dropout {}, {} threads, {warmup} warm-up + {steps} timed steps",
        model.params().count() as f64 / 1e6,
        cfg.dropout_rate,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    // candle reads these once: its elementwise thread pool spin-waits, which
    // costs a lot on a small shared machine: compare a run with CANDLE_NUM_THREADS=1.
    let knobs: Vec<String> = [
        "CANDLE_NUM_THREADS",
        "RAYON_NUM_THREADS",
        "CANDLE_BARRIER_POOL_SPIN_LIMIT",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
    .collect();
    if !knobs.is_empty() {
        println!("thread settings: {}", knobs.join(" "));
    }
    println!("matmul backend: {}", blas::backend());
    gemm_rates(&device)?;
    if std::env::var("PROMOT_BENCH_ONLY").as_deref() == Ok("gemm") {
        return Ok(());
    }
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "ms/step", "mean", "min", "forward", "backward", "optim"
    );
    if let Ok(only) = std::env::var("PROMOT_BENCH_ONLY") {
        return time_one_setting(&model, &prompt, &batch, &only, warmup, steps);
    }

    // full: plain fine-tuning, no prompt.
    let full = time_steps(&model, None, &batch, &all_model, warmup, steps)?;
    print_row("full", &full);
    // stage 2: model trainable, prompt frozen and attached (228 encoder positions).
    prompt.freeze();
    let stage2 = time_steps(&model, Some(&prompt), &batch, &all_model, warmup, steps)?;
    print_row("stage2", &stage2);
    // stage 1: only the prompt trains; every model weight is a detached view.
    model.params().set_trainable("*", false)?;
    prompt.unfreeze();
    let prompt_only = vec![prompt.param().clone()];
    let stage1 = time_steps(&model, Some(&prompt), &batch, &prompt_only, warmup, steps)?;
    print_row("stage1", &stage1);
    // What dropout (mask generation and the extra multiplies) costs the full step.
    model.params().set_trainable("*", true)?;
    model.dropout().set_p(0.0);
    let no_dropout = time_steps(&model, None, &batch, &all_model, warmup, steps)?;
    model.dropout().set_p(cfg.dropout_rate);
    print_row("full, dropout off", &no_dropout);
    println!(
        "dropout costs the full step {:.1} ms ({:.0}%); stage1/stage2 = {:.2}, stage1 backward/stage2 backward = {:.2}",
        ms(full.mean.total() - no_dropout.mean.total()),
        100.0 * (full.mean.total() - no_dropout.mean.total()) / full.mean.total(),
        stage1.mean.total() / stage2.mean.total(),
        stage1.mean.backward / stage2.mean.backward
    );

    match torch_results() {
        Some((json, path)) => {
            println!(
                "\nvs PyTorch {} / transformers {} ({path}, {} threads, OMP_WAIT_POLICY {})",
                json["torch"], json["transformers"], json["threads"], json["omp_wait_policy"]
            );
            println!(
                "{:<10} {:>12} {:>12} {:>15} {:>12} {:>12}",
                "", "promot ms", "torch ms", "promot/torch", "fwd ratio", "bwd ratio"
            );
            for (name, ours) in [("full", &full), ("stage1", &stage1), ("stage2", &stage2)] {
                let theirs = &json["results"][name];
                let (Some(total), Some(fwd), Some(bwd)) = (
                    theirs["ms_per_step"].as_f64(),
                    theirs["forward_ms"].as_f64(),
                    theirs["backward_ms"].as_f64(),
                ) else {
                    println!("{name:<10} (no PyTorch result)");
                    continue;
                };
                println!(
                    "{name:<10} {:>12.1} {:>12.1} {:>15.2} {:>12.2} {:>12.2}",
                    ms(ours.mean.total()),
                    total,
                    ms(ours.mean.total()) / total,
                    ms(ours.mean.forward) / fwd,
                    ms(ours.mean.backward) / bwd
                );
            }
        }
        None => {
            println!("\n(no PyTorch results: run `python benches/train_step_torch.py` or benches/run.sh for the ratio)")
        }
    }

    if std::env::var("PROMOT_BENCH_OPS").map(|v| v != "0").unwrap_or(true) {
        op_profile(&device)?;
    }
    Ok(())
}
