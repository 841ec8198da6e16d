//! The toy model's pretraining mixture: which task each pretraining episode
//! is drawn from, how many demonstrations it has, and in which answer format
//! it is written.
//!
//! - Tasks are drawn by `TASK_WEIGHTS`. The classification tasks and the
//!   fresh rule are drawn three times as often as the others: their answers
//!   are one or two tokens, so under a per-token loss they would otherwise
//!   get a small share of the gradient, and they are the slowest to learn.
//! - The number of demonstrations k is uniform in k_min..=k_max.
//! - `MixtureOptions` can restrict the draw to some tasks (a warm start on
//!   the classification tasks, say) and set the alternate-format rate.
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

/// What a pretraining draw may be: the one declaration of the mixture's
/// options (scripts pass them as a map to `toy_pretrain_data`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixtureOptions {
    /// Task names to draw from, by their `TASK_WEIGHTS` (empty: every task).
    pub tasks: Vec<String>,
    /// Fewest demonstrations an episode has.
    pub k_min: usize,
    /// Most demonstrations an episode has.
    pub k_max: usize,
    /// Probability that an episode answers in its task's alternate format.
    #[serde(deserialize_with = "crate::options::number")]
    pub alternate_format_rate: f64,
}

impl Default for MixtureOptions {
    fn default() -> Self {
        MixtureOptions {
            tasks: Vec::new(),
            k_min: 0,
            k_max: 4,
            alternate_format_rate: ALTERNATE_FORMAT_RATE,
        }
    }
}

/// A `MixtureOptions` checked and resolved: the weighted tasks and k range.
#[derive(Debug, Clone)]
pub struct Mixture {
    weights: Vec<(TaskKind, u32)>,
    k_min: usize,
    k_max: usize,
    alternate_format_rate: f64,
}

impl Mixture {
    /// Checks the options: known task names, k_min <= k_max, a rate in [0, 1].
    pub fn new(options: &MixtureOptions) -> Result<Mixture> {
        let chosen = options
            .tasks
            .iter()
            .map(|name| TaskKind::from_name(name))
            .collect::<Result<Vec<_>>>()?;
        let weights: Vec<(TaskKind, u32)> = TASK_WEIGHTS
            .iter()
            .copied()
            .filter(|(task, _)| chosen.is_empty() || chosen.contains(task))
            .collect();
        if options.k_min > options.k_max {
            return Err(Error::msg(format!(
                "toy mixture: k_min ({}) is larger than k_max ({})",
                options.k_min, options.k_max
            )));
        }
        let rate = options.alternate_format_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::msg(format!(
                "toy mixture: alternate_format_rate must lie in [0, 1], got {rate}"
            )));
        }
        Ok(Mixture {
            weights,
            k_min: options.k_min,
            k_max: options.k_max,
            alternate_format_rate: rate,
        })
    }

    /// The default mixture with k uniform in 0..=k_max.
    pub fn default_with_k_max(k_max: usize) -> Result<Mixture> {
        Mixture::new(&MixtureOptions {
            k_max,
            ..MixtureOptions::default()
        })
    }

    /// A task drawn by its weight among the chosen tasks.
    fn draw_task<R: Rng + ?Sized>(&self, rng: &mut R) -> TaskKind {
        let total: u32 = self.weights.iter().map(|(_, w)| w).sum();
        let mut ticket = rng.random_range(0..total);
        for &(task, weight) in &self.weights {
            if ticket < weight {
                return task;
            }
            ticket -= weight;
        }
        self.weights[0].0
    }
}

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
        TaskKind::EnFr | TaskKind::EnDe | TaskKind::EnRo | TaskKind::FreshRule | TaskKind::FrEn => None,
    })
}

/// The example with its target (and only reference) in the alternate format.
fn in_alternate_format(task: TaskKind, example: Example) -> Result<Example> {
    Ok(match alternate_target(task, &example.target)? {
        Some(target) => Example::new(example.input, target),
        None => example,
    })
}

impl World {
    /// One draw of the default pretraining mixture with k in 0..=k_max
    /// (see [`World::mixture_episode`]).
    pub fn pretrain_episode<R: Rng + ?Sized>(&self, rng: &mut R, k_max: usize) -> Result<(TaskKind, Example)> {
        self.mixture_episode(&Mixture::default_with_k_max(k_max)?, rng)
    }

    /// One draw of a pretraining mixture (see the module docs): a train
    /// episode of a task drawn by its weight, with k uniform in
    /// k_min..=k_max, in the paper's or the alternate answer format.
    pub fn mixture_episode<R: Rng + ?Sized>(&self, mixture: &Mixture, rng: &mut R) -> Result<(TaskKind, Example)> {
        let task = mixture.draw_task(rng);
        let k = rng.random_range(mixture.k_min..=mixture.k_max);
        let (mut demos, mut query) = self.episode_parts(task, Split::Train, k, rng)?;
        if rng.random_bool(mixture.alternate_format_rate) {
            query = in_alternate_format(task, query)?;
            demos = demos
                .into_iter()
                .map(|d| in_alternate_format(task, d))
                .collect::<Result<_>>()?;
        }
        Ok((task, join_prompt(&demos, &query)))
    }

    /// `n` draws of the default pretraining mixture ([`World::pretrain_episode`]),
    /// its options checked once.
    pub fn pretrain_batch_examples<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        n: usize,
        k_max: usize,
    ) -> Result<Vec<Example>> {
        let mixture = Mixture::default_with_k_max(k_max)?;
        (0..n)
            .map(|_| self.mixture_episode(&mixture, rng).map(|(_, e)| e))
            .collect()
    }
}
