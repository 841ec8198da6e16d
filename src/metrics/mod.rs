//! Evaluation metrics of the paper, each matching its reference tool exactly:
//! BLEU as sacrebleu's `corpus_bleu` (13a tokenisation, exp smoothing), ROUGE-2 as
//! Google's `rouge-score` (default tokenizer, no stemming), exact match with the
//! SQuAD answer normalisation, and first-word accuracy for classification tasks.
//!
//! All functions are pure and work on `&str`/`String`; mismatched input lengths are
//! errors, never panics. Parity is checked by `tests/metrics_parity.rs` against
//! fixtures written by `tests/fixtures/make_metric_fixtures.py`.

pub mod bleu;
pub mod classify;
pub mod exact_match;
pub mod rouge;

pub use bleu::{bleu_from_statistics, corpus_bleu, segment_statistics, sentence_bleu, tokenize_13a, BleuScore};
pub use classify::{accuracy, first_word, label_share};
pub use exact_match::{exact_match, exact_match_score, normalize_answer};
pub use rouge::{mean_rouge2_f, rouge2, rouge_tokenize, RougeScore};

/// Python's `str.isspace()`, which `str.split()` uses. It is Unicode White_Space
/// plus the ASCII separators U+001C..U+001F that Rust's `char::is_whitespace` omits;
/// the reference tools split on it, so we must too.
pub(crate) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()` with no argument: runs of whitespace separate, no empty pieces.
pub(crate) fn split_python_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_python_space).filter(|piece| !piece.is_empty())
}
