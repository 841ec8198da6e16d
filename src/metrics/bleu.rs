//! Corpus BLEU with the exact semantics of sacrebleu 2.x `corpus_bleu` defaults:
//! tokenizer '13a' (mteval-v13a), case-sensitive, smoothing 'exp', maximum order 4,
//! no effective order. Numbers agree with sacrebleu to floating-point rounding.
//!
//! How sacrebleu handles references, and so do we:
//! - each hypothesis may have any positive number of references; n-gram clip counts
//!   are the maximum count over that hypothesis's references;
//! - the reference length used for the brevity penalty is the reference length
//!   closest to the hypothesis length, the shorter one on a tie;
//! - an empty string is a real reference of length 0 (sacrebleu only skips `None`).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::metrics::{is_python_space, split_python_whitespace};

/// Highest n-gram order BLEU counts.
const MAX_ORDER: usize = 4;

/// sacrebleu floors `log(0)` to this instead of minus infinity.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// A BLEU result, laid out like sacrebleu's `BLEUScore`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BleuScore {
    /// BLEU on the 0..100 scale.
    pub score: f64,
    /// Modified n-gram precisions for n = 1..4, each on the 0..100 scale.
    pub precisions: [f64; MAX_ORDER],
    /// Brevity penalty in 0..1.
    pub bp: f64,
    /// Total hypothesis length in 13a tokens.
    pub sys_len: usize,
    /// Total of the closest reference lengths in 13a tokens.
    pub ref_len: usize,
    /// Clipped matching n-gram counts for n = 1..4.
    pub counts: [usize; MAX_ORDER],
    /// Hypothesis n-gram counts for n = 1..4.
    pub totals: [usize; MAX_ORDER],
}

/// Corpus BLEU of `hyps` against `refs`, where `refs[i]` lists the references of
/// `hyps[i]` (counts may differ between hypotheses). Equals
/// `sacrebleu.corpus_bleu(hyps, streams)` where `streams` is `refs` transposed and
/// padded with `None`.
///
/// Errors: different numbers of hypotheses and reference lists, an empty corpus, or
/// a hypothesis with no reference at all (sacrebleu has no defined result for these).
pub fn corpus_bleu(hyps: &[String], refs: &[Vec<String>]) -> Result<BleuScore> {
    bleu_from_segments(hyps, refs, false)
}

/// Sentence BLEU of one hypothesis against its references, as sacrebleu's
/// `sentence_bleu` with defaults (which, unlike the corpus default, uses the
/// effective order: orders with no hypothesis n-grams are left out of the mean).
pub fn sentence_bleu(hyp: &str, refs: &[String]) -> Result<BleuScore> {
    bleu_from_segments(&[hyp.to_string()], &[refs.to_vec()], true)
}

fn bleu_from_segments(hyps: &[String], refs: &[Vec<String>], effective_order: bool) -> Result<BleuScore> {
    if hyps.len() != refs.len() {
        return Err(Error::msg(format!(
            "bleu: {} hypotheses but {} reference lists",
            hyps.len(),
            refs.len()
        )));
    }
    if hyps.is_empty() {
        return Err(Error::msg("bleu: empty corpus (no hypotheses)"));
    }
    let mut stats = SegmentStats::default();
    for (i, (hyp, hyp_refs)) in hyps.iter().zip(refs).enumerate() {
        if hyp_refs.is_empty() {
            return Err(Error::msg(format!("bleu: hypothesis {i} has no reference")));
        }
        stats.add(&segment_stats(hyp, hyp_refs));
    }
    Ok(compute_bleu(&stats, effective_order))
}

/// How many numbers `segment_statistics` gives: the hypothesis and reference
/// lengths, then the matching and the total n-gram counts for n = 1..4.
pub const STATISTICS: usize = 2 + 2 * MAX_ORDER;

/// One segment's sufficient statistics as numbers (see `STATISTICS`): summed
/// over any set of segments, `bleu_from_statistics` gives that set's corpus
/// BLEU, exactly as `corpus_bleu` would (what a bootstrap over examples needs).
pub fn segment_statistics(hyp: &str, refs: &[String]) -> Result<[f64; STATISTICS]> {
    if refs.is_empty() {
        return Err(Error::msg("bleu: a hypothesis has no reference"));
    }
    let s = segment_stats(hyp, refs);
    let mut out = [0.0; STATISTICS];
    out[0] = s.sys_len as f64;
    out[1] = s.ref_len as f64;
    for n in 0..MAX_ORDER {
        out[2 + n] = s.correct[n] as f64;
        out[2 + MAX_ORDER + n] = s.total[n] as f64;
    }
    Ok(out)
}

/// Corpus BLEU (0..100) from summed `segment_statistics`.
pub fn bleu_from_statistics(summed: &[f64]) -> Result<f64> {
    if summed.len() != STATISTICS || summed.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::msg(format!(
            "bleu: statistics must be {STATISTICS} non-negative counts, got {summed:?}"
        )));
    }
    let count = |v: f64| v.round() as usize;
    let mut s = SegmentStats {
        sys_len: count(summed[0]),
        ref_len: count(summed[1]),
        ..SegmentStats::default()
    };
    for n in 0..MAX_ORDER {
        s.correct[n] = count(summed[2 + n]);
        s.total[n] = count(summed[2 + MAX_ORDER + n]);
    }
    Ok(compute_bleu(&s, false).score)
}

/// The sufficient statistics of one segment (or, summed, of a corpus).
#[derive(Debug, Default, Clone)]
struct SegmentStats {
    sys_len: usize,
    ref_len: usize,
    correct: [usize; MAX_ORDER],
    total: [usize; MAX_ORDER],
}

impl SegmentStats {
    fn add(&mut self, other: &SegmentStats) {
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += other.correct[n];
            self.total[n] += other.total[n];
        }
    }
}

/// Counts every n-gram of order 1..=4, keyed by the token slice itself.
fn count_ngrams<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// The reference length closest to the hypothesis length; ties go to the shorter.
fn closest_ref_len(hyp_len: usize, ref_lens: &[usize]) -> usize {
    let mut best: Option<(usize, usize)> = None; // (difference, length)
    for &len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            Some((best_diff, best_len)) if diff > best_diff || (diff == best_diff && len >= best_len) => {
                Some((best_diff, best_len))
            }
            _ => Some((diff, len)),
        };
    }
    best.map_or(0, |(_, len)| len)
}

fn segment_stats(hyp: &str, refs: &[String]) -> SegmentStats {
    let ref_tokenized: Vec<String> = refs.iter().map(|r| tokenize_13a(r)).collect();
    let ref_tokens: Vec<Vec<&str>> = ref_tokenized
        .iter()
        .map(|r| split_python_whitespace(r).collect())
        .collect();
    let ref_lens: Vec<usize> = ref_tokens.iter().map(Vec::len).collect();

    // Clip counts: the most times any single reference contains the n-gram.
    let mut ref_max: HashMap<&[&str], usize> = HashMap::new();
    for tokens in &ref_tokens {
        for (gram, count) in count_ngrams(tokens) {
            let slot = ref_max.entry(gram).or_insert(0);
            *slot = (*slot).max(count);
        }
    }

    let hyp_tokenized = tokenize_13a(hyp);
    let hyp_tokens: Vec<&str> = split_python_whitespace(&hyp_tokenized).collect();
    let mut stats = SegmentStats {
        sys_len: hyp_tokens.len(),
        ref_len: closest_ref_len(hyp_tokens.len(), &ref_lens),
        ..SegmentStats::default()
    };
    for (gram, count) in count_ngrams(&hyp_tokens) {
        let n = gram.len() - 1;
        stats.total[n] += count;
        stats.correct[n] += count.min(ref_max.get(gram).copied().unwrap_or(0));
    }
    stats
}

/// BLEU from summed statistics with 'exp' smoothing (mteval's: the k-th order with
/// no match gets precision 100 / (2^k * total)).
fn compute_bleu(stats: &SegmentStats, effective_order: bool) -> BleuScore {
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);
    let bp = if sys_len >= ref_len {
        1.0
    } else if sys_len > 0 {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    } else {
        0.0
    };
    let mut result = BleuScore {
        score: 0.0,
        precisions: [0.0; MAX_ORDER],
        bp,
        sys_len,
        ref_len,
        counts: stats.correct,
        totals: stats.total,
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return result;
    }

    let mut smooth = 1.0_f64;
    let mut order = MAX_ORDER;
    for n in 0..MAX_ORDER {
        let total = stats.total[n];
        if total == 0 {
            // Higher orders keep precision 0 (and so the floored log) unless
            // the effective order drops them from the mean.
            break;
        }
        if effective_order {
            order = n + 1;
        }
        result.precisions[n] = if stats.correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total as f64)
        } else {
            100.0 * stats.correct[n] as f64 / total as f64
        };
    }
    let log_sum: f64 = result.precisions[..order]
        .iter()
        .map(|&p| if p == 0.0 { LOG_ZERO } else { p.ln() })
        .sum();
    result.score = bp * (log_sum / order as f64).exp();
    result
}

/// sacrebleu's '13a' tokenizer (mteval-v13a): returns the tokens joined by single
/// spaces. Applied after stripping trailing whitespace, as sacrebleu does.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line.trim_end_matches(is_python_space).replace("<skipped>", "");
    line = line.replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut chars: Vec<char> = Vec::with_capacity(line.len() + 2);
    chars.push(' ');
    chars.extend(line.chars());
    chars.push(' ');

    // The four regular expressions of mteval-v13a, applied in order. Each is a
    // fixed one- or two-character pattern, so a left-to-right scan that skips past
    // every match reproduces `re.sub` exactly.
    let chars = split_symbols(&chars);
    let chars = rewrite_pairs(
        &chars,
        |a, b| !a.is_ascii_digit() && is_period_or_comma(b),
        |a, b| vec![a, ' ', b, ' '],
    );
    let chars = rewrite_pairs(
        &chars,
        |a, b| is_period_or_comma(a) && !b.is_ascii_digit(),
        |a, b| vec![' ', a, ' ', b],
    );
    let chars = rewrite_pairs(
        &chars,
        |a, b| a.is_ascii_digit() && b == '-',
        |a, b| vec![a, ' ', b, ' '],
    );

    let spaced: String = chars.into_iter().collect();
    split_python_whitespace(&spaced).collect::<Vec<_>>().join(" ")
}

fn is_period_or_comma(c: char) -> bool {
    c == '.' || c == ','
}

/// ASCII symbols 13a always splits off: every printable ASCII non-alphanumeric except
/// apostrophe, comma, hyphen and period (those have context rules or none).
fn is_split_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

fn split_symbols(chars: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 2);
    for &c in chars {
        if is_split_symbol(c) {
            out.extend([' ', c, ' ']);
        } else {
            out.push(c);
        }
    }
    out
}

/// Rewrites non-overlapping matches of a two-character pattern, scanning left to
/// right and resuming after each match, like Python's `re.sub`.
fn rewrite_pairs(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 2);
    let mut i = 0;
    while i < chars.len() {
        match (chars.get(i), chars.get(i + 1)) {
            (Some(&a), Some(&b)) if matches(a, b) => {
                out.extend(replace(a, b));
                i += 2;
            }
            (Some(&a), _) => {
                out.push(a);
                i += 1;
            }
            (None, _) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_splits_like_13a() {
        assert_eq!(tokenize_13a("Hello, world."), "Hello , world .");
        assert_eq!(tokenize_13a("3.14 and 1,000"), "3.14 and 1,000");
        assert_eq!(tokenize_13a("1990-2000 well-known"), "1990 - 2000 well-known");
        assert_eq!(tokenize_13a("it's &amp; \"x\""), "it's & \" x \"");
        assert_eq!(tokenize_13a("   "), "");
    }

    #[test]
    fn closest_ref_prefers_shorter_on_tie() {
        assert_eq!(closest_ref_len(5, &[7, 3]), 3);
        assert_eq!(closest_ref_len(5, &[6, 9]), 6);
        assert_eq!(closest_ref_len(5, &[4, 6]), 4);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(corpus_bleu(&["a".into()], &[]).is_err());
        assert!(corpus_bleu(&[], &[]).is_err());
        assert!(corpus_bleu(&["a".into()], &[vec![]]).is_err());
    }
}
