//! Benchmark: one training step of each model shape in benches/shapes.json
//! (t5-small, the toy model, SmolLM2-135M; random weights, one fixed batch of
//! random tokens, Adafactor lr 1e-3), in three settings:
//!
//!   full    every model weight trainable, no prompt (the plain fine-tuning step)
//!   stage1  ProMoT stage 1: a soft prompt trainable, the model frozen
//!   stage2  ProMoT stage 2: the model trainable, the prompt frozen and attached
//!
//! Each step is timed as forward (embed, attach, loss), backward and optimizer
//! update, after warm-up steps. When benches/results/torch_train_step.json
//! exists (written by benches/train_step_torch.py from the same shapes.json)
//! the same steps in PyTorch + transformers are printed beside ours with the
//! ratio, and the achieved GFLOP/s of each step (6 x params x tokens for a
//! full step) beside the machine's measured matmul rate.
//!
//! After each shape's steps, beam-4 generation in tokens/s (benches/generation/mod.rs),
//! against PyTorch's `generate` when its results hold it.
//!
//! First, the matmul backend in use (OpenBLAS when `scripts/get-blas.sh` has
//! fetched it, else candle's gemm; see src/kernels/blas.rs) and the GFLOP/s of
//! both backends on t5-small's two defining products. Last, single operations
//! at t5-small's shapes (benches/ops).
//!
//! Run: `cargo bench --bench train_step` (or benches/run.sh for both sides).
//! Environment: PROMOT_BENCH_STEPS (timed steps, default 5),
//! PROMOT_BENCH_WARMUP (default 2), PROMOT_BENCH_SHAPES (comma-separated
//! names from shapes.json, default all), PROMOT_BENCH_GEN_REPS (timed
//! generate calls, default 2), PROMOT_BENCH_ONLY=full|stage1|stage2|generate
//! times just that setting (for `perf record`; `gemm` prints only the GFLOP/s
//! rows), PROMOT_BENCH_OPS=0 skips the op timings, PROMOT_TORCH_JSON
//! overrides the PyTorch results path, PROMOT_BLAS=off times candle's gemm,
//! PROMOT_BENCH_DTYPE=bf16 runs the steps with `dtype: "bf16"` (bf16 products,
//! src/kernels/precision.rs) against PyTorch's autocast bf16 results
//! (benches/results/torch_train_step_bf16.json).
//!
//! On a GPU (scripts/gpu-check.sh runs it there): PROMOT_BENCH_DEVICE=cuda
//! (default cpu) builds the models and batches on that device, and every
//! phase ends with a device synchronisation so the times are the device's;
//! PROMOT_BENCH_SHAPES_FILE names another shapes file (benches/shapes_gpu.json:
//! mT5-base and SmolLM2 at batch 64); PROMOT_BENCH_JSON=FILE writes the
//! timings (and the ratios, where PyTorch's are there) as JSON; PROMOT_REPO
//! is the repository root, where the binary runs away from its build tree
//! (default: the build tree if it exists, else the current directory). The
//! matmul-rate and single-op timings are CPU-only and skipped elsewhere.

mod generation;
mod ops;

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use ops::{env_usize, ms};
use promot::error::{Error, Result};
use promot::kernels::blas;
use promot::kernels::precision::{self, MatmulDtype};
use promot::model::{LanguageModel, Llama, T5};
use promot::optim::{self, Optimizer};
use promot::params::Param;
use promot::prompt::{Init, SoftPrompt};

const LR: f64 = 1e-3;
const SETTINGS: [&str; 3] = ["full", "stage1", "stage2"];

/// One entry of benches/shapes.json, built.
struct Shape {
    name: String,
    model: Box<dyn LanguageModel>,
    batch: usize,
    input_len: usize,
    target_len: usize,
    prompt_len: usize,
}

fn repo_path(rel: &str) -> String {
    let root = std::env::var("PROMOT_REPO").unwrap_or_else(|_| {
        let built = env!("CARGO_MANIFEST_DIR");
        if std::path::Path::new(built).is_dir() {
            built.to_string()
        } else {
            ".".to_string()
        }
    });
    format!("{root}/{rel}")
}

fn read_json(path: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::msg(format!("{path}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::msg(format!("{path}: {e}")))
}

/// The shapes named by PROMOT_BENCH_SHAPES (default: all), in file order.
fn shapes(device: &Device) -> Result<Vec<Shape>> {
    let path = std::env::var("PROMOT_BENCH_SHAPES_FILE").unwrap_or_else(|_| repo_path("benches/shapes.json"));
    let all = read_json(&path)?;
    let Value::Object(entries) = all else {
        return Err(Error::msg(format!("{path}: expected an object of shapes")));
    };
    let wanted: Option<Vec<String>> = std::env::var("PROMOT_BENCH_SHAPES")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let mut out = Vec::new();
    for (name, e) in entries.iter().filter(|(k, _)| !k.starts_with('_')) {
        if wanted.as_ref().is_some_and(|w| !w.contains(name)) {
            continue;
        }
        let mut config = match e["config_file"].as_str() {
            Some(file) => read_json(&repo_path(file))?,
            None => e["config"].clone(),
        };
        if let (Value::Object(c), Value::Object(over)) = (&mut config, &e["config_overrides"]) {
            c.extend(over.clone());
        }
        let model: Box<dyn LanguageModel> = match e["arch"].as_str() {
            Some("t5") => Box::new(T5::random(serde_json::from_value(config)?, 0, device)?),
            Some("llama") => Box::new(Llama::random(serde_json::from_value(config)?, 0, device)?),
            other => return Err(Error::msg(format!("{path}: {name}: unknown arch {other:?}"))),
        };
        let dim = |k: &str| {
            e[k].as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| Error::msg(format!("{path}: {name}: missing {k}")))
        };
        out.push(Shape {
            name: name.clone(),
            model,
            batch: dim("batch")?,
            input_len: dim("input_len")?,
            target_len: dim("target_len")?,
            prompt_len: dim("prompt_len")?,
        });
    }
    Ok(out)
}

/// One fixed batch of random token ids (no padding), reused every step.
struct Batch {
    ids: Tensor,
    mask: Tensor,
    targets: Tensor,
    target_mask: Tensor,
}

fn random_batch(s: &Shape, device: &Device) -> Result<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Ids 3.. skip the special ids (pad, eos, bos), so every position is a real token.
    let vocab = s.model.vocab_size() as u32;
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(3..vocab)).collect() };
    let (b, n, t) = (s.batch, s.input_len, s.target_len);
    Ok(Batch {
        ids: Tensor::from_vec(ids(b * n), (b, n), device)?,
        mask: Tensor::ones((b, n), DType::F32, device)?,
        targets: Tensor::from_vec(ids(b * t), (b, t), device)?,
        target_mask: Tensor::ones((b, t), DType::F32, device)?,
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
    model: &dyn LanguageModel,
    prompt: Option<&SoftPrompt>,
    batch: &Batch,
    opt: &mut dyn Optimizer,
    params: &[Param],
) -> Result<Phases> {
    let _dtype = precision::scope(dtype(), batch.ids.device())?;
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
    let device = out.loss.device();
    device.synchronize()?; // a no-op on the CPU; on a GPU, the phase's work done
    let t2 = Instant::now();
    opt.step(params, &grads)?;
    drop(grads);
    device.synchronize()?;
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
    model: &dyn LanguageModel,
    prompt: Option<&SoftPrompt>,
    batch: &Batch,
    params: &[Param],
    warmup: usize,
    steps: usize,
) -> Result<Timing> {
    let mut opt = optim::by_name("adafactor", LR)?;
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

/// Time one setting: which parameters train, and whether the prompt is attached.
fn time_setting(s: &Shape, prompt: &SoftPrompt, batch: &Batch, setting: &str) -> Result<Timing> {
    let (warmup, steps) = (env_usize("PROMOT_BENCH_WARMUP", 2), env_usize("PROMOT_BENCH_STEPS", 5));
    let model = s.model.as_ref();
    let all_model: Vec<Param> = model.params().iter().cloned().collect();
    match setting {
        "full" => {
            model.params().set_trainable("*", true)?;
            time_steps(model, None, batch, &all_model, warmup, steps)
        }
        "stage2" => {
            model.params().set_trainable("*", true)?;
            prompt.freeze();
            time_steps(model, Some(prompt), batch, &all_model, warmup, steps)
        }
        "stage1" => {
            // Only the prompt trains; every model weight is a detached view.
            model.params().set_trainable("*", false)?;
            prompt.unfreeze();
            time_steps(model, Some(prompt), batch, &[prompt.param().clone()], warmup, steps)
        }
        other => Err(Error::msg(format!(
            "PROMOT_BENCH_ONLY: unknown setting '{other}' (expected full, stage1 or stage2)"
        ))),
    }
}

/// Weight-product FLOPs of one step: 2 per weight per row it multiplies
/// forward, 2 more for the input gradients and, where the weights train, 2
/// for theirs. Encoder weights see the input rows (and the prompt's), decoder
/// weights the target rows, a decoder-only model's layers every row and its
/// head the target rows; attention's own products and embedding lookups are
/// left out.
fn step_gflop(s: &Shape, setting: &str) -> f64 {
    let prompt = if setting == "full" { 0 } else { s.prompt_len };
    let (enc, tgt) = (
        (s.batch * (s.input_len + prompt)) as f64,
        (s.batch * s.target_len) as f64,
    );
    let tied = s.model.config_json()["tie_word_embeddings"].as_bool().unwrap_or(false);
    let per_row = if setting == "stage1" { 4.0 } else { 6.0 };
    let mut flop = 0.0;
    for p in s.model.params().iter() {
        let dims = p.tensor().dims().to_vec();
        let name = p.name();
        if dims.len() != 2 || name.contains("relative_attention_bias") {
            continue;
        }
        let rows = if name.starts_with("encoder.") {
            enc
        } else if name.starts_with("decoder.") || name.starts_with("lm_head") {
            tgt
        } else if name.starts_with("model.layers.") {
            enc + tgt
        } else if tied {
            tgt // the embedding table, used again as the vocabulary projection
        } else {
            0.0
        };
        flop += per_row * rows * (dims[0] * dims[1]) as f64;
    }
    flop / 1e9
}

fn print_row(label: &str, t: &Timing, gflop: f64) {
    let m = &t.mean;
    println!(
        "{label:<24} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        ms(m.total()),
        ms(t.min_total),
        ms(m.forward),
        ms(m.backward),
        ms(m.optimizer),
        gflop / m.total()
    );
}

/// The products' precision, from PROMOT_BENCH_DTYPE (f32 or bf16).
fn dtype() -> MatmulDtype {
    match std::env::var("PROMOT_BENCH_DTYPE").as_deref() {
        Ok("bf16") => MatmulDtype::Bf16,
        _ => MatmulDtype::F32,
    }
}

/// The PyTorch side's JSON (of the same dtype), if the Python script has been run.
fn torch_results() -> Option<(Value, String)> {
    let file = match dtype() {
        MatmulDtype::F32 => "benches/results/torch_train_step.json",
        MatmulDtype::Bf16 => "benches/results/torch_train_step_bf16.json",
    };
    let path = std::env::var("PROMOT_TORCH_JSON").unwrap_or_else(|_| repo_path(file));
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str(&text).ok().map(|v| (v, path))
}

/// promot/PyTorch time ratios per step, and PyTorch/promot tokens/s ratios for
/// generation (so below 1 is faster in both).
fn print_ratios(ours: &[(String, String, Timing)], generated: &[(String, f64)]) {
    let Some((json, path)) = torch_results() else {
        println!("\n(no PyTorch results: run `python benches/train_step_torch.py` or benches/run.sh for the ratio)");
        return;
    };
    println!(
        "\nvs PyTorch {} / transformers {} ({path}, {} threads, OMP_WAIT_POLICY {}, dtype {})",
        json["torch"], json["transformers"], json["threads"], json["omp_wait_policy"], json["dtype"]
    );
    println!(
        "{:<24} {:>10} {:>10} {:>13} {:>10} {:>10}",
        "", "promot ms", "torch ms", "promot/torch", "fwd ratio", "bwd ratio"
    );
    for (shape, setting, t) in ours {
        let theirs = &json["results"][shape][setting];
        let label = format!("{shape} {setting}");
        let (Some(total), Some(fwd), Some(bwd)) = (
            theirs["ms_per_step"].as_f64(),
            theirs["forward_ms"].as_f64(),
            theirs["backward_ms"].as_f64(),
        ) else {
            println!("{label:<24} (no PyTorch result)");
            continue;
        };
        println!(
            "{label:<24} {:>10.1} {:>10.1} {:>13.2} {:>10.2} {:>10.2}",
            ms(t.mean.total()),
            total,
            ms(t.mean.total()) / total,
            ms(t.mean.forward) / fwd,
            ms(t.mean.backward) / bwd
        );
    }
    for (shape, rate) in generated {
        let label = format!("{shape} beam-4 generate");
        match json["results"][shape]["beam4"]["tokens_per_s"].as_f64() {
            Some(theirs) => println!(
                "{label:<24} {rate:>10.1} {theirs:>10.1} {:>13.2}   (tokens/s; ratio = torch rate / promot rate)",
                theirs / rate
            ),
            None => println!("{label:<24} (no PyTorch result)"),
        }
    }
}

/// The timings as JSON (ms per step and phase by shape and setting, tokens/s of
/// beam-4 generation) with the promot/PyTorch ratios where PyTorch's results
/// are there: what scripts/gpu-check.sh tabulates.
fn write_json(path: &str, device: &str, ours: &[(String, String, Timing)], generated: &[(String, f64)]) -> Result<()> {
    let torch = torch_results().map(|(v, _)| v);
    let mut results = serde_json::Map::new();
    for (shape, setting, t) in ours {
        let theirs = torch
            .as_ref()
            .and_then(|j| j["results"][shape][setting]["ms_per_step"].as_f64());
        let entry = serde_json::json!({
            "ms_per_step": ms(t.mean.total()),
            "min_ms": ms(t.min_total),
            "forward_ms": ms(t.mean.forward),
            "backward_ms": ms(t.mean.backward),
            "optimizer_ms": ms(t.mean.optimizer),
            "torch_ms_per_step": theirs,
            "ratio": theirs.map(|th| ms(t.mean.total()) / th),
        });
        let per_shape = results.entry(shape.clone()).or_insert_with(|| serde_json::json!({}));
        per_shape[setting.as_str()] = entry;
    }
    for (shape, rate) in generated {
        let theirs = torch
            .as_ref()
            .and_then(|j| j["results"][shape]["beam4"]["tokens_per_s"].as_f64());
        let per_shape = results.entry(shape.clone()).or_insert_with(|| serde_json::json!({}));
        per_shape["beam4"] = serde_json::json!({
            "tokens_per_s": rate,
            "torch_tokens_per_s": theirs,
            "ratio": theirs.map(|th| th / rate),
        });
    }
    let doc = serde_json::json!({
        "device": device,
        "dtype": match dtype() { MatmulDtype::F32 => "f32", MatmulDtype::Bf16 => "bf16" },
        "steps": env_usize("PROMOT_BENCH_STEPS", 5),
        "warmup": env_usize("PROMOT_BENCH_WARMUP", 2),
        "results": results,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    std::fs::write(path, text).map_err(|e| Error::msg(format!("{path}: {e}")))
}

fn main() -> Result<()> {
    if let Some(note) = promot::device::init_cpu(None) {
        eprintln!("{note}"); // as the promot binary starts
    }
    let device_name = std::env::var("PROMOT_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = promot::device::device(&device_name)?;
    println!(
        "promot train step on {device_name}: Adafactor lr {LR}, {} threads, {} warm-up + {} timed steps per setting",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        env_usize("PROMOT_BENCH_WARMUP", 2),
        env_usize("PROMOT_BENCH_STEPS", 5),
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
    if !matches!(
        std::env::var("PROMOT_BENCH_DTYPE").as_deref(),
        Err(_) | Ok("f32" | "bf16")
    ) {
        return Err(Error::msg("PROMOT_BENCH_DTYPE must be f32 or bf16"));
    }
    println!("matmul backend: {}", blas::backend());
    println!("products: {}", precision::describe(dtype(), &device));
    if device.is_cpu() {
        ops::gemm_rates(&device)?;
    }
    let only = std::env::var("PROMOT_BENCH_ONLY").ok();
    if only.as_deref() == Some("gemm") {
        return Ok(());
    }
    println!(
        "(GFLOP/s* below: a step's weight products only, forward and backward, against the rates above; see step_gflop)"
    );
    let mut results = Vec::new();
    let mut generated = Vec::new();
    for s in shapes(&device)? {
        println!(
            "\n{}: {:.1}M params, batch {} x {} in x {} out, prompt {}, dropout {}",
            s.name,
            s.model.params().count() as f64 / 1e6,
            s.batch,
            s.input_len,
            s.target_len,
            s.prompt_len,
            s.model.dropout().p()
        );
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "ms/step", "mean", "min", "forward", "backward", "optim", "GFLOP/s*"
        );
        let batch = random_batch(&s, &device)?;
        let prompt = SoftPrompt::new("bench", s.model.as_ref(), s.prompt_len, Init::Uniform, 1)?;
        for setting in SETTINGS {
            if only.as_deref().is_some_and(|o| o != setting) {
                continue;
            }
            let t = time_setting(&s, &prompt, &batch, setting)?;
            print_row(setting, &t, step_gflop(&s, setting));
            results.push((s.name.clone(), setting.to_string(), t));
        }
        if only.as_deref().is_none_or(|o| o == "generate") {
            let _dtype = precision::scope(dtype(), &device)?;
            let reps = env_usize("PROMOT_BENCH_GEN_REPS", 2);
            let (tokens, secs) = generation::beam4(s.model.as_ref(), &batch.ids, &batch.mask, s.target_len, reps)?;
            println!(
                "{:<24} {:>9.1} ms for {tokens} tokens: {:.1} tokens/s",
                "generate, beam 4",
                ms(secs),
                tokens as f64 / secs
            );
            generated.push((s.name.clone(), tokens as f64 / secs));
        }
    }
    print_ratios(&results, &generated);
    if let Ok(path) = std::env::var("PROMOT_BENCH_JSON") {
        write_json(&path, &device_name, &results, &generated)?;
    }
    let ops_wanted = std::env::var("PROMOT_BENCH_OPS").map(|v| v != "0").unwrap_or(true);
    if only.is_none() && ops_wanted && device.is_cpu() {
        ops::op_profile(&device)?;
    }
    Ok(())
}
