//! The training loop, readable top to bottom: batch -> embed (+ prompt) ->
//! loss -> backward -> clip -> optimiser step -> log / evaluate / checkpoint.
//!
//! What trains is whatever is trainable: model parameters not frozen, and the
//! attached prompts not frozen. ProMoT's two stages are two calls with
//! different things frozen.

pub mod batch;
pub mod checkpoint;
pub mod gradients;
pub mod progress;

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};

pub use batch::{Batch, BatchOptions, Batcher, Example, TaskData};
use crate::error::{Error, Result};
use crate::model::{pad_batch, LanguageModel};
use crate::optim::{self, clip_grad_norm, OptimOptions, Optimizer, Schedule};
use crate::params::Param;
use crate::prompt::SoftPrompt;
use crate::tokenizer::Tokenizer;
use progress::Progress;

#[derive(Clone, Debug, PartialEq)]
pub enum Keep {
    Best,
    Last,
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub steps: usize,
    pub batch: BatchOptions,
    pub optimizer: String,
    pub optim_options: OptimOptions,
    /// Learning rate of model parameters.
    pub lr: f64,
    /// Learning rate of soft prompts (prompt tuning uses a much larger one).
    pub prompt_lr: f64,
    pub schedule: Schedule,
    pub clip_norm: Option<f64>,
    pub dropout: f64,
    pub label_smoothing: f64,
    /// The prompt attached to every example, unless `task_prompts` names one for its task.
    pub prompt: Option<SoftPrompt>,
    pub task_prompts: BTreeMap<String, SoftPrompt>,
    pub eval_every: usize,
    pub keep: Keep,
    pub checkpoint_dir: Option<PathBuf>,
    /// Save a checkpoint every this many steps (0: only at evaluations and the end).
    pub save_every: usize,
    pub resume: bool,
    pub quiet: bool,
    pub label: String,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            steps: 100,
            batch: BatchOptions { batch_size: 8, max_input_len: 512, max_target_len: 128, shots: 0, separator: batch::DEMO_SEPARATOR.into(), bucket_by_length: false, seed: 0 },
            optimizer: "adafactor".into(),
            optim_options: OptimOptions::default(),
            lr: 1e-3,
            prompt_lr: 0.2,
            schedule: Schedule::Constant,
            clip_norm: None,
            dropout: 0.1,
            label_smoothing: 0.1,
            prompt: None,
            task_prompts: BTreeMap::new(),
            eval_every: 0,
            keep: Keep::Last,
            checkpoint_dir: None,
            save_every: 0,
            resume: true,
            quiet: false,
            label: "train".into(),
        }
    }
}

/// What a run did, for scripts to read and plot.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub losses: Vec<f64>,
    pub evals: Vec<(usize, f64)>,
    pub best: Option<(usize, f64)>,
    pub steps_per_sec: f64,
    pub stopped_early: Option<String>,
}

/// Hooks the caller provides: an evaluation (higher is better) and a stop request (Ctrl-C).
pub struct Hooks<'a> {
    pub evaluate: Option<&'a mut dyn FnMut(usize) -> Result<f64>>,
    pub should_stop: &'a dyn Fn() -> bool,
}

/// Embed a batch, attach each row's prompt, and pad: (embeds (b, s, d), mask (b, s)).
pub fn embed_batch(model: &dyn LanguageModel, batch: &Batch, prompt_of: &dyn Fn(&str) -> Option<SoftPrompt>) -> Result<(Tensor, Tensor)> {
    let device = model.params().device();
    let (ids, mask) = pad_batch(&batch.inputs, model.pad_id(), &device)?;
    let embeds = model.embed(&ids)?;
    let prompts: Vec<Option<SoftPrompt>> = batch.tasks.iter().map(|t| prompt_of(t)).collect();
    let same = prompts.windows(2).all(|w| w[0].as_ref().map(|p| &p.name) == w[1].as_ref().map(|p| &p.name));
    match prompts.first() {
        None | Some(None) if same => Ok((embeds, mask)),
        Some(Some(p)) if same => p.attach(&embeds, &mask),
        _ => {
            // Rows with different prompts (multi-task): attach row by row, then re-pad.
            let d = model.hidden_size();
            let mut rows = Vec::new();
            for (i, p) in prompts.iter().enumerate() {
                let n = batch.inputs[i].len();
                let row = embeds.get(i)?.narrow(0, 0, n)?;
                rows.push(match p {
                    Some(p) => Tensor::cat(&[&p.tensor().to_dtype(row.dtype())?, &row], 0)?,
                    None => row,
                });
            }
            let len = rows.iter().map(|r| r.dim(0).unwrap_or(0)).max().unwrap_or(1);
            let mut padded = Vec::new();
            let mut mask_rows = Vec::new();
            for r in rows {
                let n = r.dim(0)?;
                let pad = Tensor::zeros((len - n, d), r.dtype(), r.device())?;
                padded.push(Tensor::cat(&[&r, &pad], 0)?);
                let m: Vec<f32> = (0..len).map(|j| if j < n { 1.0 } else { 0.0 }).collect();
                mask_rows.push(Tensor::from_vec(m, len, &device)?);
            }
            Ok((Tensor::stack(&padded, 0)?, Tensor::stack(&mask_rows, 0)?))
        }
    }
}

/// The loss of one batch (dropout on when `train`).
pub fn batch_loss(model: &dyn LanguageModel, batch: &Batch, opts: &TrainOptions, train: bool) -> Result<Tensor> {
    let prompt_of = |task: &str| opts.task_prompts.get(task).cloned().or_else(|| opts.prompt.clone());
    let (embeds, mask) = embed_batch(model, batch, &prompt_of)?;
    let (targets, target_mask) = pad_batch(&batch.targets, model.pad_id(), &model.params().device())?;
    Ok(model.loss(&embeds, &mask, &targets, &target_mask, opts.label_smoothing, train)?.loss)
}

fn all_prompts(opts: &TrainOptions) -> Vec<SoftPrompt> {
    let mut out: Vec<SoftPrompt> = opts.prompt.iter().cloned().collect();
    for p in opts.task_prompts.values() {
        if !out.iter().any(|q| q.name == p.name) {
            out.push(p.clone());
        }
    }
    out
}

/// Train for `opts.steps` steps (continuing from a checkpoint when one exists
/// and `opts.resume`). Keeps the best evaluated state when `keep` is Best.
pub fn train(model: &dyn LanguageModel, tok: &Tokenizer, tasks: Vec<TaskData>, opts: &TrainOptions, hooks: Hooks) -> Result<History> {
    let Hooks { mut evaluate, should_stop } = hooks;
    let batcher = Batcher::new(tasks, opts.batch.clone())?;
    let prompts = all_prompts(opts);
    let model_params: Vec<Param> = model.params().trainable();
    let prompt_params: Vec<Param> = prompts.iter().filter(|p| p.is_trainable()).map(|p| p.param().clone()).collect();
    if model_params.is_empty() && prompt_params.is_empty() {
        return Err(Error::msg("nothing to train: every model parameter and prompt is frozen"));
    }
    let trainable: Vec<Param> = model_params.iter().chain(prompt_params.iter()).cloned().collect();
    let mut optimizers: Vec<(Box<dyn Optimizer>, Vec<Param>, f64)> = Vec::new();
    if !model_params.is_empty() {
        optimizers.push((optim::build(&opts.optimizer, opts.lr, &opts.optim_options)?, model_params.clone(), opts.lr));
    }
    if !prompt_params.is_empty() {
        optimizers.push((optim::build(&opts.optimizer, opts.prompt_lr, &opts.optim_options)?, prompt_params.clone(), opts.prompt_lr));
    }
    model.dropout().set_p(opts.dropout);
    model.dropout().reseed(opts.batch.seed)?;

    let mut history = History::default();
    let mut start = 0;
    if let (Some(dir), true) = (&opts.checkpoint_dir, opts.resume) {
        if let Some(ck) = checkpoint::load_latest(dir, &model.params().device())? {
            ck.restore_params(&trainable)?;
            for (i, (opt, _, _)) in optimizers.iter_mut().enumerate() {
                let step = ck.meta.optimizer_steps.get(i).copied().unwrap_or(0);
                opt.load_state(&ck.optim_state(i), step)?;
            }
            let word_pos: u128 = ck.meta.dropout_word_pos.parse().map_err(|_| Error::msg("checkpoint: bad dropout position"))?;
            model.dropout().set_rng_state(checkpoint::parse_seed(&ck.meta.dropout_seed)?, word_pos)?;
            start = ck.meta.step;
            history.losses = ck.meta.losses.iter().map(|l| *l as f64).collect();
            history.evals = ck.meta.evals.clone();
            history.best = ck.meta.best;
            if !opts.quiet {
                eprintln!("{}: resuming from {} at step {start}", opts.label, dir.display());
            }
        }
    }

    let mut best_values: Option<Vec<Tensor>> = None;
    let progress = Progress::new(&opts.label, start, opts.steps, opts.quiet);
    let save = |history: &History, step: usize, optimizers: &[(Box<dyn Optimizer>, Vec<Param>, f64)]| -> Result<()> {
        let Some(dir) = &opts.checkpoint_dir else { return Ok(()) };
        let mut states = Vec::new();
        let mut steps = Vec::new();
        for (opt, _, _) in optimizers {
            let (s, n) = opt.state()?;
            states.push(s);
            steps.push(n);
        }
        let (seed, pos) = model.dropout().rng_state()?;
        let meta = checkpoint::Meta {
            step,
            optimizer_steps: steps,
            dropout_seed: checkpoint::seed_hex(&seed),
            dropout_word_pos: pos.to_string(),
            losses: history.losses.iter().map(|l| *l as f32).collect(),
            evals: history.evals.clone(),
            best: history.best,
        };
        checkpoint::save(dir, &trainable, &states, &meta)?;
        Ok(())
    };

    // Values of the trainable parameters before the latest update (cheap next to a step).
    let mut last_good: Option<Vec<Tensor>> = None;
    let mut step = start;
    while step < opts.steps {
        if should_stop() {
            history.stopped_early = Some(format!("interrupted at step {step}"));
            save(&history, step, &optimizers)?;
            progress.message(&format!("{}: interrupted at step {step}; state kept{}", opts.label, opts.checkpoint_dir.as_ref().map(|d| format!(" and saved in {}", d.display())).unwrap_or_default()));
            break;
        }
        let batch = batcher.batch(step, tok)?;
        let loss = batch_loss(model, &batch, opts, true)?;
        let loss_value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
        if !loss_value.is_finite() {
            // The last update broke the weights: go back to the values whose loss was finite.
            if let Some(values) = &last_good {
                for (p, v) in trainable.iter().zip(values.iter()) {
                    p.assign(v)?;
                }
            }
            progress.finish();
            return Err(Error::msg(format!(
                "{}: the loss became {loss_value} at step {}; stopped and restored the last state with a finite loss{} (lower the learning rate?)",
                opts.label,
                step + 1,
                if opts.checkpoint_dir.is_some() { "; the checkpoint on disk is from before" } else { "" }
            )));
        }
        last_good = Some(trainable.iter().map(|p| p.var().as_tensor().copy()).collect::<candle_core::Result<_>>()?);
        let mut grads = loss.backward()?;
        if let Some(max_norm) = opts.clip_norm {
            grads = clip_grad_norm(&trainable, grads, max_norm)?.1;
        }
        for (opt, params, base_lr) in optimizers.iter_mut() {
            opt.set_learning_rate(opts.schedule.lr_at(*base_lr, step as u64));
            opt.step(params, &grads)?;
        }
        step += 1;
        history.losses.push(loss_value);
        let mut extra = String::new();
        if opts.eval_every > 0 && (step % opts.eval_every == 0 || step == opts.steps) {
            if let Some(eval) = evaluate.as_deref_mut() {
                let score = eval(step)?;
                history.evals.push((step, score));
                extra = format!(" | eval {score:.3}");
                let better = history.best.is_none_or(|(_, b)| score > b);
                if better {
                    history.best = Some((step, score));
                    if opts.keep == Keep::Best {
                        best_values = Some(trainable.iter().map(|p| p.var().as_tensor().copy()).collect::<candle_core::Result<_>>()?);
                    }
                }
                save(&history, step, &optimizers)?;
            }
        } else if opts.save_every > 0 && step % opts.save_every == 0 {
            save(&history, step, &optimizers)?;
        }
        progress.update(step, loss_value, &extra);
    }
    if step == opts.steps && history.stopped_early.is_none() {
        save(&history, step, &optimizers)?;
    }
    progress.finish();
    history.steps_per_sec = progress.rate(step);
    if let (Keep::Best, Some(values)) = (&opts.keep, best_values) {
        for (p, v) in trainable.iter().zip(values.iter()) {
            p.assign(v)?;
        }
    }
    Ok(history)
}
