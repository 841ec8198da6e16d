//! The toy world: a seeded synthetic task suite that mirrors the paper's
//! evaluation tasks (same template shapes, same metrics) at a size a tiny encoder-decoder
//! can learn on a CPU, so the whole ProMoT pipeline can be exercised in
//! minutes.
//!
//! Roles: `rte` and `en_fr` are the fine-tuning targets, the others are
//! in-context evaluation tasks; `fresh_rule` is solvable only from its
//! demonstrations and so measures in-context learning directly.
//!
//! Splits: every example is assigned to train, dev or test by a stable hash
//! of its task and input (10% test, 10% dev, 80% train), so a test input
//! never appears in train or dev (for translation: a test English sentence
//! appears in no language's train or dev). Knowledge-base facts are shared across
//! splits on purpose (closed-book QA: the facts are learned in pretraining);
//! only the question phrasing is held out.
//!
//! Prompts: a k-shot prompt is joined by the crate's one joiner
//! (`data::fewshot::build_prompt`) with the toy separator `DEMO_SEPARATOR`:
//! `demo_1 SEP demo_2 SEP ... demo_k SEP query`, `demo = input + " " + target`.
//! Demonstrations always come from the train split.

pub mod evaluation;
mod fresh_rule;
pub mod mixture;
pub mod tasks;
pub mod vocab;
pub mod world;

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::fewshot::build_prompt;
use crate::error::{Error, Result};
pub use fresh_rule::FreshRule;
pub use vocab::{build_tokenizer, SEPARATOR_TOKEN};
pub use world::{World, DEFAULT_WORLD_SEED};

/// Joins consecutive demonstrations, and the last one to the query. It is a
/// single token of the toy vocabulary (`SEPARATOR_TOKEN`) with spaces.
pub const DEMO_SEPARATOR: &str = " <sep> ";

/// Largest number of draws spent looking for an example of a given split
/// before giving up with an error (a split holds ~10% of draws).
const MAX_DRAWS: usize = 100_000;
/// Draws spent looking for a not-yet-used input before allowing repeats.
const MAX_DISTINCT_DRAWS: usize = 20_000;

/// One example: a prompt in the task's template shape, the expected output
/// and every acceptable output (the target first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    pub input: String,
    pub target: String,
    pub references: Vec<String>,
}

impl Example {
    /// An example whose only reference is its target.
    pub fn new(input: impl Into<String>, target: impl Into<String>) -> Example {
        let target = target.into();
        Example {
            input: input.into(),
            references: vec![target.clone()],
            target,
        }
    }
}

/// The toy tasks, named like the paper's tasks they stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskKind {
    Rte,
    Cb,
    Wic,
    TriviaQa,
    WebQuestions,
    EnFr,
    EnDe,
    EnRo,
    Xsum,
    FreshRule,
    /// Toy French to English: never in the pretraining mixture, a fine-tuning
    /// target only (see `TaskKind::targets`).
    FrEn,
}

impl TaskKind {
    /// The suite the toy model was pretrained on and is evaluated in context
    /// on, in a fixed order.
    pub fn all() -> [TaskKind; 10] {
        use TaskKind::*;
        [Rte, Cb, Wic, TriviaQa, WebQuestions, EnFr, EnDe, EnRo, Xsum, FreshRule]
    }

    /// Tasks the pretraining never showed, made to be fine-tuning targets with
    /// headroom (the pretrained model scores near 0 at any shot count).
    pub fn targets() -> [TaskKind; 1] {
        [TaskKind::FrEn]
    }

    /// The task's name as scripts and files spell it.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Rte => "rte",
            TaskKind::Cb => "cb",
            TaskKind::Wic => "wic",
            TaskKind::TriviaQa => "triviaqa",
            TaskKind::WebQuestions => "web_questions",
            TaskKind::EnFr => "en_fr",
            TaskKind::EnDe => "en_de",
            TaskKind::EnRo => "en_ro",
            TaskKind::Xsum => "xsum",
            TaskKind::FreshRule => "fresh_rule",
            TaskKind::FrEn => "fr_en",
        }
    }

    /// Parses a task name (see `name`).
    pub fn from_name(name: &str) -> Result<TaskKind> {
        let every = || TaskKind::all().into_iter().chain(TaskKind::targets());
        every().find(|t| t.name() == name).ok_or_else(|| {
            let known: Vec<&str> = every().map(|t| t.name()).collect();
            Error::msg(format!("unknown toy task '{name}' (known: {})", known.join(", ")))
        })
    }

    /// The metric the paper reports for the task this one stands in for:
    /// "accuracy", "exact_match", "bleu" or "rouge2".
    pub fn metric(self) -> &'static str {
        match self {
            TaskKind::Rte | TaskKind::Cb | TaskKind::Wic => "accuracy",
            TaskKind::TriviaQa | TaskKind::WebQuestions | TaskKind::FreshRule => "exact_match",
            TaskKind::EnFr | TaskKind::EnDe | TaskKind::EnRo | TaskKind::FrEn => "bleu",
            TaskKind::Xsum => "rouge2",
        }
    }

    /// The closed label set of a classification task, `None` otherwise.
    pub fn label_set(self) -> Option<Vec<&'static str>> {
        match self {
            TaskKind::Rte => crate::data::template::label_words("rte").ok(),
            TaskKind::Wic => crate::data::template::label_words("wic").ok(),
            TaskKind::Cb => crate::data::template::label_words("cb").ok(),
            _ => None,
        }
    }
}

/// A data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl Split {
    /// Parses "train", "dev" (or "validation") or "test".
    pub fn from_name(name: &str) -> Result<Split> {
        match name {
            "train" => Ok(Split::Train),
            "dev" | "validation" => Ok(Split::Dev),
            "test" => Ok(Split::Test),
            _ => Err(Error::msg(format!("unknown split '{name}' (known: train, dev, test)"))),
        }
    }

    /// The split an input of `task` belongs to, from a stable hash. The three
    /// translation tasks hash only the English sentence, so a held-out
    /// sentence is held out in every language.
    pub fn of(task: TaskKind, input: &str) -> Split {
        let (tag, key) = match task {
            TaskKind::EnFr | TaskKind::EnDe | TaskKind::EnRo => (
                "translation",
                input.split_once(": ").map_or(input, |(_, sentence)| sentence),
            ),
            _ => (task.name(), input),
        };
        match fnv1a(&[tag.as_bytes(), b"\0", key.as_bytes()]) % 100 {
            0..=9 => Split::Test,
            10..=19 => Split::Dev,
            _ => Split::Train,
        }
    }
}

/// 64-bit FNV-1a: a hash that is the same on every platform and Rust version.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The rng behind `examples`/`episodes`: one stream per (task, split, seed).
fn stream_rng(task: TaskKind, split: Split, k: usize, seed: u64) -> ChaCha8Rng {
    let tag = format!("{}/{split:?}/{k}", task.name());
    ChaCha8Rng::seed_from_u64(fnv1a(&[tag.as_bytes(), &seed.to_le_bytes()]))
}

/// Draws from `draw` until an example of `split` (with an input not in
/// `avoid`) comes up.
fn draw_in_split<R, F>(
    task: TaskKind,
    split: Split,
    avoid: &BTreeSet<String>,
    max_draws: usize,
    rng: &mut R,
    mut draw: F,
) -> Result<Example>
where
    R: Rng + ?Sized,
    F: FnMut(&mut R) -> Result<Example>,
{
    for _ in 0..max_draws {
        let example = draw(rng)?;
        if Split::of(task, &example.input) == split && !avoid.contains(&example.input) {
            return Ok(example);
        }
    }
    Err(Error::msg(format!(
        "toy {}: no new {split:?} example found in {max_draws} draws",
        task.name()
    )))
}

/// Joins demonstrations and a query into one prompt (see the module docs).
pub fn join_prompt(demonstrations: &[Example], query: &Example) -> Example {
    let demos: Vec<(String, String)> = demonstrations
        .iter()
        .map(|d| (d.input.clone(), d.target.clone()))
        .collect();
    Example {
        input: build_prompt(&query.input, &demos, DEMO_SEPARATOR),
        target: query.target.clone(),
        references: query.references.clone(),
    }
}

impl World {
    /// `n` examples of `task` from `split`, deterministic in `seed`. Within one
    /// call inputs are distinct while the split has enough of them; after that
    /// (small pools such as test questions) repeats are allowed.
    ///
    /// For `fresh_rule` each example has its own freshly drawn rule, so these
    /// are 0-shot items; build k-shot prompts with `episodes`, not by pairing
    /// these with other examples.
    pub fn examples(&self, task: TaskKind, split: &str, n: usize, seed: u64) -> Result<Vec<Example>> {
        let split = Split::from_name(split)?;
        let mut rng = stream_rng(task, split, 0, seed);
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let generate = |r: &mut ChaCha8Rng| self.generate(task, r);
            let example = match draw_in_split(task, split, &seen, MAX_DISTINCT_DRAWS, &mut rng, generate) {
                Ok(example) => example,
                Err(_) => {
                    seen.clear();
                    draw_in_split(task, split, &seen, MAX_DRAWS, &mut rng, generate)?
                }
            };
            seen.insert(example.input.clone());
            out.push(example);
        }
        Ok(out)
    }

    /// A k-shot training episode (query and demonstrations from train).
    pub fn episode<R: Rng + ?Sized>(&self, task: TaskKind, k: usize, rng: &mut R) -> Result<Example> {
        self.episode_in(task, Split::Train, k, rng)
    }

    /// A k-shot episode whose query comes from `split` and whose `k`
    /// demonstrations come from train (distinct, and distinct from the
    /// query). For `fresh_rule` one rule is drawn for the whole episode.
    pub fn episode_in<R: Rng + ?Sized>(&self, task: TaskKind, split: Split, k: usize, rng: &mut R) -> Result<Example> {
        let (demos, query) = self.episode_parts(task, split, k, rng)?;
        Ok(join_prompt(&demos, &query))
    }

    /// The demonstrations and the query of an episode (see `episode_in`), not yet joined.
    pub(crate) fn episode_parts<R: Rng + ?Sized>(
        &self,
        task: TaskKind,
        split: Split,
        k: usize,
        rng: &mut R,
    ) -> Result<(Vec<Example>, Example)> {
        // A fresh-rule episode draws one rule for its query and every demonstration.
        let rule = match task {
            TaskKind::FreshRule => Some(FreshRule::draw(self, rng)?),
            _ => None,
        };
        let generate = |r: &mut R| match &rule {
            Some(rule) => rule.example(self, r),
            None => self.generate(task, r),
        };
        let mut used = BTreeSet::new();
        let query = draw_in_split(task, split, &used, MAX_DRAWS, rng, generate)?;
        used.insert(query.input.clone());
        let mut demos = Vec::with_capacity(k);
        for _ in 0..k {
            let demo = match draw_in_split(task, Split::Train, &used, MAX_DISTINCT_DRAWS, rng, generate) {
                Ok(demo) => demo,
                Err(_) => draw_in_split(task, Split::Train, &BTreeSet::new(), MAX_DRAWS, rng, generate)?,
            };
            used.insert(demo.input.clone());
            demos.push(demo);
        }
        Ok((demos, query))
    }

    /// `n` k-shot episodes with queries from `split`, deterministic in `seed`:
    /// the evaluation sets of the toy suite.
    pub fn episodes(&self, task: TaskKind, split: &str, k: usize, n: usize, seed: u64) -> Result<Vec<Example>> {
        let split = Split::from_name(split)?;
        let mut rng = stream_rng(task, split, k, seed);
        (0..n).map(|_| self.episode_in(task, split, k, &mut rng)).collect()
    }
}
