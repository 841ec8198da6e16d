//! Properties of greedy and beam search that need no reference implementation,
//! checked on random tiny T5 / mT5 models with peaky logits and batches of
//! inputs of very different lengths.
//!
//! 1. A returned score is the model's own score of the returned ids: scoring
//!    them again by teacher forcing (`forward` + log_softmax) gives the sum of
//!    log-probabilities for greedy and that sum over len^length_penalty for
//!    beam search. Catches cache or hypothesis bookkeeping that lets the ids
//!    drift from the path that was scored.
//! 2. Beam search does not return worse than greedy when it could have kept
//!    greedy's hypothesis. It is *not* true that beam-4 always scores at least
//!    greedy's length-normalised score: with Hugging Face's semantics, which
//!    promot follows, a hypothesis enters the finished set only at the step it
//!    ends (EOS or max_new_tokens) and only if it ranks among the top
//!    `num_beams` candidates then; greedy's prefix can be pushed out of the
//!    beam earlier by `num_beams` better prefixes whose endings all turn out
//!    worse; and `early_stopping=True` (or the early-stop heuristic) can end the
//!    search before greedy's hypothesis ends. So the test watches the search
//!    through its `StepDecoder` (which prefixes it expands, with which
//!    log-probabilities) and requires, for one input at a time:
//!    if the search ran the step at which greedy's hypothesis G ends, G's prefix
//!    was one of its beams then, and fewer than `num_beams` other candidates
//!    scored at least G's, then G entered the finished set — with one input the
//!    search runs a step only while that input can still improve and is not
//!    full — so the returned score is ≥ score(G) / len(G)^length_penalty.
//!    Both the condition and the inequality use the search's own
//!    log-probabilities. The returned ids must also be a path the search
//!    expanded, scored exactly as the trace scores it.

use candle_core::{DType, Device, Tensor, D};
use promot::model::generate::{beam_search, Specials, StepDecoder};
use promot::model::t5::DecoderCache;
use promot::model::{pad_batch, GenerateOptions, Generation, LanguageModel, T5Config, T5};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CASES: u64 = 100;
const EOS: u32 = 1;

/// A random tiny config: depths, heads, d_kv (d_kv * heads rarely d_model) and vocabulary vary.
fn random_config(rng: &mut ChaCha8Rng) -> T5Config {
    let gated = rng.random_bool(0.5);
    let pick = |rng: &mut ChaCha8Rng, xs: &[usize]| xs[rng.random_range(0..xs.len())];
    let json = serde_json::json!({
        "vocab_size": pick(rng, &[5, 8, 16, 40, 120]),
        "d_model": pick(rng, &[8, 12, 16]),
        "d_kv": pick(rng, &[2, 4, 6]),
        "num_heads": rng.random_range(1..=4),
        "d_ff": 16,
        "num_layers": rng.random_range(1..=3),
        "num_decoder_layers": rng.random_range(1..=3),
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 16,
        "dropout_rate": 0.0,
        "feed_forward_proj": if gated { "gated-gelu" } else { "relu" },
        "tie_word_embeddings": !gated,
        "pad_token_id": 0,
        "eos_token_id": EOS,
        "decoder_start_token_id": 0,
    });
    serde_json::from_value(json).unwrap()
}

/// `T5::random` with its output projection scaled by `gain` (peaky logits) and
/// the EOS row by `eos` (EOS early when > 1).
fn random_model(cfg: T5Config, seed: u64, gain: f64, eos: f32) -> T5 {
    let model = T5::random(cfg, seed, &Device::Cpu).unwrap();
    let name = if model.cfg.tie_word_embeddings {
        "shared.weight"
    } else {
        "lm_head.weight"
    };
    let p = model.params.get(name).unwrap();
    let mut rows = vec![gain as f32; model.cfg.vocab_size];
    rows[EOS as usize] *= eos;
    let scale = Tensor::from_vec(rows, (model.cfg.vocab_size, 1), &Device::Cpu).unwrap();
    p.assign(&p.tensor().broadcast_mul(&scale).unwrap()).unwrap();
    model
}

/// Sum of the log-probabilities of each row's `ids` under teacher forcing on the padded batch.
fn teacher_forced(model: &T5, embeds: &Tensor, mask: &Tensor, gens: &[Generation]) -> Vec<f32> {
    let seqs: Vec<Vec<u32>> = gens.iter().map(|g| g.ids.clone()).collect();
    let (targets, _) = pad_batch(&seqs, 0, &Device::Cpu).unwrap();
    let logits = model.forward(embeds, mask, &targets, false).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    seqs.iter()
        .enumerate()
        .map(|(i, ids)| ids.iter().enumerate().map(|(t, &k)| logp[i][t][k as usize]).sum())
        .collect()
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

/// Each row's prefix (generated tokens) and accumulated log-probability.
type Rows = Vec<(Vec<u32>, f32)>;

/// A T5 decoder that records what beam search asks of it: each row's prefix
/// (generated tokens) and accumulated log-probability, and the log-probabilities
/// it returned at every step.
struct Traced<'a> {
    model: &'a T5,
    enc_mask: Tensor,
    cache: DecoderCache,
    /// Per row: (prefix, accumulated score). Row 0 starts at 0, the other rows
    /// are the search's placeholder beams and start at -inf.
    rows: Rows,
    /// Per step: the rows as they were fed, and their next-token log-probabilities.
    steps: Vec<(Rows, Vec<Vec<f32>>)>,
    /// Source rows of the last reorder, applied when the next step reveals the chosen tokens.
    pending: Option<Vec<u32>>,
}

impl StepDecoder for Traced<'_> {
    fn step(&mut self, last: &[u32]) -> promot::error::Result<Tensor> {
        if let Some(src) = self.pending.take() {
            let (prev_rows, prev_logp) = self.steps.last().expect("a reorder follows a step");
            self.rows = src
                .iter()
                .zip(last)
                .map(|(&r, &tok)| {
                    let (prefix, score) = &prev_rows[r as usize];
                    let mut prefix = prefix.clone();
                    prefix.push(tok);
                    (prefix, score + prev_logp[r as usize][tok as usize])
                })
                .collect();
        }
        let ids = Tensor::from_vec(last.to_vec(), (last.len(), 1), &Device::Cpu)?;
        let logits = self.model.decode_step(&ids, &self.enc_mask, &mut self.cache)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec2::<f32>()?;
        self.steps.push((self.rows.clone(), logp));
        Ok(logits)
    }
    fn reorder(&mut self, rows: &[u32]) -> promot::error::Result<()> {
        let idx = Tensor::from_vec(rows.to_vec(), rows.len(), &Device::Cpu)?;
        self.cache = self.cache.select(&idx)?;
        self.enc_mask = self.enc_mask.index_select(&idx, 0)?;
        self.pending = Some(rows.to_vec());
        Ok(())
    }
}

/// Beam search on one input through `Traced`; returns the result and the trace.
fn traced_beam_search<'a>(model: &'a T5, input: &[u32], opts: &GenerateOptions) -> (Generation, Traced<'a>) {
    let nb = opts.num_beams;
    let x = Tensor::from_vec(input.to_vec(), (1, input.len()), &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, input.len()), DType::F32, &Device::Cpu).unwrap();
    let enc = model.encode(&model.embed(&x).unwrap(), &mask, false).unwrap();
    let idx = Tensor::from_vec(vec![0u32; nb], nb, &Device::Cpu).unwrap();
    let enc = enc.index_select(&idx, 0).unwrap();
    let mut rows = vec![(Vec::new(), f32::NEG_INFINITY); nb];
    rows[0].1 = 0.0;
    let mut dec = Traced {
        model,
        enc_mask: mask.index_select(&idx, 0).unwrap(),
        cache: model.start_decoding(&enc).unwrap(),
        rows,
        steps: Vec::new(),
        pending: None,
    };
    let sp = Specials {
        start: model.cfg.decoder_start_id(),
        eos: model.cfg.eos_id(),
        pad: model.cfg.pad_id(),
    };
    let out = beam_search(&mut dec, 1, sp, opts).unwrap().remove(0);
    (out, dec)
}

/// The accumulated score of `hyp` if the search ran the step at which it ends
/// and its prefix was a beam then; also how many other candidates at that step
/// scored at least as much.
fn final_step(trace: &Traced<'_>, hyp: &[u32]) -> Option<(f32, usize)> {
    let (rows, logp) = trace.steps.get(hyp.len().checked_sub(1)?)?;
    let (prefix, last) = hyp.split_at(hyp.len() - 1);
    let row = rows.iter().position(|(p, s)| p == prefix && s.is_finite())?;
    let score = rows[row].1 + logp[row][last[0] as usize];
    let mut at_least = 0;
    for (r, (_, s)) in rows.iter().enumerate() {
        for (tok, l) in logp[r].iter().enumerate() {
            if (r, tok) != (row, last[0] as usize) && s + l >= score {
                at_least += 1;
            }
        }
    }
    Some((score, at_least))
}

/// One random case: a model, a batch of inputs of different lengths, beam-4 options.
struct Case {
    what: String,
    model: T5,
    inputs: Vec<Vec<u32>>,
    beam: GenerateOptions,
}

fn random_case(seed: u64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cfg = random_config(&mut rng);
    let vocab = cfg.vocab_size as u32;
    let gain = [2.0, 4.0, 8.0][rng.random_range(0..3)];
    let eos = [1.0, 2.0][rng.random_range(0..2)];
    let model = random_model(cfg, seed, gain, eos);
    let inputs = (0..rng.random_range(1..=4))
        .map(|_| {
            (0..[1, 3, 8, 20][rng.random_range(0..4)])
                .map(|_| rng.random_range(2..vocab))
                .collect()
        })
        .collect();
    let beam = GenerateOptions {
        max_new_tokens: rng.random_range(1..=10),
        num_beams: 4,
        length_penalty: [1.0, 0.6, 2.0][rng.random_range(0..3)],
        early_stopping: rng.random_bool(0.5),
        ..GenerateOptions::default()
    };
    let what = format!("case {seed} ({:?}, gain {gain}, eos x{eos}, {beam:?})", model.cfg);
    Case {
        what,
        model,
        inputs,
        beam,
    }
}

/// How often greedy's hypothesis was reachable, and what beam search made of it.
#[derive(Default)]
struct Tally {
    rows: usize,
    reachable: usize,
    better: usize,
    below_unreachable: usize,
}

/// Property 1 on the padded batch: greedy and beam-4 scores are the teacher-forced scores of their ids.
fn check_teacher_forced(case: &Case, embeds: &Tensor, mask: &Tensor, greedy: &[Generation], beams: &[Generation]) {
    let (what, lp) = (&case.what, case.beam.length_penalty as f32);
    let greedy_tf = teacher_forced(&case.model, embeds, mask, greedy);
    let beam_tf = teacher_forced(&case.model, embeds, mask, beams);
    for i in 0..case.inputs.len() {
        let (g, b) = (&greedy[i], &beams[i]);
        assert!(
            close(g.score, greedy_tf[i], 1e-4),
            "{what} row {i}: greedy {g:?}, teacher forced {}",
            greedy_tf[i]
        );
        let normalised = beam_tf[i] / (b.ids.len() as f32).powf(lp);
        assert!(
            close(b.score, normalised, 1e-4),
            "{what} row {i}: beam {b:?}, teacher forced {normalised}"
        );
    }
}

/// Property 2 for input `i` alone, watching the search (see the module docs).
fn check_against_greedy(case: &Case, i: usize, greedy: &Generation, batched: &Generation, tally: &mut Tally) {
    let (what, lp, nb) = (&case.what, case.beam.length_penalty as f32, case.beam.num_beams);
    let (got, trace) = traced_beam_search(&case.model, &case.inputs[i], &case.beam);
    assert_eq!(
        got.ids, batched.ids,
        "{what} row {i}: alone and batched beam search differ"
    );
    assert!(
        close(got.score, batched.score, 1e-5),
        "{what} row {i}: {got:?} alone, {batched:?} batched"
    );
    let (score, _) = final_step(&trace, &got.ids).unwrap_or_else(|| panic!("{what} row {i}: {got:?} never expanded"));
    let norm = |s: f32, len: usize| s / (len as f32).powf(lp);
    assert_eq!(
        got.score,
        norm(score, got.ids.len()),
        "{what} row {i}: the score is not its path's"
    );
    let g = &greedy.ids;
    match final_step(&trace, g) {
        Some((g_score, rivals)) if rivals < nb => {
            let g_norm = norm(g_score, g.len());
            assert!(
                got.score >= g_norm,
                "{what} row {i}: beam {got:?} below greedy {g:?} ({g_norm}, {rivals} rivals)"
            );
            tally.reachable += 1;
            tally.better += usize::from(got.score > g_norm);
        }
        _ => {
            let g_norm = norm(greedy.score, g.len());
            tally.below_unreachable += usize::from(got.score < g_norm && !close(got.score, g_norm, 1e-5));
        }
    }
    tally.rows += 1;
}

#[test]
fn returned_scores_are_teacher_forced_scores_and_beam_keeps_what_greedy_found() {
    let mut tally = Tally::default();
    for seed in 0..CASES {
        let case = random_case(seed);
        let (ids, mask) = pad_batch(&case.inputs, 0, &Device::Cpu).unwrap();
        let embeds = case.model.embed(&ids).unwrap();
        let greedy_opts = GenerateOptions {
            num_beams: 1,
            ..case.beam.clone()
        };
        let greedy = case.model.generate_scored(&embeds, &mask, &greedy_opts).unwrap();
        let beams = case.model.generate_scored(&embeds, &mask, &case.beam).unwrap();
        check_teacher_forced(&case, &embeds, &mask, &greedy, &beams);
        for i in 0..case.inputs.len() {
            check_against_greedy(&case, i, &greedy[i], &beams[i], &mut tally);
        }
    }
    let Tally {
        rows,
        reachable,
        better,
        below_unreachable,
    } = tally;
    eprintln!(
        "{CASES} models, {rows} rows; greedy's hypothesis reachable in {reachable}, beam strictly better there in \
         {better}; beam below greedy where greedy was unreachable: {below_unreachable}"
    );
    assert!(rows >= 100, "too few rows checked: {rows}");
    assert!(
        reachable * 2 >= rows,
        "greedy's hypothesis reachable in only {reachable} of {rows} rows"
    );
    assert!(better >= 5, "beam search rarely found better than greedy ({better})");
}
