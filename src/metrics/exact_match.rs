//! Exact match for open-domain QA (TriviaQA, WebQuestions) with the SQuAD v1.1
//! answer normalisation: lowercase, delete ASCII punctuation, replace the whole
//! words "a", "an", "the" by a space, collapse whitespace. A prediction is right
//! when it equals any normalised gold alias.
//!
//! One known gap to Python: the word-boundary test around articles uses Rust's
//! `char::is_alphanumeric`, which also counts combining vowel signs (Unicode
//! Other_Alphabetic, e.g. Devanagari or Arabic marks) as word characters where
//! Python's `\b` does not. It matters only for an article glued to such a mark.

use crate::error::{Error, Result};
use crate::metrics::split_python_whitespace;

/// The articles SQuAD removes. Their order does not matter: a match must end at a
/// word boundary, so at most one of them can match at any position.
const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// SQuAD's `normalize_answer`: lower, remove punctuation, remove articles, fix
/// whitespace (in that order).
pub fn normalize_answer(text: &str) -> String {
    let lowered = text.to_lowercase();
    let no_punct: Vec<char> = lowered.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    let no_articles = remove_articles(&no_punct);
    split_python_whitespace(&no_articles).collect::<Vec<_>>().join(" ")
}

/// A word character for Python's `\b` (approximately: see the module docs).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)`: an article must start after a non-word
/// character (or the start) and end before one (or the end). Boundaries are judged
/// on the original text, as `re.sub` does.
fn remove_articles(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || chars.get(i - 1).is_none_or(|&c| !is_word_char(c));
        let article_len = if starts_word { article_at(chars, i) } else { None };
        match article_len {
            Some(len) => {
                out.push(' ');
                i += len;
            }
            None => {
                if let Some(&c) = chars.get(i) {
                    out.push(c);
                }
                i += 1;
            }
        }
    }
    out
}

/// Length of the whole-word article starting at `start`, if there is one.
fn article_at(chars: &[char], start: usize) -> Option<usize> {
    ARTICLES.iter().find_map(|article| {
        let len = article.chars().count();
        let candidate = chars.get(start..start + len)?;
        let same = candidate.iter().copied().eq(article.chars());
        let ends_word = chars.get(start + len).is_none_or(|&c| !is_word_char(c));
        (same && ends_word).then_some(len)
    })
}

/// True when the normalised prediction equals the normalised form of any alias.
/// No aliases means no match.
pub fn exact_match(prediction: &str, aliases: &[String]) -> bool {
    let prediction = normalize_answer(prediction);
    aliases.iter().any(|alias| normalize_answer(alias) == prediction)
}

/// Percentage (0..100) of predictions that exactly match one of their aliases.
///
/// Errors: different lengths, or no predictions at all.
pub fn exact_match_score(preds: &[String], aliases_per_pred: &[Vec<String>]) -> Result<f64> {
    if preds.len() != aliases_per_pred.len() {
        return Err(Error::msg(format!(
            "exact match: {} predictions but {} alias lists",
            preds.len(),
            aliases_per_pred.len()
        )));
    }
    if preds.is_empty() {
        return Err(Error::msg("exact match: no predictions"));
    }
    let hits = preds
        .iter()
        .zip(aliases_per_pred)
        .filter(|(p, a)| exact_match(p, a))
        .count();
    Ok(100.0 * hits as f64 / preds.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_squad() {
        assert_eq!(normalize_answer("The  Beatles!"), "beatles");
        assert_eq!(normalize_answer("an apple a day"), "apple day");
        assert_eq!(normalize_answer("Theatre, Anna"), "theatre anna");
        assert_eq!(normalize_answer("U.S.A."), "usa");
        assert_eq!(normalize_answer("the"), "");
    }

    #[test]
    fn matches_any_alias() {
        let aliases = vec!["Bulb onion".to_string(), "Onion".to_string()];
        assert!(exact_match("an onion.", &aliases));
        assert!(!exact_match("onions", &aliases));
        assert!(!exact_match("onion", &[]));
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        assert!(exact_match_score(&["a".into()], &[]).is_err());
    }
}
