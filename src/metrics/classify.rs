//! Accuracy for the classification tasks (RTE, CB, WiC) and the paper's format
//! probe (Fig. 2: the share of outputs that are "True" or "False" on a task that
//! is not classification).
//!
//! The paper checks "whether the first output token is True or False". We read
//! that at the word level: the first whitespace-separated word of the output, with
//! ASCII punctuation trimmed from both ends ("True." and "\"False\"," count, which a
//! SentencePiece first-token check would also mostly accept), compared
//! case-sensitively ("true" is not "True": the labels are capitalised in the
//! prompts, and a lowercase answer is a format the model did not learn).

use crate::error::{Error, Result};
use crate::metrics::is_python_space;

/// The first word of `output`: skip leading whitespace, stop at the next
/// whitespace, trim ASCII punctuation from both ends. Empty if there is none.
pub fn first_word(output: &str) -> &str {
    let rest = output.trim_start_matches(is_python_space);
    let word = match rest.find(is_python_space) {
        Some(end) => rest.get(..end).unwrap_or(rest),
        None => rest,
    };
    word.trim_matches(|c: char| c.is_ascii_punctuation())
}

/// Percentage (0..100) of predictions whose first word equals their label exactly.
///
/// Errors: different lengths, or no predictions at all.
pub fn accuracy(preds: &[String], labels: &[String]) -> Result<f64> {
    if preds.len() != labels.len() {
        return Err(Error::msg(format!(
            "accuracy: {} predictions but {} labels",
            preds.len(),
            labels.len()
        )));
    }
    if preds.is_empty() {
        return Err(Error::msg("accuracy: no predictions"));
    }
    let correct = preds
        .iter()
        .zip(labels)
        .filter(|(p, l)| first_word(p) == l.as_str())
        .count();
    Ok(100.0 * correct as f64 / preds.len() as f64)
}

/// Share (0..1) of outputs whose first word is one of `label_set` (e.g. True,
/// False): how far a model has specialised to a classification format. An empty
/// list of outputs gives 0.
pub fn label_share(preds: &[String], label_set: &[String]) -> f64 {
    if preds.is_empty() {
        return 0.0;
    }
    let in_set = preds
        .iter()
        .filter(|p| {
            let word = first_word(p);
            label_set.iter().any(|label| label == word)
        })
        .count();
    in_set as f64 / preds.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_word_trims_whitespace_and_punctuation() {
        assert_eq!(first_word("  True. because"), "True");
        assert_eq!(first_word("\"False\","), "False");
        assert_eq!(first_word("Neither"), "Neither");
        assert_eq!(first_word("\n\t"), "");
        assert_eq!(first_word("...!"), "");
        assert_eq!(first_word("Öl ist"), "Öl");
    }
}
