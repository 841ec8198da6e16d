//! ROUGE-2 as Google's `rouge-score` package computes it with
//! `RougeScorer(['rouge2'], use_stemmer=False)` (the package default, which the
//! paper's "Rouge-2" follows): lowercase, every run of characters outside
//! `[a-z0-9]` is a separator, bigram overlap with clipped counts.
//!
//! Stemming is not offered: `use_stemmer=True` needs NLTK's Porter stemmer and
//! changes scores only for words longer than three letters with suffixes.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Precision, recall and F1 of bigram overlap, each in 0..1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// rouge-score's default tokenizer: Unicode lowercase, then the maximal runs of
/// ASCII letters and digits. Everything else (accents, CJK, emoji, punctuation)
/// only separates tokens, so non-English text yields few or no tokens, exactly as
/// in the reference package.
pub fn rouge_tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|token| !token.is_empty())
        .map(str::to_string)
        .collect()
}

fn count_bigrams(tokens: &[String]) -> HashMap<(&str, &str), usize> {
    let mut counts = HashMap::new();
    for pair in tokens.windows(2) {
        if let [first, second] = pair {
            *counts.entry((first.as_str(), second.as_str())).or_insert(0) += 1;
        }
    }
    counts
}

/// ROUGE-2 of a hypothesis (rouge-score's "prediction") against one reference
/// ("target"). Empty sides give zeros, never NaN.
pub fn rouge2(hyp: &str, reference: &str) -> RougeScore {
    let hyp_tokens = rouge_tokenize(hyp);
    let ref_tokens = rouge_tokenize(reference);
    let hyp_bigrams = count_bigrams(&hyp_tokens);
    let ref_bigrams = count_bigrams(&ref_tokens);

    let overlap: usize = ref_bigrams
        .iter()
        .map(|(gram, &count)| count.min(hyp_bigrams.get(gram).copied().unwrap_or(0)))
        .sum();
    let hyp_total: usize = hyp_bigrams.values().sum();
    let ref_total: usize = ref_bigrams.values().sum();

    // The package divides by max(count, 1) so that empty sides score 0.
    let precision = overlap as f64 / hyp_total.max(1) as f64;
    let recall = overlap as f64 / ref_total.max(1) as f64;
    let fmeasure = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    RougeScore {
        precision,
        recall,
        fmeasure,
    }
}

/// Mean ROUGE-2 F1 over hypothesis/reference pairs, in 0..1 (multiply by 100 to
/// report it the way the paper's tables do).
///
/// Errors: different lengths, or no pairs at all.
pub fn mean_rouge2_f(hyps: &[String], refs: &[String]) -> Result<f64> {
    if hyps.len() != refs.len() {
        return Err(Error::msg(format!(
            "rouge2: {} hypotheses but {} references",
            hyps.len(),
            refs.len()
        )));
    }
    if hyps.is_empty() {
        return Err(Error::msg("rouge2: no hypothesis/reference pairs"));
    }
    let sum: f64 = hyps.iter().zip(refs).map(|(h, r)| rouge2(h, r).fmeasure).sum();
    Ok(sum / hyps.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_keeps_ascii_alphanumeric_runs() {
        assert_eq!(
            rouge_tokenize("The cat's 2nd-best mat!"),
            ["the", "cat", "s", "2nd", "best", "mat"]
        );
        assert_eq!(rouge_tokenize("Größe"), ["gr", "e"]);
        assert!(rouge_tokenize("北京 🙂").is_empty());
    }

    #[test]
    fn empty_sides_score_zero() {
        let zero = RougeScore {
            precision: 0.0,
            recall: 0.0,
            fmeasure: 0.0,
        };
        assert_eq!(rouge2("", "a b c"), zero);
        assert_eq!(rouge2("a b c", ""), zero);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(mean_rouge2_f(&["a".into()], &[]).is_err());
    }
}
