//! The fresh-rule task: an output format that only the demonstrations of an
//! episode show. Each episode draws a rule, a marker word (one of the world's
//! invented label words) and a side; a rule's output is its input's words
//! with the marker before or after them:
//!
//!   Input: horse green Output: gleb horse green        (marker "gleb", before)
//!   Input: king Output: king snyp                      (marker "snyp", after)
//!
//! Without demonstrations the rule is one of 2 x 24 and the marker cannot be
//! guessed; any one demonstration shows both. This is in-context learning of
//! the kind format specialization destroys: following a format the
//! demonstrations set, with a word that no task outside the episode uses.
//!
//! Earlier versions drew lookup rules (the word at a position the
//! demonstrations show, words mapped to codes, a class mapped to a label):
//! the toy model never learned the match by key they need, neither in
//! pretraining nor in dedicated probes (docs/results-toy-pretrain.md,
//! "fresh_rule probes"); they are left to larger models.

use rand::seq::IndexedRandom;
use rand::Rng;

use super::world::{pick, World};
use super::Example;
use crate::error::Result;

/// Most words in a fresh-rule input.
const MAX_INPUT_WORDS: usize = 3;

/// A rule that only the demonstrations of an episode reveal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshRule {
    /// The word the output adds to the input's words.
    pub marker: String,
    /// Whether the marker comes before the input's words (else after).
    pub before: bool,
}

impl FreshRule {
    /// Draws a new rule: marker and side uniform.
    pub fn draw<R: Rng + ?Sized>(world: &World, rng: &mut R) -> Result<FreshRule> {
        Ok(FreshRule {
            marker: pick(rng, &world.label_words)?.clone(),
            before: rng.random_bool(0.5),
        })
    }

    /// A random example: 1 to `MAX_INPUT_WORDS` distinct nouns, adjectives
    /// or verbs, and the rule's output for them.
    pub fn example<R: Rng + ?Sized>(&self, world: &World, rng: &mut R) -> Result<Example> {
        let g = &world.grammar;
        let mut pool: Vec<&str> = g
            .nouns
            .iter()
            .chain(&g.adjectives)
            .chain(&g.verbs)
            .map(|s| s.as_str())
            .collect();
        pool.sort();
        pool.dedup();
        let n = rng.random_range(1..=MAX_INPUT_WORDS);
        let words: Vec<&str> = pool.choose_multiple(rng, n).copied().collect();
        let x = words.join(" ");
        let y = if self.before {
            format!("{} {x}", self.marker)
        } else {
            format!("{x} {}", self.marker)
        };
        Ok(Example::new(format!("Input: {x} Output:"), y))
    }
}
