//! Greedy and beam search against Hugging Face transformers on random T5 / mT5
//! models of several shapes (tests/fixtures/make_beam_fixtures.py recorded
//! them; see tests/fixtures/beam/README.md). For every model, run and input —
//! one padded batch and each input alone — the generated ids must equal
//! transformers' exactly and the score must equal its `sequences_scores` (beam)
//! or the sum of the generated tokens' log-probabilities (greedy).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use promot::model::{loading, pad_batch, GenerateOptions, Generation, Model};
use serde_json::Value;

/// Scores agree to 1e-4, relative for scores beyond ±1 (sums of log-probs of
/// long greedy outputs), as float32 sums in two libraries can.
const SCORE_TOL: f32 = 1e-4;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/beam")
        .join(name)
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

fn options(run: &Value, max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        num_beams: run["num_beams"].as_u64().expect("num_beams") as usize,
        length_penalty: run["length_penalty"].as_f64().unwrap_or(1.0),
        early_stopping: run["early_stopping"].as_bool().unwrap_or(false),
        ..GenerateOptions::default()
    }
}

/// Compares one run's rows; records every difference in `problems` and returns
/// the largest score error relative to the tolerance's scale.
fn check_rows(
    what: &str,
    got: &[Generation],
    want_ids: &Value,
    want_scores: &Value,
    problems: &mut Vec<String>,
) -> f32 {
    let want_ids = want_ids.as_array().expect("expected ids");
    let want_scores = want_scores.as_array().expect("expected scores");
    if got.len() != want_ids.len() {
        problems.push(format!("{what}: {} rows, transformers {}", got.len(), want_ids.len()));
        return 0.0;
    }
    let mut worst = 0.0f32;
    for (i, g) in got.iter().enumerate() {
        let ids = ids_of(&want_ids[i]);
        if g.ids != ids {
            problems.push(format!("{what}, row {i}: ids {:?}, transformers {ids:?}", g.ids));
            continue;
        }
        let want = want_scores[i].as_f64().expect("a score") as f32;
        let err = (g.score - want).abs() / want.abs().max(1.0);
        worst = worst.max(err);
        if err > SCORE_TOL {
            problems.push(format!("{what}, row {i}: score {}, transformers {want}", g.score));
        }
    }
    worst
}

/// Every run of one fixture model, batched and one input at a time.
fn check_fixture(name: &str) {
    let dir = fixture_dir(name);
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("ref.json")).unwrap()).unwrap();
    let (model, _): (Model, _) = loading::load(dir.to_str().unwrap(), &Device::Cpu, DType::F32, 0).unwrap();
    assert_eq!(model.eos_id() as u64, reference["eos_id"].as_u64().unwrap());
    let inputs: Vec<Vec<u32>> = reference["inputs"].as_array().unwrap().iter().map(ids_of).collect();
    let max_new_tokens = reference["max_new_tokens"].as_u64().unwrap() as usize;
    let (ids, mask) = pad_batch(&inputs, model.pad_id(), &Device::Cpu).unwrap();
    let embeds = model.embed(&ids).unwrap();
    let runs = reference["runs"].as_object().unwrap();
    assert!(runs.len() >= 5, "{name}: expected greedy, beam-4 and beam-2 runs");
    let mut problems = Vec::new();
    for (run_name, run) in runs {
        let opts = options(run, max_new_tokens);
        let got = model.generate_scored(&embeds, &mask, &opts).unwrap();
        let what = format!("{name} {run_name} batched");
        let worst = check_rows(&what, &got, &run["batched_ids"], &run["batched_scores"], &mut problems);
        eprintln!("{what}: largest score error {worst:.2e}");
        let mut single = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let x = Tensor::from_vec(input.clone(), (1, input.len()), &Device::Cpu).unwrap();
            let m = Tensor::ones((1, input.len()), DType::F32, &Device::Cpu).unwrap();
            single.extend(model.generate_scored(&model.embed(&x).unwrap(), &m, &opts).unwrap());
        }
        let what = format!("{name} {run_name} single");
        let worst = check_rows(&what, &single, &run["single_ids"], &run["single_scores"], &mut problems);
        eprintln!("{what}: largest score error {worst:.2e}");
    }
    assert!(
        problems.is_empty(),
        "{name} differs from transformers:\n{}",
        problems.join("\n")
    );
}

/// Issue #9's shape: mT5, 3 encoder and 2 decoder layers, 4 heads of 12 = d_model 48, vocabulary 800.
#[test]
fn mt5_issue_shape_matches_transformers() {
    check_fixture("mt5-issue");
}

/// Vocabulary 12, decoder deeper than the encoder, d_kv * heads < d_model.
#[test]
fn t5_tiny_vocabulary_deep_decoder_matches_transformers() {
    check_fixture("t5-tiny-vocab");
}

/// d_kv * heads > d_model; EOS never wins, so every sequence runs to max_new_tokens.
#[test]
fn mt5_max_new_tokens_before_any_eos_matches_transformers() {
    check_fixture("mt5-no-eos");
}

/// EOS likely from the first steps; 5 heads of 6 against d_model 32; decoder deeper.
#[test]
fn mt5_early_eos_matches_transformers() {
    check_fixture("mt5-early-eos");
}

/// Vocabulary 3000 over d_model 8, T5 v1.0 (relu, tied, rescaled logits).
#[test]
fn t5_large_vocabulary_matches_transformers() {
    check_fixture("t5-large-vocab");
}
