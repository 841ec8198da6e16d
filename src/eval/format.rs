//! A task's answer format, and whether an output is in it: what "format
//! specialization" measures. A classification task's format is its label
//! words, read off an output's first word (the paper's Fig. 2 probe: the share
//! of True/False answers to QA prompts). A generative task's format is the
//! vocabulary of its answers: an output is in it when every one of its words
//! is (a toy-English answer to a toy-German prompt is in toy French-to-English's
//! format).

use std::collections::BTreeSet;

use crate::data::postprocess::{postprocess, OutputKind};
use crate::error::{Error, Result};
use crate::metrics::first_word;

/// The words of a format and how an output is read against them.
#[derive(Clone, Debug, PartialEq)]
pub struct Format {
    pub words: BTreeSet<String>,
    /// Every word of the output must be in `words` (a generative format);
    /// otherwise only its first word (a label set).
    pub every_word: bool,
}

/// An answer's words for the every-word rule: lower case, punctuation off.
fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
}

impl Format {
    /// A label set, read off the first word (case-sensitive, as accuracy is).
    pub fn labels(labels: &[String]) -> Format {
        Format {
            words: labels.iter().cloned().collect(),
            every_word: false,
        }
    }

    /// The format of a task given its answers: its label set for a
    /// classification task, the vocabulary of its answers for a generative one.
    pub fn of_answers(kind: OutputKind, answers: &[String]) -> Result<Format> {
        if answers.is_empty() {
            return Err(Error::msg("an answer format needs at least one answer"));
        }
        Ok(match kind {
            OutputKind::Classification => Format {
                words: answers.iter().map(|a| first_word(a).to_string()).collect(),
                every_word: false,
            },
            OutputKind::Generation => Format {
                words: answers.iter().flat_map(|a| words_of(a)).collect(),
                every_word: true,
            },
        })
    }

    /// Whether a raw model output is in this format (after the paper's
    /// post-processing).
    pub fn holds(&self, raw: &str) -> bool {
        if self.every_word {
            let answer = postprocess(raw, OutputKind::Generation);
            let mut words = words_of(&answer).peekable();
            words.peek().is_some() && words.all(|w| self.words.contains(&w))
        } else {
            self.words.contains(&postprocess(raw, OutputKind::Classification))
        }
    }

    /// The share (0-1) of outputs in this format; 0 for none.
    pub fn share<S: AsRef<str>>(&self, outputs: &[S]) -> f64 {
        if outputs.is_empty() {
            return 0.0;
        }
        outputs.iter().filter(|o| self.holds(o.as_ref())).count() as f64 / outputs.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn label_sets_read_the_first_word() {
        let f = Format::labels(&strings(&["True", "False"]));
        assert!(f.holds("True, because"));
        assert!(!f.holds("true"));
        assert!(!f.holds("paris"));
        assert_eq!(f.share(&["True", "x", "False", "y"]), 0.5);
    }

    #[test]
    fn vocabularies_need_every_word() {
        let f = Format::of_answers(
            OutputKind::Generation,
            &strings(&["the dog sees a cat.", "a tall tree."]),
        )
        .unwrap();
        assert!(f.holds("A cat sees the tree."));
        assert!(!f.holds("the dog sees zorp."));
        assert!(!f.holds(""));
        assert!(Format::of_answers(OutputKind::Generation, &[]).is_err());
    }
}
