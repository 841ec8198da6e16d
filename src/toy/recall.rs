//! Recall episodes: the fresh rule with many queries at once, a pretraining
//! objective that gives the in-context lookup dense supervision.
//!
//! A fresh-rule episode supervises one answer: a batch of 32 episodes is 32
//! answers, and the lookup they need (find the query's word among the
//! demonstrations, copy what follows it) never started from that signal
//! (docs/results-toy-pretrain.md, "fresh_rule probes"). A recall episode
//! writes n examples of one fresh rule as demonstrations and hides the
//! answers of up to `NUM_SENTINELS` of them behind T5's span sentinels; the
//! target lists each sentinel with its answer, as in T5's span corruption:
//!
//!   Input: king Output: gleb <sep> Input: woman Output: <extra_id_0> <sep> Input: woman Output: snyp <sep> ...
//!   -> <extra_id_0> snyp <extra_id_1> ...
//!
//! Only answers that the shown examples determine are hidden
//! (`FreshRule::revealed_by`), so every target token is learnable in context.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;

use super::vocab::NUM_SENTINELS;
use super::{draw_in_split, Example, FreshRule, Split, TaskKind, World, DEMO_SEPARATOR, MAX_RULE_DRAWS};
use crate::data::fewshot::TARGET_JOIN;
use crate::error::{Error, Result};

/// Examples in one recall episode.
pub const RECALL_EXAMPLES: usize = 10;

/// Span sentinel `i` (`<extra_id_i>`).
fn sentinel(i: usize) -> String {
    format!("<extra_id_{i}>")
}

impl World {
    /// One recall episode (see the module docs): `RECALL_EXAMPLES` distinct
    /// train examples of a freshly drawn rule, each answer hidden with
    /// probability one half when the others still determine it.
    pub fn recall_episode<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Example> {
        let task = TaskKind::FreshRule;
        let rule = FreshRule::draw(self, rng)?;
        let mut used = BTreeSet::new();
        let mut examples = Vec::with_capacity(RECALL_EXAMPLES);
        for _ in 0..RECALL_EXAMPLES {
            // A small rule may run out of distinct inputs: then the episode is shorter.
            let Ok(example) = draw_in_split(task, Split::Train, &used, MAX_RULE_DRAWS, rng, |r| {
                rule.example(self, r)
            }) else {
                break;
            };
            used.insert(example.input.clone());
            examples.push(example);
        }
        if examples.len() < 2 {
            return Err(Error::msg("toy recall: too few distinct examples for a rule"));
        }
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.shuffle(rng);
        let mut hidden = vec![false; examples.len()];
        let mut count = 0;
        for i in order {
            if count == NUM_SENTINELS || !rng.random_bool(0.5) {
                continue;
            }
            hidden[i] = true;
            let shown: Vec<&Example> = examples
                .iter()
                .zip(&hidden)
                .filter(|(_, h)| !**h)
                .map(|(e, _)| e)
                .collect();
            let determined = examples
                .iter()
                .zip(&hidden)
                .filter(|(_, h)| **h)
                .all(|(e, _)| rule.revealed_by(e, &shown));
            if determined {
                count += 1;
            } else {
                hidden[i] = false;
            }
        }
        if count == 0 {
            // Always supervise something: hide the first answer the rest determine.
            let first = (0..examples.len()).find(|&i| {
                let shown: Vec<&Example> = examples
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, e)| e)
                    .collect();
                rule.revealed_by(&examples[i], &shown)
            });
            let Some(i) = first else {
                return Err(Error::msg("toy recall: no answer is determined by the others"));
            };
            hidden[i] = true;
        }
        let mut input = Vec::with_capacity(examples.len());
        let mut target = Vec::new();
        for (example, hide) in examples.iter().zip(&hidden) {
            let answer = if *hide {
                let s = sentinel(target.len() / 2);
                target.push(s.clone());
                target.push(example.target.clone());
                s
            } else {
                example.target.clone()
            };
            input.push(format!("{}{TARGET_JOIN}{answer}", example.input));
        }
        Ok(Example::new(input.join(DEMO_SEPARATOR), target.join(" ")))
    }
}
