//! The toy world's evaluation tasks as `EvalTask`s: `n` test queries, a
//! train pool, and ready-made k-shot prompts (`episodes`, joined with the toy
//! separator) for each shot count, so evaluation uses them verbatim. Scripts
//! (`toy_task`) and Rust callers get the same tasks.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::vocab::split_words;
use super::{Example, TaskKind, World};
use crate::data::postprocess::OutputKind;
use crate::error::{Error, Result};
use crate::eval::{EvalExample, EvalTask, Metric};

/// The shot counts a toy task has episodes for unless told otherwise.
pub const DEFAULT_SHOTS: [usize; 3] = [0, 1, 4];
/// Tokens a classification answer may take (the label, then EOS).
const CLASSIFICATION_NEW_TOKENS: usize = 4;
/// Tokens a generated answer may take beyond the longest reference.
const GENERATION_SLACK_TOKENS: usize = 8;

/// The canonical world (`DEFAULT_WORLD_SEED`), built once.
pub fn canonical_world() -> Result<&'static World> {
    static WORLD: OnceLock<std::result::Result<World, String>> = OnceLock::new();
    WORLD
        .get_or_init(|| World::default_world().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::msg(e.clone()))
}

/// How many tokens a task's answers may take when generated.
fn max_new_tokens(kind: TaskKind, episodes: &[Vec<Example>]) -> usize {
    if kind.label_set().is_some() {
        return CLASSIFICATION_NEW_TOKENS;
    }
    let longest = episodes
        .iter()
        .flatten()
        .flat_map(|e| e.references.iter())
        .map(|r| split_words(r).len())
        .max()
        .unwrap_or(0);
    longest + GENERATION_SLACK_TOKENS
}

/// A toy example as an evaluation example: its input, scored against its target.
fn eval_example(e: &Example) -> EvalExample {
    EvalExample::new(e.input.clone(), vec![e.target.clone()])
}

/// The evaluation task of `kind` with `n` test episodes for each shot count in `shots`.
pub fn eval_task(kind: TaskKind, n: usize, seed: u64, shots: &[usize]) -> Result<EvalTask> {
    if n == 0 {
        return Err(Error::msg("toy_task n must be at least 1"));
    }
    let world = canonical_world()?;
    let by_shots = shots
        .iter()
        .map(|&k| world.episodes(kind, "test", k, n, seed))
        .collect::<Result<Vec<_>>>()?;
    let episodes: BTreeMap<usize, Vec<EvalExample>> = shots
        .iter()
        .zip(&by_shots)
        .map(|(&k, list)| (k, list.iter().map(eval_example).collect()))
        .collect();
    // Plain 0-shot queries as `examples`, for shot counts without episodes;
    // the pool is train data (fresh_rule's pool is meaningless and unused
    // as long as its episodes are given).
    let queries = world.examples(kind, "test", n, seed)?;
    let pool = world.examples(kind, "train", n.max(16), seed)?;
    let labels = kind.label_set();
    Ok(EvalTask {
        name: kind.name().into(),
        metric: Metric::from_name(kind.metric())?,
        kind: match labels {
            Some(_) => OutputKind::Classification,
            None => OutputKind::Generation,
        },
        examples: queries.iter().map(eval_example).collect(),
        pool: pool.iter().map(eval_example).collect(),
        template: None,
        caps: Vec::new(),
        pool_is_eval: false,
        max_new_tokens: max_new_tokens(kind, &by_shots),
        episodes,
        labels: labels.unwrap_or_default().iter().map(|l| l.to_string()).collect(),
    })
}

/// Every toy task, with episodes for `DEFAULT_SHOTS`.
pub fn eval_tasks(n: usize, seed: u64) -> Result<Vec<EvalTask>> {
    TaskKind::all()
        .iter()
        .map(|&t| eval_task(t, n, seed, &DEFAULT_SHOTS))
        .collect()
}
