//! k-shot prompts: choosing demonstrations deterministically, joining them in
//! front of the query, and fitting the result into a token budget.
//!
//! Prompt layout (PaLM style, one standard for every task):
//!
//! ```text
//! <demo 1 input> <demo 1 target>\n\n<demo 2 input> <demo 2 target>\n\n<query input>
//! ```
//!
//! A demonstration is its filled template, one space, and its target; the
//! demonstrations and the query are separated by a blank line (`"\n\n"`); the
//! query comes last with no target, so the model continues after e.g.
//! "answer:" or "A:". A SentencePiece normaliser that turns newlines into
//! spaces makes the separator read as a single space; a decoder-only model's
//! byte-level tokenizer keeps the newlines.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use std::path::Path;

use super::readers::read_json;
use crate::error::{Error, Result};

/// The separator between demonstrations and before the query.
pub const DEFAULT_SEPARATOR: &str = "\n\n";

/// The config.json key under which a model directory records the separator
/// its model was trained with, when it is not [`DEFAULT_SEPARATOR`] (the toy
/// model's vocabulary has no newline, so its separator is a token of its own).
pub const SEPARATOR_CONFIG_KEY: &str = "promot_separator";

/// The separator a saved model expects between demonstrations: the one its
/// config.json records, else [`DEFAULT_SEPARATOR`]. Training ("+1-shot") and
/// evaluation both take it from here, so they cannot disagree.
pub fn model_separator(model_dir: &Path) -> Result<String> {
    let path = model_dir.join("config.json");
    if !path.exists() {
        return Ok(DEFAULT_SEPARATOR.to_string());
    }
    let config = read_json(&path)?;
    Ok(config
        .get(SEPARATOR_CONFIG_KEY)
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_SEPARATOR)
        .to_string())
}

/// Records a non-default separator in a saved model's config.json, so that
/// [`model_separator`] gives it back when the model is loaded again.
pub fn record_separator(model_dir: &Path, separator: &str) -> Result<()> {
    if separator == DEFAULT_SEPARATOR {
        return Ok(());
    }
    let path = model_dir.join("config.json");
    let mut config = read_json(&path)?;
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::file(&path, "config.json is not a JSON object"))?;
    obj.insert(SEPARATOR_CONFIG_KEY.into(), separator.into());
    crate::fsio::write_json(&path, &config)
}

/// What stands between a demonstration's input and its target.
pub const TARGET_JOIN: &str = " ";

/// Builds a k-shot prompt: each `(input, target)` demonstration written as
/// `input + " " + target`, all joined by `sep`, then `sep` and the query
/// input with no target. With no demonstrations the prompt is the query.
pub fn build_prompt(query_input: &str, demos: &[(String, String)], sep: &str) -> String {
    let mut prompt = String::new();
    for (input, target) in demos {
        prompt.push_str(input);
        prompt.push_str(TARGET_JOIN);
        prompt.push_str(target);
        prompt.push_str(sep);
    }
    prompt.push_str(query_input);
    prompt
}

/// Draws `k` distinct indices from `0..pool_len`, never `exclude` (the query
/// itself when the pool is the evaluation split). The same `(pool_len, k,
/// seed, exclude)` always gives the same indices, in draw order. Asking for
/// more demonstrations than the pool can supply is an error.
pub fn sample_demos(pool_len: usize, k: usize, seed: u64, exclude: Option<usize>) -> Result<Vec<usize>> {
    let mut candidates: Vec<usize> = (0..pool_len).filter(|&i| Some(i) != exclude).collect();
    if k > candidates.len() {
        return Err(Error::msg(format!(
            "cannot draw {k} demonstrations from a pool of {pool_len}{}",
            if exclude.is_some() {
                " less the query itself"
            } else {
                ""
            }
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Partial Fisher-Yates: the first k slots end up a uniform draw without
    // replacement, and only k random numbers are used.
    for i in 0..k {
        let j = rng.random_range(i..candidates.len());
        candidates.swap(i, j);
    }
    candidates.truncate(k);
    Ok(candidates)
}

/// Fits a k-shot prompt into `budget_tokens` and returns the demonstrations to
/// use (pass them to [`build_prompt`] with the same `sep`). The query is never
/// touched. While the whole prompt is over budget:
///
/// 1. the longest demonstration input (by tokens; the earliest on a tie) is cut
///    by the excess, but not below `min_demo_input_tokens`; repeat while any
///    input can still be shortened;
/// 2. then demonstrations are dropped from the front (the one farthest from
///    the query goes first).
///
/// Demonstration targets are never cut, since a cut target would teach the
/// model a wrong answer format. If the query alone exceeds the budget, that is
/// an error: cap the query's long fields first (an evaluation task's `caps`).
/// `count_tokens` counts the tokens of a text; `truncate(text, n)` returns the
/// text cut to at most `n` tokens.
pub fn fit_to_budget(
    demos: &[(String, String)],
    query_input: &str,
    sep: &str,
    budget_tokens: usize,
    min_demo_input_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
    truncate: &dyn Fn(&str, usize) -> String,
) -> Result<Vec<(String, String)>> {
    let query_tokens = count_tokens(query_input);
    if query_tokens > budget_tokens {
        return Err(Error::msg(format!(
            "the query alone is {query_tokens} tokens, over the prompt budget of {budget_tokens}; cap its long fields first"
        )));
    }
    let mut demos: Vec<(String, String)> = demos.to_vec();
    let total = |demos: &[(String, String)]| count_tokens(&build_prompt(query_input, demos, sep));

    // Step 1: shorten inputs, longest first. `stuck[i]` marks an input that is at
    // its floor or that `truncate` could not shorten, so the loop always ends.
    let mut stuck = vec![false; demos.len()];
    loop {
        let current = total(&demos);
        if current <= budget_tokens {
            return Ok(demos);
        }
        let excess = current - budget_tokens;
        let longest = demos
            .iter()
            .enumerate()
            .filter(|(i, _)| !stuck.get(*i).copied().unwrap_or(true))
            .map(|(i, (input, _))| (i, count_tokens(input)))
            .filter(|&(_, n)| n > min_demo_input_tokens)
            .fold(None, |best: Option<(usize, usize)>, (i, n)| match best {
                Some((_, best_n)) if best_n >= n => best,
                _ => Some((i, n)),
            });
        let Some((i, n)) = longest else { break };
        let target_len = n.saturating_sub(excess).max(min_demo_input_tokens);
        let Some(demo) = demos.get_mut(i) else { break };
        let shortened = truncate(&demo.0, target_len);
        let new_n = count_tokens(&shortened);
        if new_n >= n {
            stuck[i] = true;
            continue;
        }
        if new_n <= min_demo_input_tokens {
            stuck[i] = true;
        }
        demo.0 = shortened;
    }

    // Step 2: drop whole demonstrations from the front.
    while !demos.is_empty() && total(&demos) > budget_tokens {
        demos.remove(0);
    }
    // With no demonstrations left the prompt is the query, which fits (checked
    // above) unless count_tokens disagrees with itself; report rather than loop.
    let final_tokens = total(&demos);
    if final_tokens > budget_tokens {
        return Err(Error::msg(format!(
            "prompt is still {final_tokens} tokens after dropping every demonstration (budget {budget_tokens})"
        )));
    }
    Ok(demos)
}
