//! Greedy and beam-search decoding over any model that can take one decoding
//! step at a time with a cache. Beam search follows Hugging Face transformers'
//! semantics exactly (top 2·beams candidates per step, an EOS only counts when
//! it ranks among the top `beams`, length-normalised finished scores, and its
//! early-stopping heuristic), so outputs match token for token.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};

/// What a model must offer to be decoded step by step.
pub trait StepDecoder {
    /// Feed the last token of each of n rows; returns logits (n, v).
    fn step(&mut self, last: &[u32]) -> Result<Tensor>;
    /// Keep only rows `rows` (in this order) of the cache.
    fn reorder(&mut self, rows: &[u32]) -> Result<()>;
}

/// Decoding settings; also the options of `generate` in scripts (field
/// names as there, `num_beams` spelled `beams`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Beam width (1: greedy).
    #[serde(rename = "beams")]
    pub num_beams: usize,
    /// HF's exponent on the generated length when ranking finished beams.
    #[serde(deserialize_with = "crate::options::number")]
    pub length_penalty: f64,
    /// HF's `early_stopping=True`: stop once `num_beams` hypotheses finished.
    pub early_stopping: bool,
    /// Greedy decoding only: a row also finishes when this says its tokens so
    /// far are enough (evaluation stops once the post-processed answer is
    /// fixed). Set by the library, not an option.
    #[serde(skip)]
    pub stop: Option<StopRule>,
}

/// A row's generated ids -> whether the row may stop.
pub type StopFn = dyn Fn(&[u32]) -> bool + Send + Sync;

/// A predicate over a row's generated ids: true when the row may stop.
#[derive(Clone)]
pub struct StopRule(pub std::sync::Arc<StopFn>);

impl std::fmt::Debug for StopRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopRule")
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            num_beams: 4,
            length_penalty: 1.0,
            early_stopping: false,
            stop: None,
        }
    }
}

/// One generated sequence: its ids (up to and including EOS) and its score.
///
/// The score is what Hugging Face reports: for beam search its
/// `sequences_scores`, the sum of the tokens' log-probabilities divided by
/// (number of generated tokens)^length_penalty; for greedy decoding the plain
/// sum of the generated tokens' log-probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub ids: Vec<u32>,
    pub score: f32,
}

/// Special ids decoding needs.
#[derive(Clone, Copy, Debug)]
pub struct Specials {
    pub start: u32,
    pub eos: u32,
    pub pad: u32,
}

fn log_softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let lp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    Ok(lp.to_vec2::<f32>()?)
}

/// Greedy decoding of `batch` rows. Returns each row's generated ids, up to
/// and including EOS (or until `opts.stop` holds), with the sum of their
/// log-probabilities.
pub fn greedy(
    dec: &mut dyn StepDecoder,
    batch: usize,
    sp: Specials,
    opts: &GenerateOptions,
) -> Result<Vec<Generation>> {
    let mut out = vec![
        Generation {
            ids: Vec::new(),
            score: 0.0
        };
        batch
    ];
    let mut done = vec![false; batch];
    let mut last = vec![sp.start; batch];
    for _ in 0..opts.max_new_tokens {
        let logits = dec.step(&last)?.to_dtype(DType::F32)?;
        // The argmax of the logits, as HF picks it; the score from the log-probabilities.
        let next: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
        let logp = log_softmax_rows(&logits)?;
        for i in 0..batch {
            last[i] = if done[i] { sp.pad } else { next[i] };
            if !done[i] {
                let lp = logp.get(i).and_then(|row| row.get(next[i] as usize));
                out[i].score += lp.ok_or_else(|| Error::msg("greedy: decoder returned too few rows"))?;
                out[i].ids.push(next[i]);
                done[i] = next[i] == sp.eos || opts.stop.as_ref().is_some_and(|stop| (stop.0)(&out[i].ids));
            }
        }
        if done.iter().all(|d| *d) {
            break;
        }
    }
    Ok(out)
}

#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f32,
}

/// One source sentence's beams.
struct Search {
    running: Vec<Beam>,
    finished: Vec<(Beam, bool)>,
    improvable: bool,
}

/// The k best (score, flat index) pairs, best first; ties keep lower indices first.
fn top_k(scores: &[f32], k: usize) -> Vec<(f32, usize)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let k = k.min(idx.len());
    let cmp = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (scores[i], i)).collect()
}

/// Beam search over `batch` sources whose decoder rows are laid out
/// source-major (row = source * beams + beam).
pub fn beam_search(
    dec: &mut dyn StepDecoder,
    batch: usize,
    sp: Specials,
    opts: &GenerateOptions,
) -> Result<Vec<Generation>> {
    let nb = opts.num_beams;
    if nb < 1 {
        return Err(Error::msg("num_beams must be at least 1"));
    }
    let keep = 2 * nb;
    const NEG: f32 = -1.0e9;
    let lp = opts.length_penalty as f32;
    // The decoder prompt is the start token; a sequence's length counts only generated tokens.
    let max_len = 1 + opts.max_new_tokens;
    let mut searches: Vec<Search> = (0..batch)
        .map(|_| Search {
            running: (0..nb)
                .map(|j| Beam {
                    tokens: vec![sp.start],
                    score: if j == 0 { 0.0 } else { NEG },
                })
                .collect(),
            finished: (0..nb)
                .map(|_| {
                    (
                        Beam {
                            tokens: vec![],
                            score: NEG,
                        },
                        false,
                    )
                })
                .collect(),
            improvable: true,
        })
        .collect();
    let mut cur_len = 1usize;
    while cur_len < max_len {
        let last: Vec<u32> = searches
            .iter()
            .flat_map(|s| s.running.iter().map(|b| *b.tokens.last().unwrap_or(&sp.start)))
            .collect();
        let logp = log_softmax_rows(&dec.step(&last)?)?;
        let vocab = logp.first().map(|r| r.len()).unwrap_or(0);
        let mut reorder = Vec::with_capacity(batch * nb);
        let mut all_hit = true;
        for (si, s) in searches.iter_mut().enumerate() {
            let mut acc = Vec::with_capacity(nb * vocab);
            for (bi, beam) in s.running.iter().enumerate() {
                let row = logp
                    .get(si * nb + bi)
                    .ok_or_else(|| Error::msg("beam search: decoder returned too few rows"))?;
                acc.extend(row.iter().map(|l| l + beam.score));
            }
            // Candidates: (score, source beam, token, hits a stopping criterion).
            let cands: Vec<(f32, usize, u32, bool)> = top_k(&acc, keep)
                .into_iter()
                .map(|(score, i)| {
                    let tok = (i % vocab) as u32;
                    (score, i / vocab, tok, tok == sp.eos || cur_len + 1 >= max_len)
                })
                .collect();
            all_hit &= cands.iter().all(|c| c.3);
            // Running beams: best candidates that did not stop.
            let run_scores: Vec<f32> = cands.iter().map(|c| c.0 + if c.3 { NEG } else { 0.0 }).collect();
            let next: Vec<(f32, usize)> = top_k(&run_scores, nb);
            // Finished beams: merge stopped top-`nb` candidates into the kept set.
            let full = opts.early_stopping && s.finished.iter().all(|f| f.1);
            let gen_len = (cur_len + 1 - 1) as f32;
            let mut merged: Vec<(Beam, bool)> = s.finished.clone();
            for (ci, c) in cands.iter().enumerate() {
                let just_finished = c.3 && ci < nb;
                let mut score = c.0 / gen_len.powf(lp);
                if full {
                    score += NEG;
                }
                if !s.improvable {
                    score += NEG;
                }
                if !just_finished {
                    score += NEG;
                }
                let mut tokens = s.running[c.1].tokens.clone();
                tokens.push(c.2);
                merged.push((Beam { tokens, score }, just_finished));
            }
            let merged_scores: Vec<f32> = merged.iter().map(|m| m.0.score).collect();
            s.finished = top_k(&merged_scores, nb)
                .into_iter()
                .map(|(_, i)| merged[i].clone())
                .collect();
            let mut running = Vec::with_capacity(nb);
            for (score, ci) in next {
                let c = cands[ci];
                let mut tokens = s.running[c.1].tokens.clone();
                tokens.push(c.2);
                running.push(Beam { tokens, score });
                reorder.push((si * nb + c.1) as u32);
            }
            s.running = running;
        }
        cur_len += 1;
        for s in searches.iter_mut() {
            let best = s.running[0].score / ((cur_len - 1) as f32).powf(lp);
            let min_finished = s.finished.iter().map(|f| f.0.score).fold(f32::INFINITY, f32::min);
            let beats_some = s.finished.iter().any(|f| best > if f.1 { min_finished } else { NEG });
            s.improvable &= beats_some;
        }
        let any_open = !opts.early_stopping || searches.iter().any(|s| !s.finished.iter().all(|f| f.1));
        if all_hit || !searches.iter().any(|s| s.improvable) || !any_open {
            break;
        }
        dec.reorder(&reorder)?;
    }
    Ok(searches
        .into_iter()
        .map(|s| {
            let best = s.finished.into_iter().next().map(|(b, _)| b).unwrap_or(Beam {
                tokens: vec![],
                score: NEG,
            });
            Generation {
                ids: best.tokens.into_iter().skip(1).collect(),
                score: best.score,
            }
        })
        .collect())
}

/// Greedy decoding (one beam) or beam search over `batch` sources: for beam
/// search the decoder's rows are first expanded source-major (row = source *
/// beams + beam) with `reorder`. The one entry point every model family uses.
pub fn decode(
    dec: &mut dyn StepDecoder,
    batch: usize,
    sp: Specials,
    opts: &GenerateOptions,
) -> Result<Vec<Generation>> {
    if opts.num_beams <= 1 {
        return greedy(dec, batch, sp, opts);
    }
    let rows: Vec<u32> = (0..batch as u32)
        .flat_map(|i| std::iter::repeat_n(i, opts.num_beams))
        .collect();
    dec.reorder(&rows)?;
    beam_search(dec, batch, sp, opts)
}
