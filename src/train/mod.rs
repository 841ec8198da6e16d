//! The training loop, readable top to bottom: batch -> embed (+ prompt) ->
//! loss -> backward -> check -> clip -> optimiser step -> log / evaluate /
//! checkpoint.
//!
//! What trains is whatever is trainable: model parameters not frozen, and the
//! attached prompts not frozen. ProMoT's two stages are two calls with
//! different things frozen. Each trainable set is a [`ParamGroup`] with its
//! own optimiser, learning rate and schedule ([`optim::GroupSettings`]: the
//! model weights', the prompts').

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod gradients;
pub mod metrics_log;
pub mod progress;

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::folder_lock::FolderLock;
use crate::kernels::precision::{self, MatmulDtype};
use crate::model::{pad_batch, LanguageModel};
use crate::optim::{clip_grad_norm, grad_norm, GroupSettings, Optimizer, Schedule};
use crate::params::Param;
use crate::prompt::{embed_inputs, SoftPrompt};
use crate::tokenizer::Tokenizer;
pub use batch::{Batch, BatchOptions, Batcher, Example, TaskData};
pub use config::TrainConfig;
use metrics_log::MetricsLog;
use progress::Progress;

/// Which state a run ends with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    Best,
    Last,
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub steps: usize,
    pub batch: BatchOptions,
    /// The model weights' optimiser, learning rate and schedule.
    pub weights: GroupSettings,
    /// The prompts' (the paper's code trains them unfactored, unscaled, at a large rate).
    pub prompts: GroupSettings,
    pub clip_norm: Option<f64>,
    pub dropout: f64,
    pub label_smoothing: f64,
    /// The prompt attached to every example, unless `task_prompts` names one for its task.
    pub prompt: Option<SoftPrompt>,
    pub task_prompts: BTreeMap<String, SoftPrompt>,
    pub eval_every: usize,
    pub keep: Keep,
    pub checkpoint_dir: Option<PathBuf>,
    /// Where `metrics.jsonl` goes (else `checkpoint_dir`; neither: no log).
    pub run_dir: Option<PathBuf>,
    /// Save a checkpoint every this many steps (0: only at evaluations and the end).
    pub save_every: usize,
    pub resume: bool,
    /// What the run is (promot's build, model, options, data): written as
    /// `run.json` in the run's folder once the run holds that folder.
    pub run_record: Option<serde_json::Value>,
    /// The precision of the products in each step (evaluations run in f32).
    pub dtype: MatmulDtype,
    pub quiet: bool,
    pub label: String,
}

/// What a run did, for scripts to read and plot.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub losses: Vec<f64>,
    pub evals: Vec<(usize, f64)>,
    pub best: Option<(usize, f64)>,
    pub steps_per_sec: f64,
    pub stopped_early: Option<String>,
    /// The step whose evaluation said the run had reached its goal (it
    /// ended there, before its step budget).
    pub goal_step: Option<usize>,
}

/// What one evaluation of a run says: its score (higher is better; keep-best
/// keeps the state that scored highest) and whether the run has reached its
/// goal and ends here (e.g. a prompt that already puts the target's format
/// on nearly every output).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub score: f64,
    pub stop: bool,
}

impl From<f64> for Evaluation {
    /// A score alone: the run goes on.
    fn from(score: f64) -> Self {
        Evaluation { score, stop: false }
    }
}

/// Hooks the caller provides: an evaluation every `eval_every` steps and a stop request (Ctrl-C).
pub struct Hooks<'a> {
    pub evaluate: Option<&'a mut dyn FnMut(usize) -> Result<Evaluation>>,
    pub should_stop: &'a dyn Fn() -> bool,
}

/// Embed a batch with each row's prompt (see [`embed_inputs`]): (embeds (b, s, d), mask (b, s)).
pub fn embed_batch(
    model: &dyn LanguageModel,
    batch: &Batch,
    prompt_of: &dyn Fn(&str) -> Option<SoftPrompt>,
) -> Result<(Tensor, Tensor)> {
    let prompts: Vec<Option<SoftPrompt>> = batch.tasks.iter().map(|t| prompt_of(t)).collect();
    let refs: Vec<Option<&SoftPrompt>> = prompts.iter().map(Option::as_ref).collect();
    embed_inputs(model, &batch.inputs, &refs)
}

/// The loss of one batch (dropout on when `train`).
pub fn batch_loss(model: &dyn LanguageModel, batch: &Batch, opts: &TrainOptions, train: bool) -> Result<Tensor> {
    let prompt_of = |task: &str| opts.task_prompts.get(task).cloned().or_else(|| opts.prompt.clone());
    let (embeds, mask) = embed_batch(model, batch, &prompt_of)?;
    let (targets, target_mask) = pad_batch(&batch.targets, model.pad_id(), &model.params().device())?;
    Ok(model
        .loss(&embeds, &mask, &targets, &target_mask, opts.label_smoothing, train)?
        .loss)
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

/// One set of trainable parameters with its optimiser, base learning rate and schedule.
pub struct ParamGroup {
    /// "model" or "prompts", for messages.
    pub name: &'static str,
    pub params: Vec<Param>,
    pub optimizer: Box<dyn Optimizer>,
    pub lr: f64,
    pub schedule: Schedule,
}

/// The groups that train: the model's unfrozen weights with `opts.weights`,
/// the unfrozen prompts with `opts.prompts`, each with its own optimiser state.
pub fn param_groups(model: &dyn LanguageModel, opts: &TrainOptions) -> Result<Vec<ParamGroup>> {
    let prompts: Vec<Param> = all_prompts(opts)
        .iter()
        .filter(|p| p.is_trainable())
        .map(|p| p.param().clone())
        .collect();
    let mut groups = Vec::new();
    let sets = [
        ("model", model.params().trainable(), &opts.weights),
        ("prompts", prompts, &opts.prompts),
    ];
    for (name, params, settings) in sets {
        if !params.is_empty() {
            groups.push(ParamGroup {
                name,
                params,
                optimizer: settings.optimizer.build()?,
                lr: settings.lr(),
                schedule: settings.schedule(opts.steps as u64)?,
            });
        }
    }
    if groups.is_empty() {
        return Err(Error::msg(
            "nothing to train: every model parameter and prompt is frozen",
        ));
    }
    Ok(groups)
}

/// Everything a run updates: the groups' parameters, in group order.
fn trainable(groups: &[ParamGroup]) -> Vec<Param> {
    groups.iter().flat_map(|g| g.params.iter().cloned()).collect()
}

/// Continue from the latest checkpoint in `opts.checkpoint_dir`, if any:
/// restores parameters, optimiser states, the dropout stream and the
/// history, and returns the step to continue from (0 for a fresh run).
fn resume(
    model: &dyn LanguageModel,
    groups: &mut [ParamGroup],
    opts: &TrainOptions,
    history: &mut History,
) -> Result<usize> {
    let (Some(dir), true) = (&opts.checkpoint_dir, opts.resume) else {
        return Ok(0);
    };
    let Some(ck) = checkpoint::load_latest(dir, &model.params().device())? else {
        return Ok(0);
    };
    ck.restore_params(&trainable(groups))?;
    for (i, g) in groups.iter_mut().enumerate() {
        let step = ck.meta.optimizer_steps.get(i).copied().unwrap_or(0);
        g.optimizer.load_state(&ck.optim_state(i), step)?;
    }
    let word_pos: u128 = ck
        .meta
        .dropout_word_pos
        .parse()
        .map_err(|_| Error::msg("checkpoint: bad dropout position"))?;
    model
        .dropout()
        .set_rng_state(checkpoint::parse_seed(&ck.meta.dropout_seed)?, word_pos)?;
    history.losses = ck.meta.losses.iter().map(|l| *l as f64).collect();
    history.evals = ck.meta.evals.clone();
    history.best = ck.meta.best;
    history.goal_step = ck.meta.goal_step;
    if !opts.quiet {
        eprintln!(
            "{}: resuming from {} at step {}",
            opts.label,
            dir.display(),
            ck.meta.step
        );
    }
    Ok(ck.meta.step)
}

/// The checkpoint metadata of the run at `step`.
fn meta(model: &dyn LanguageModel, groups: &[ParamGroup], history: &History, step: usize) -> Result<checkpoint::Meta> {
    let (seed, pos) = model.dropout().rng_state()?;
    Ok(checkpoint::Meta {
        step,
        optimizer_steps: groups
            .iter()
            .map(|g| g.optimizer.state().map(|(_, n)| n))
            .collect::<Result<_>>()?,
        dropout_seed: checkpoint::seed_hex(&seed),
        dropout_word_pos: pos.to_string(),
        losses: history.losses.iter().map(|l| *l as f32).collect(),
        evals: history.evals.clone(),
        best: history.best,
        goal_step: history.goal_step,
    })
}

/// Write a checkpoint of the run at `step` (atomic; nothing without a checkpoint_dir).
fn save(
    model: &dyn LanguageModel,
    groups: &[ParamGroup],
    opts: &TrainOptions,
    history: &History,
    step: usize,
) -> Result<()> {
    let Some(dir) = &opts.checkpoint_dir else { return Ok(()) };
    let states = groups
        .iter()
        .map(|g| g.optimizer.state().map(|(s, _)| s))
        .collect::<Result<Vec<_>>>()?;
    checkpoint::save(dir, &trainable(groups), &states, &meta(model, groups, history, step)?)?;
    Ok(())
}

/// One optimiser step on `batch`; returns its loss and gradient norm (before clipping). The loss and the
/// gradient norm are checked *before* the update: a non-finite one stops the
/// run with the weights untouched (no copy of them is kept).
fn step(
    model: &dyn LanguageModel,
    batch: &Batch,
    groups: &mut [ParamGroup],
    opts: &TrainOptions,
    step: usize,
) -> Result<(f64, f64)> {
    let loss = batch_loss(model, batch, opts, true)?;
    let loss_value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
    let params = trainable(groups);
    let not_finite = |what: String| {
        Error::msg(format!(
            "{}: the loss became {what} at step {}; stopped before applying that update, so the weights are \
             those after step {step}{} (lower the learning rate?)",
            opts.label,
            step + 1,
            if opts.checkpoint_dir.is_some() {
                ", as in the last checkpoint saved"
            } else {
                ""
            }
        ))
    };
    if !loss_value.is_finite() {
        return Err(not_finite(loss_value.to_string()));
    }
    let mut grads = loss.backward()?;
    // The loss holds the forward graph, and with it every activation the
    // backward pass read: free them before the update allocates its own
    // temporaries, so the step's peak is one of the two, not both.
    drop(loss);
    let norm = grad_norm(&params, &grads)?;
    if !norm.is_finite() {
        return Err(not_finite(format!("unstable (its gradient norm is {norm})")));
    }
    if let Some(max_norm) = opts.clip_norm {
        grads = clip_grad_norm(&params, grads, max_norm)?.1;
    }
    for g in groups.iter_mut() {
        g.optimizer.set_learning_rate(g.schedule.lr_at(g.lr, step as u64));
        g.optimizer.step(&g.params, &grads)?;
    }
    Ok((loss_value, norm))
}

/// Copies of parameter values (keep-best holds one, taken only when an
/// evaluation improves).
fn snapshot(params: &[Param]) -> Result<Vec<Tensor>> {
    Ok(params
        .iter()
        .map(|p| p.var().as_tensor().copy())
        .collect::<candle_core::Result<_>>()?)
}

fn restore(params: &[Param], values: &[Tensor]) -> Result<()> {
    params.iter().zip(values).try_for_each(|(p, v)| p.assign(v))
}

/// Hold the run's folders (checkpoints, metrics) for the whole run: a second
/// run on one of them fails at once instead of overwriting this one's files.
fn lock_folders(opts: &TrainOptions) -> Result<Vec<FolderLock>> {
    let mut dirs: Vec<&PathBuf> = opts.checkpoint_dir.iter().chain(opts.run_dir.iter()).collect();
    dirs.dedup();
    dirs.into_iter()
        .map(|dir| FolderLock::acquire(dir, &format!("{} (training)", opts.label)))
        .collect()
}

/// Train for `opts.steps` steps, or until an evaluation says the run reached
/// its goal (continuing from a checkpoint when one exists and `opts.resume`;
/// a run that ended at its goal is not continued). Keeps the best evaluated
/// state when `keep` is Best.
pub fn train(
    model: &dyn LanguageModel,
    tok: &Tokenizer,
    tasks: Vec<TaskData>,
    opts: &TrainOptions,
    hooks: Hooks,
) -> Result<History> {
    let Hooks {
        mut evaluate,
        should_stop,
    } = hooks;
    let device = model.params().device();
    // Checked before any work: bf16 on a CPU without BLAS is an error.
    drop(precision::scope(opts.dtype, &device)?);
    let batcher = Batcher::new(tasks, opts.batch.clone())?;
    let mut groups = param_groups(model, opts)?;
    let _locks = lock_folders(opts)?;
    if let Some(record) = &opts.run_record {
        metrics_log::write_run_record(opts.run_dir.as_deref(), opts.checkpoint_dir.as_deref(), record)?;
    }
    model.dropout().set_p(opts.dropout);
    model.dropout().reseed(opts.batch.seed)?;
    let mut history = History::default();
    let start = resume(model, &mut groups, opts, &mut history)?;
    if let (0, Some(dir)) = (start, &opts.checkpoint_dir) {
        checkpoint::clear_best(dir)?;
    }
    let params = trainable(&groups);
    let mut best_values: Option<Vec<Tensor>> = None;
    let progress = Progress::new(&opts.label, start, opts.steps, opts.quiet);
    let mut metrics = MetricsLog::for_run(
        opts.run_dir.as_deref(),
        opts.checkpoint_dir.as_deref(),
        start,
        &opts.label,
    )?;

    let mut k = start;
    let mut saved_at = start;
    while k < opts.steps && history.goal_step.is_none() {
        if should_stop() {
            history.stopped_early = Some(format!("interrupted at step {k}"));
            save(model, &groups, opts, &history, k)?;
            let saved = opts
                .checkpoint_dir
                .as_ref()
                .map(|d| format!(" and saved in {}", d.display()))
                .unwrap_or_default();
            progress.message(&format!("{}: interrupted at step {k}; state kept{saved}", opts.label));
            break;
        }
        let batch = batcher.batch(k, tok, model)?;
        let (loss, norm) = precision::scope(opts.dtype, &device)
            .and_then(|_dtype| step(model, &batch, &mut groups, opts, k))
            .inspect_err(|_| progress.finish())?;
        k += 1;
        history.losses.push(loss);
        metrics.step(
            k,
            loss,
            norm,
            groups.iter().map(|g| (g.name.to_string(), g.optimizer.learning_rate())),
        );
        let mut extra = String::new();
        let eval_due = opts.eval_every > 0 && (k % opts.eval_every == 0 || k == opts.steps);
        if let (true, Some(eval)) = (eval_due, evaluate.as_deref_mut()) {
            let Evaluation { score, stop } = eval(k)?;
            history.evals.push((k, score));
            metrics.eval(score);
            extra = format!(" | eval {score:.3}");
            if stop {
                // Saved with the checkpoint below, so a rerun does not train on.
                history.goal_step = Some(k);
                extra += " | goal reached";
            }
            if history.best.is_none_or(|(_, b)| score > b) {
                history.best = Some((k, score));
                if opts.keep == Keep::Best {
                    match &opts.checkpoint_dir {
                        Some(dir) => {
                            checkpoint::save_best(dir, &params, &meta(model, &groups, &history, k)?)?;
                        }
                        None => best_values = Some(snapshot(&params)?),
                    }
                }
            }
            save(model, &groups, opts, &history, k)?;
            saved_at = k;
        } else if opts.save_every > 0 && k % opts.save_every == 0 {
            save(model, &groups, opts, &history, k)?;
            saved_at = k;
        }
        metrics.write()?;
        progress.update(k, loss, &extra);
    }
    if let Some(at) = history.goal_step {
        progress.message(&format!(
            "{}: reached its goal at step {at} of {}; the run ends there",
            opts.label, opts.steps
        ));
    }
    // (A run resumed already finished has nothing new to save, nor one whose last step is saved.)
    if k == opts.steps && k > start && k != saved_at && history.stopped_early.is_none() {
        save(model, &groups, opts, &history, k)?;
    }
    progress.finish();
    history.steps_per_sec = progress.rate(k);
    if opts.keep == Keep::Best {
        if let Some(values) = best_values {
            restore(&params, &values)?;
        } else if let Some(dir) = &opts.checkpoint_dir {
            if let Some(best) = checkpoint::load_best(dir, &model.params().device())? {
                best.restore_params(&params)?;
            }
        }
    }
    Ok(history)
}
