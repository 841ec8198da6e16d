//! Training on the fixture mT5: what ProMoT's two stages freeze stays
//! bit-identical, runs are deterministic and resume exactly, and loss goes
//! down on a memorisation task.

mod common;

use std::cell::Cell;
use std::path::Path;

use candle_core::{DType, Device};
use promot::model::{loading, Model};
use promot::prompt::{Init, SoftPrompt};
use promot::tokenizer::Tokenizer;
use promot::train::{self, Example, Hooks, TaskData, TrainOptions};

fn fixture() -> (Model, Tokenizer) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-mt5");
    let (m, dir) = loading::load(dir.to_str().unwrap(), &Device::Cpu, DType::F32, 0).unwrap();
    (m, Tokenizer::from_dir(&dir).unwrap())
}

fn data() -> Vec<TaskData> {
    let pairs = [
        ("The house is wonderful.", "True"),
        ("The cat sat on the mat.", "False"),
        ("Hello world", "True"),
        ("Pope Benedict leads the Church.", "False"),
    ];
    let examples = pairs
        .iter()
        .map(|(i, t)| Example {
            input: i.to_string(),
            target: t.to_string(),
            task: "default".into(),
        })
        .collect();
    vec![TaskData {
        name: "default".into(),
        examples,
        ratio: 1.0,
    }]
}

fn opts(steps: usize) -> TrainOptions {
    let mut o = TrainOptions {
        steps,
        quiet: true,
        ..TrainOptions::default()
    };
    o.batch.batch_size = 4;
    o.batch.seed = 7;
    o
}

fn never() -> bool {
    false
}

fn run(model: &Model, tok: &Tokenizer, o: &TrainOptions) -> train::History {
    train::train(
        model.as_ref(),
        tok,
        data(),
        o,
        Hooks {
            evaluate: None,
            should_stop: &never,
        },
    )
    .unwrap()
}

fn bits(t: &candle_core::Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn stage_one_changes_only_the_prompt() {
    let (m, tok) = fixture();
    let before = m.params().to_tensors().unwrap();
    let prompt = SoftPrompt::new("rte", m.as_ref(), 5, Init::Vocab { top: 500 }, 0).unwrap();
    let prompt_before = prompt.param().var().as_tensor().copy().unwrap();
    m.params().set_trainable("*", false).unwrap();
    let mut o = opts(3);
    o.prompt = Some(prompt.clone());
    run(&m, &tok, &o);
    for (name, t) in m.params().to_tensors().unwrap() {
        assert_eq!(
            bits(&t),
            bits(&before[&name]),
            "frozen weight {name} changed in stage 1"
        );
    }
    assert_ne!(
        bits(prompt.param().var().as_tensor()),
        bits(&prompt_before),
        "the prompt did not train"
    );
}

#[test]
fn stage_two_changes_only_the_model() {
    let (m, tok) = fixture();
    let before = m.params().to_tensors().unwrap();
    let prompt = SoftPrompt::new("rte", m.as_ref(), 5, Init::Uniform, 0).unwrap();
    prompt.freeze();
    let prompt_before = prompt.param().var().as_tensor().copy().unwrap();
    let mut o = opts(3);
    o.prompt = Some(prompt.clone());
    run(&m, &tok, &o);
    assert_eq!(
        bits(prompt.param().var().as_tensor()),
        bits(&prompt_before),
        "the frozen prompt changed in stage 2"
    );
    let after = m.params().to_tensors().unwrap();
    let changed = after.iter().filter(|(n, t)| bits(t) != bits(&before[*n])).count();
    assert_eq!(
        changed,
        after.len(),
        "every model weight should train in stage 2 ({changed} of {} changed)",
        after.len()
    );
}

#[test]
fn partial_freezing_by_glob_leaves_frozen_layers_bit_identical() {
    let (m, tok) = fixture();
    let before = m.params().to_tensors().unwrap();
    m.params().set_trainable("decoder.block.*.layer.2.*", false).unwrap();
    run(&m, &tok, &opts(2));
    for (name, t) in m.params().to_tensors().unwrap() {
        let frozen = name.starts_with("decoder.block.") && name.contains(".layer.2.");
        assert_eq!(bits(&t) == bits(&before[&name]), frozen, "{name}: frozen={frozen}");
    }
}

#[test]
fn same_seed_same_losses() {
    let (a, tok) = fixture();
    let (b, _) = fixture();
    assert_eq!(run(&a, &tok, &opts(4)).losses, run(&b, &tok, &opts(4)).losses);
}

#[test]
fn interrupted_and_resumed_run_matches_an_uninterrupted_one() {
    let dir = std::env::temp_dir().join(format!("promot-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (m, tok) = fixture();
    let full = run(&m, &tok, &opts(6)).losses;

    let (m, tok) = fixture();
    let mut o = opts(6);
    o.checkpoint_dir = Some(dir.clone());
    let steps_seen = Cell::new(0);
    let stop_after_three = || {
        steps_seen.set(steps_seen.get() + 1);
        steps_seen.get() > 3
    };
    let first = train::train(
        m.as_ref(),
        &tok,
        data(),
        &o,
        Hooks {
            evaluate: None,
            should_stop: &stop_after_three,
        },
    )
    .unwrap();
    assert_eq!(first.losses.len(), 3, "the interruption should stop after three steps");
    assert!(first.stopped_early.is_some());

    // A fresh process: reload the pretrained model and continue from the checkpoint.
    let (m, tok) = fixture();
    let resumed = run(&m, &tok, &o).losses;
    assert_eq!(resumed, full, "resumed losses differ from the uninterrupted run");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn memorisation_drives_the_loss_down() {
    let (m, tok) = fixture();
    let mut o = opts(40);
    o.weights.optimizer.set_lr(1e-2);
    o.dropout = 0.0;
    o.label_smoothing = 0.0;
    let h = run(&m, &tok, &o);
    let first = h.losses[0];
    let last = *h.losses.last().unwrap();
    assert!(last < first * 0.3, "loss went from {first} to {last}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_the_last_good_state() {
    let (m, tok) = fixture();
    let mut o = opts(20);
    o.weights = promot::optim::GroupSettings::new(promot::optim::OptimizerConfig::named("sgd", 1e30).unwrap());
    let err = train::train(
        m.as_ref(),
        &tok,
        data(),
        &o,
        Hooks {
            evaluate: None,
            should_stop: &never,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("loss became"), "unexpected error: {err}");
    for p in m.params().iter() {
        let v = p.var().as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{} holds non-finite values", p.name());
    }
}

/// Every parameter of `m` is bit-identical to the best state's value.
fn assert_holds_best(m: &Model, best: &std::collections::BTreeMap<String, candle_core::Tensor>) {
    for (name, t) in m.params().to_tensors().unwrap() {
        assert_eq!(bits(&t), bits(&best[&name]), "{name} is not the best state's value");
    }
}

#[test]
fn keep_best_restores_the_best_evaluated_state() {
    let (m, tok) = fixture();
    let mut o = opts(6);
    o.eval_every = 2;
    o.keep = train::Keep::Best;
    let mut snapshots = Vec::new();
    let scores = [3.0, 1.0, 2.0];
    let mut calls = 0;
    let mut eval = |_step: usize| -> promot::Result<train::Evaluation> {
        snapshots.push(m.params().to_tensors().unwrap());
        calls += 1;
        Ok(scores[calls - 1].into())
    };
    let h = train::train(
        m.as_ref(),
        &tok,
        data(),
        &o,
        Hooks {
            evaluate: Some(&mut eval),
            should_stop: &never,
        },
    )
    .unwrap();
    assert_eq!(h.best, Some((2, 3.0)));
    assert_holds_best(&m, &snapshots[0]);
}

/// Keep-best with a checkpoint_dir: an interrupted run, resumed, and a
/// finished run, resumed again, both end on the best state saved on disk.
#[test]
fn keep_best_survives_interruption_and_resumption() {
    let dir = std::env::temp_dir().join(format!("promot-best-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = opts(6);
    o.eval_every = 2;
    o.keep = train::Keep::Best;
    o.checkpoint_dir = Some(dir.clone());
    let scores = [1.0, 3.0, 2.0];
    let best_state = std::cell::RefCell::new(None);
    let run_with_stop = |stop_after: Option<usize>| {
        let (m, tok) = fixture();
        let steps = std::cell::Cell::new(0usize);
        let mut eval = |step: usize| -> promot::Result<train::Evaluation> {
            steps.set(step);
            if step == 4 {
                *best_state.borrow_mut() = Some(m.params().to_tensors().unwrap());
            }
            Ok(scores[step / 2 - 1].into())
        };
        let stop = || stop_after.is_some_and(|s| steps.get() >= s);
        let h = train::train(
            m.as_ref(),
            &tok,
            data(),
            &o,
            Hooks {
                evaluate: Some(&mut eval),
                should_stop: &stop,
            },
        )
        .unwrap();
        (m, h)
    };
    // Stopped after the best evaluation (step 4), then resumed to the end.
    let (_, h) = run_with_stop(Some(4));
    assert!(h.stopped_early.is_some());
    for (m, h) in [run_with_stop(None), run_with_stop(None)] {
        assert_eq!(h.best, Some((4, 3.0)));
        let best = best_state.borrow();
        assert_holds_best(&m, best.as_ref().unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An evaluation that says the goal is reached ends the run at that step,
/// with the state of that step (or the best one, under keep-best); the
/// checkpoint records it, so the same command again trains no further.
#[test]
fn a_run_ends_at_its_goal_and_a_rerun_does_not_train_on() {
    let dir = std::env::temp_dir().join(format!("promot-goal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = opts(8);
    o.eval_every = 2;
    o.keep = train::Keep::Best;
    o.checkpoint_dir = Some(dir.clone());
    // Scores 1, 3, 2: the goal is declared at step 6, after the best (step 4).
    let run_once = || {
        let (m, tok) = fixture();
        let calls = Cell::new(0usize);
        let best = std::cell::RefCell::new(None);
        let mut eval = |step: usize| -> promot::Result<train::Evaluation> {
            calls.set(calls.get() + 1);
            if step == 4 {
                *best.borrow_mut() = Some(m.params().to_tensors().unwrap());
            }
            let score = [1.0, 3.0, 2.0, 0.0][step / 2 - 1];
            Ok(train::Evaluation { score, stop: step == 6 })
        };
        let h = train::train(
            m.as_ref(),
            &tok,
            data(),
            &o,
            Hooks {
                evaluate: Some(&mut eval),
                should_stop: &never,
            },
        )
        .unwrap();
        (m, h, calls.get(), best.into_inner())
    };
    let (m, h, calls, best) = run_once();
    assert_eq!(h.goal_step, Some(6));
    assert_eq!(h.losses.len(), 6, "no step after the goal");
    assert_eq!(calls, 3);
    assert_eq!(h.best, Some((4, 3.0)));
    assert_holds_best(&m, best.as_ref().unwrap());
    // The same run again: resumed at its goal, nothing trained or evaluated.
    let (m2, h2, calls2, _) = run_once();
    assert_eq!((h2.goal_step, h2.losses.len(), calls2), (Some(6), 6, 0));
    assert_eq!(h2.losses, h.losses);
    assert_holds_best(&m2, best.as_ref().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_shot_training_prepends_a_demonstration_of_the_same_task() {
    // Examples carry their own task name, which need not match the data's name.
    let examples: Vec<Example> = (0..4)
        .map(|i| Example {
            input: format!("q{i}"),
            target: format!("a{i}"),
            task: "rte".into(),
        })
        .collect();
    let mut o = opts(1).batch;
    o.shots = 1;
    o.separator = " <sep> ".into();
    let b = train::Batcher::new(
        vec![TaskData {
            name: "default".into(),
            examples: examples.clone(),
            ratio: 1.0,
        }],
        o,
    )
    .unwrap();
    for (row, ex) in examples.iter().enumerate() {
        let text = b.with_demonstrations(ex, 0, row);
        let (demo, query) = text
            .split_once(" <sep> ")
            .unwrap_or_else(|| panic!("no demonstration in {text:?}"));
        assert_eq!(query, ex.input);
        assert!(
            demo.starts_with('q') && !demo.starts_with(&ex.input),
            "demo {demo:?} for {}",
            ex.input
        );
    }
}

#[test]
#[ignore = "needs OpenBLAS: run bash scripts/get-blas.sh (and leave PROMOT_BLAS unset)"]
fn bf16_training_tracks_f32_and_keeps_f32_master_weights() {
    // Without the library dtype bf16 is an error (checked in the CLI tests).
    assert!(
        promot::kernels::blas::get().is_some(),
        "no BLAS library ({})",
        promot::kernels::blas::backend()
    );
    let mut o = opts(20);
    o.weights.optimizer.set_lr(1e-2);
    o.dropout = 0.0;
    let (m32, tok) = fixture();
    let h32 = run(&m32, &tok, &o);
    o.dtype = promot::kernels::precision::MatmulDtype::Bf16;
    let (m16, _) = fixture();
    let h16 = run(&m16, &tok, &o);
    let (a, b) = (h32.losses[0], h16.losses[0]);
    assert!((a - b).abs() < 0.02 * a.abs(), "first loss: f32 {a}, bf16 {b}");
    let (a, b) = (*h32.losses.last().unwrap(), *h16.losses.last().unwrap());
    assert!(b < h16.losses[0] * 0.8, "bf16 run did not learn: {:?}", h16.losses);
    assert!((a - b).abs() < 0.25 * a.abs().max(0.1), "last loss: f32 {a}, bf16 {b}");
    assert_ne!(h32.losses, h16.losses, "bf16 products must differ from f32 ones");
    // Master weights stay f32 and take updates finer than bf16 could hold.
    let w = m16.params().iter().next().unwrap().tensor();
    assert_eq!(w.dtype(), DType::F32);
    let fine = w
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .filter(|x| x.to_bits() & 0xffff != 0)
        .count();
    assert!(fine > 0, "weights look rounded to bf16");
}

/// The weights and the prompt train on different optimiser settings, and
/// each group's first update follows its own rule: SGD for the weights
/// (x - lr·g), unfactored Adafactor at another rate for the prompt (on a first
/// step, beta2 = 0, so V = g² + eps1 in full and the step is lr·g/sqrt(V),
/// shrunk so its RMS is at most 1).
#[test]
fn each_parameter_group_follows_its_own_optimiser() {
    use promot::optim::{AdafactorConfig, GroupSettings, OptimizerConfig};
    let (m, tok) = fixture();
    let prompt = SoftPrompt::new("p", m.as_ref(), 3, Init::Uniform, 1).unwrap();
    let mut o = opts(1);
    o.dropout = 0.0;
    o.label_smoothing = 0.0;
    o.prompt = Some(prompt.clone());
    o.weights = GroupSettings::new(OptimizerConfig::named("sgd", 0.05).unwrap());
    o.prompts = GroupSettings::new(OptimizerConfig::Adafactor(AdafactorConfig {
        lr: 0.3,
        factored: false,
        ..AdafactorConfig::default()
    }));
    let weight = m.params().get("shared.weight").unwrap().clone();
    let (w0, p0) = (
        weight.var().as_tensor().copy().unwrap(),
        prompt.param().var().as_tensor().copy().unwrap(),
    );
    // The gradients of the step's loss, taken here on the batch the trainer draws first
    // (dropout off, as the run sets it).
    m.dropout().set_p(0.0);
    let batcher = train::Batcher::new(data(), o.batch.clone()).unwrap();
    let batch = batcher.batch(0, &tok, m.as_ref()).unwrap();
    let grads = train::batch_loss(m.as_ref(), &batch, &o, true)
        .unwrap()
        .backward()
        .unwrap();
    let gw = grads.get(weight.var().as_tensor()).unwrap().clone();
    let gp = grads.get(prompt.param().var().as_tensor()).unwrap().clone();
    run(&m, &tok, &o);

    let max_rel = common::fixtures::rel_err;
    let want_w = (&w0 - (&gw * 0.05).unwrap()).unwrap();
    let got_w = weight.var().as_tensor();
    assert!(
        max_rel(&(got_w - &w0).unwrap(), &(&want_w - &w0).unwrap()) < 1e-4,
        "weights did not take SGD's step"
    );
    let v = (gp.sqr().unwrap() + 1e-30).unwrap();
    let u = (&gp / v.sqrt().unwrap()).unwrap();
    let rms = u
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let want_p = (&p0 - (u * (0.3 / rms.max(1.0))).unwrap()).unwrap();
    let got_p = prompt.param().var().as_tensor();
    assert!(
        max_rel(&(got_p - &p0).unwrap(), &(&want_p - &p0).unwrap()) < 1e-4,
        "the prompt did not take unfactored Adafactor's step"
    );
    // And not the other group's rule: SGD at 0.3 would have moved the prompt by 0.3·g.
    let sgd_p = (&p0 - (&gp * 0.3).unwrap()).unwrap();
    assert!(max_rel(&(got_p - &p0).unwrap(), &(&sgd_p - &p0).unwrap()) > 1e-2);
}
