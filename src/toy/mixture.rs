//! The toy model's pretraining mixture: which task each pretraining episode
//! is drawn from, how many demonstrations it has, and in which answer format
//! it is written.
//!
//! - Tasks are drawn by `TASK_WEIGHTS`. The classification tasks and the
//!   fresh rule are drawn three times as often as the others: their answers
//!   are one or two tokens, so under a per-token loss they would otherwise
//!   get a small share of the gradient, and they are the slowest to learn.
//! - The number of demonstrations k is uniform in 0..=k_max.
//! - Answer formats: a pretraining episode answers either in the paper's
//!   format (what the templates and the evaluation use) or, with probability
//!   `ALTERNATE_FORMAT_RATE`, in one alternate format, the same for its query
//!   and every demonstration. A prompt without demonstrations therefore
//!   leaves the format open, and the demonstrations settle it, as for a real
//!   pretrained model (the property that format specialization destroys).
//!   Translation and the fresh rule have no alternate format.
//!
//! | task                     | paper's format                 | alternate format                 |
//! | ------------------------ | ------------------------------ | -------------------------------- |
//! | rte, wic                 | True / False                   | yes / no                         |
//! | cb                       | True / False / Neither         | yes / no / maybe                 |
//! | triviaqa, web_questions  | X                              | the answer is X.                 |
//! | xsum                     | the J E lives in C.            | E works as a J in C.             |

use rand::Rng;

use super::{join_prompt, Example, Split, TaskKind, World};
use crate::error::{Error, Result};

/// Relative draw weight of each task (see the module docs).
pub const TASK_WEIGHTS: [(TaskKind, u32); 10] = [
    (TaskKind::Rte, 3),
    (TaskKind::Cb, 3),
    (TaskKind::Wic, 3),
    (TaskKind::TriviaQa, 1),
    (TaskKind::WebQuestions, 1),
    (TaskKind::EnFr, 1),
    (TaskKind::EnDe, 1),
    (TaskKind::EnRo, 1),
    (TaskKind::Xsum, 1),
    (TaskKind::FreshRule, 3),
];

/// Probability that an episode of a task with an alternate format uses it.
pub const ALTERNATE_FORMAT_RATE: f64 = 0.5;

/// Paper label word -> alternate label word.
const ALTERNATE_LABELS: &[(&str, &str)] = &[("True", "yes"), ("False", "no"), ("Neither", "maybe")];

/// Every word the alternate formats add to the vocabulary.
pub const ALTERNATE_FORMAT_TEXT: &str = "yes no maybe the answer is. works as a in.";

/// A task's target rewritten in its alternate format; `None` for tasks
/// without one.
pub fn alternate_target(task: TaskKind, target: &str) -> Result<Option<String>> {
    let unexpected = || Error::msg(format!("toy {}: unexpected target '{target}'", task.name()));
    Ok(match task {
        TaskKind::Rte | TaskKind::Cb | TaskKind::Wic => {
            let (_, word) = ALTERNATE_LABELS
                .iter()
                .find(|(paper, _)| *paper == target)
                .ok_or_else(unexpected)?;
            Some(word.to_string())
        }
        TaskKind::TriviaQa | TaskKind::WebQuestions => Some(format!("the answer is {target}.")),
        TaskKind::Xsum => {
            // "the {job} {entity} lives in {city}." (see `World::xsum`)
            let words: Vec<&str> = target.strip_suffix('.').ok_or_else(unexpected)?.split(' ').collect();
            let ["the", job, entity, "lives", "in", city] = words.as_slice() else {
                return Err(unexpected());
            };
            Some(format!("{entity} works as a {job} in {city}."))
        }
        TaskKind::EnFr | TaskKind::EnDe | TaskKind::EnRo | TaskKind::FreshRule => None,
    })
}

/// The example with its target (and only reference) in the alternate format.
fn in_alternate_format(task: TaskKind, example: Example) -> Result<Example> {
    Ok(match alternate_target(task, &example.target)? {
        Some(target) => Example::new(example.input, target),
        None => example,
    })
}

/// A task drawn by `TASK_WEIGHTS`.
fn draw_task<R: Rng + ?Sized>(rng: &mut R) -> TaskKind {
    let total: u32 = TASK_WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut ticket = rng.random_range(0..total);
    for (task, weight) in TASK_WEIGHTS {
        if ticket < weight {
            return task;
        }
        ticket -= weight;
    }
    TASK_WEIGHTS[0].0
}

impl World {
    /// One draw of the pretraining mixture (see the module docs): a train
    /// episode of a task drawn by `TASK_WEIGHTS`, with k drawn uniformly from
    /// 0..=k_max, in the paper's or the alternate answer format.
    pub fn pretrain_episode<R: Rng + ?Sized>(&self, rng: &mut R, k_max: usize) -> Result<(TaskKind, Example)> {
        let task = draw_task(rng);
        let k = rng.random_range(0..=k_max);
        let (mut demos, mut query) = self.episode_parts(task, Split::Train, k, rng)?;
        if rng.random_bool(ALTERNATE_FORMAT_RATE) {
            query = in_alternate_format(task, query)?;
            demos = demos
                .into_iter()
                .map(|d| in_alternate_format(task, d))
                .collect::<Result<_>>()?;
        }
        Ok((task, join_prompt(&demos, &query)))
    }

    /// `n` draws of the pretraining mixture ([`World::pretrain_episode`]).
    pub fn pretrain_batch_examples<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        k_max: usize,
    ) -> Result<Vec<Example>> {
        (0..n)
            .map(|_| self.pretrain_episode(rng, k_max).map(|(_, e)| e))
            .collect()
    }
}
