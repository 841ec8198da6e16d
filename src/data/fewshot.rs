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
//! "answer:" or "A:". T5's SentencePiece normalisation turns newlines into
//! spaces, so for T5 models the separator reads as a single space.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// The separator between demonstrations and before the query.
pub const DEFAULT_SEPARATOR: &str = "\n\n";

/// The paper cuts each summarization input to 1024 tokens.
pub const ARTICLE_TOKEN_CAP: usize = 1024;

/// A k-shot setting: how many demonstrations, the seed that picks them, and
/// the separator that joins them.
#[derive(Debug, Clone, PartialEq)]
pub struct FewShot {
    /// Demonstrations per prompt (the paper uses 1 and 4).
    pub k: usize,
    /// Seed for demonstration sampling; with the query index it fixes the draw.
    pub seed: u64,
    /// Text between demonstrations and before the query.
    pub separator: String,
}

impl FewShot {
    /// A k-shot setting with the default `"\n\n"` separator.
    pub fn new(k: usize, seed: u64) -> Self {
        FewShot { k, seed, separator: DEFAULT_SEPARATOR.to_string() }
    }

    /// Demonstration indices for the query at `query_index`, drawn from a
    /// pool of `pool_len` examples. Each query gets its own draw (as the paper
    /// samples a demonstration per example), fixed by `(seed, query_index)`.
    /// `same_split` says the pool is the evaluation set itself, in which case
    /// the query is never its own demonstration.
    pub fn demo_indices(&self, query_index: usize, pool_len: usize, same_split: bool) -> Result<Vec<usize>> {
        let exclude = if same_split { Some(query_index) } else { None };
        sample_demos_in_stream(pool_len, self.k, self.seed, query_index as u64, exclude)
    }

    /// Joins demonstrations and the query with this setting's separator.
    pub fn prompt(&self, query_input: &str, demos: &[(String, String)]) -> String {
        build_prompt(query_input, demos, &self.separator)
    }
}

/// Builds a k-shot prompt: each `(input, target)` demonstration written as
/// `input + " " + target`, all joined by `sep`, then `sep` and the query
/// input with no target. With no demonstrations the prompt is the query.
pub fn build_prompt(query_input: &str, demos: &[(String, String)], sep: &str) -> String {
    let mut prompt = String::new();
    for (input, target) in demos {
        prompt.push_str(input);
        prompt.push(' ');
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
    sample_demos_in_stream(pool_len, k, seed, 0, exclude)
}

/// [`sample_demos`] on one of ChaCha8's independent streams, so that every
/// query index has its own reproducible draw under a single seed.
fn sample_demos_in_stream(
    pool_len: usize,
    k: usize,
    seed: u64,
    stream: u64,
    exclude: Option<usize>,
) -> Result<Vec<usize>> {
    let mut candidates: Vec<usize> = (0..pool_len).filter(|&i| Some(i) != exclude).collect();
    if k > candidates.len() {
        return Err(Error::msg(format!(
            "cannot draw {k} demonstrations from a pool of {pool_len}{}",
            if exclude.is_some() { " less the query itself" } else { "" }
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    // Partial Fisher-Yates: the first k slots end up a uniform draw without
    // replacement, and only k random numbers are used.
    for i in 0..k {
        let j = rng.random_range(i..candidates.len());
        candidates.swap(i, j);
    }
    candidates.truncate(k);
    Ok(candidates)
}

/// Caps a text at `max_tokens`: returned as is when it fits, otherwise
/// `truncate(text, max_tokens)`. Used per field, e.g. XSum articles at
/// [`ARTICLE_TOKEN_CAP`] before templating.
pub fn cap_tokens(
    text: &str,
    max_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
    truncate: &dyn Fn(&str, usize) -> String,
) -> String {
    if count_tokens(text) <= max_tokens {
        text.to_string()
    } else {
        truncate(text, max_tokens)
    }
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
/// an error: cap the query's long fields first (see [`cap_tokens`]).
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
