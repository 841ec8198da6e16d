//! The toy world in scripts: its examples, pretraining episodes, evaluation
//! tasks, and randomly initialised toy models that use its tokenizer. This is
//! what `scripts/pretrain_toy.rhai` builds the built-in `load_model("toy")`
//! model with.
//!
//! Every function uses the canonical world (`DEFAULT_WORLD_SEED`), built once.
//! Toy evaluation tasks carry ready-made k-shot prompts (`episodes`) joined
//! with the toy separator, so `evaluate` uses them verbatim instead of
//! building prompts with the paper's joiner.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rhai::{Array, Dynamic, Engine, Map, INT};

use super::model::{default_device, usize_arg, ScriptModel};
use super::tensor::reg;
use super::{to_rhai, RResult};
use crate::model::toy_config::ToyModelConfig;
use crate::tokenizer::Tokenizer;
use crate::toy::evaluation::DEFAULT_SHOTS;
use crate::toy::mixture::{Mixture, MixtureOptions};
use crate::toy::{build_tokenizer, Example, TaskKind, World};

/// Most examples one call may ask for: far more than any toy run needs, and
/// small enough that a mistyped count fails fast instead of exhausting memory.
const MAX_EXAMPLES: usize = 1_000_000;
/// Largest demonstration count a pretraining episode or a task may use.
const MAX_SHOTS: usize = 16;
/// The canonical world, built on first use.
fn world() -> RResult<&'static World> {
    Ok(crate::toy::evaluation::canonical_world()?)
}

fn count_arg(what: &str, n: INT) -> RResult<usize> {
    let n = usize_arg(what, n)?;
    if n > MAX_EXAMPLES {
        return Err(to_rhai(format!("{what} must be at most {MAX_EXAMPLES}, got {n}")));
    }
    Ok(n)
}

fn shots_arg(what: &str, k: INT) -> RResult<usize> {
    let k = usize_arg(what, k)?;
    if k > MAX_SHOTS {
        return Err(to_rhai(format!("{what} must be at most {MAX_SHOTS}, got {k}")));
    }
    Ok(k)
}

/// Seeds may be any int; negative ones are reinterpreted, not rejected.
fn seed_arg(seed: INT) -> u64 {
    seed as u64
}

/// An example as a script map #{input, target, references, task}.
fn example_map(e: &Example, task: TaskKind) -> Dynamic {
    let mut m = Map::new();
    m.insert("input".into(), e.input.clone().into());
    m.insert("target".into(), e.target.clone().into());
    m.insert(
        "references".into(),
        e.references
            .iter()
            .map(|r| Dynamic::from(r.clone()))
            .collect::<Array>()
            .into(),
    );
    m.insert("task".into(), task.name().into());
    Dynamic::from(m)
}

fn toy_examples(task: &str, split: &str, n: INT, seed: INT) -> RResult<Array> {
    let kind = TaskKind::from_name(task).map_err(to_rhai)?;
    let n = count_arg("toy_examples n", n)?;
    let examples = world()?.examples(kind, split, n, seed_arg(seed)).map_err(to_rhai)?;
    Ok(examples.iter().map(|e| example_map(e, kind)).collect())
}

fn toy_episodes(task: &str, split: &str, k: INT, n: INT, seed: INT) -> RResult<Array> {
    let kind = TaskKind::from_name(task).map_err(to_rhai)?;
    let k = shots_arg("toy_episodes k", k)?;
    let n = count_arg("toy_episodes n", n)?;
    let episodes = world()?.episodes(kind, split, k, n, seed_arg(seed)).map_err(to_rhai)?;
    Ok(episodes.iter().map(|e| example_map(e, kind)).collect())
}

/// `n` draws of the pretraining mixture (`World::mixture_episode`), each
/// keeping its task name.
fn toy_pretrain_data(n: INT, seed: INT, options: &MixtureOptions) -> RResult<Array> {
    let n = count_arg("toy_pretrain_data n", n)?;
    shots_arg("toy_pretrain_data k_max", options.k_max as INT)?;
    let mixture = Mixture::new(options).map_err(to_rhai)?;
    let world = world()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed_arg(seed));
    let mut out = Array::with_capacity(n);
    for _ in 0..n {
        if super::interrupt::interrupted() {
            return Err(to_rhai("toy_pretrain_data: interrupted"));
        }
        let (task, episode) = world.mixture_episode(&mixture, &mut rng).map_err(to_rhai)?;
        out.push(example_map(&episode, task));
    }
    Ok(out)
}

/// An evaluation task map (`crate::toy::evaluation::eval_task`) with `n`
/// test episodes for each shot count in `shots`.
fn toy_task_with_shots(name: &str, n: INT, seed: INT, shots: &[usize]) -> RResult<Map> {
    let kind = TaskKind::from_name(name).map_err(to_rhai)?;
    let n = count_arg("toy_task n", n)?;
    let task = crate::toy::evaluation::eval_task(kind, n, seed_arg(seed), shots)?;
    rhai::serde::to_dynamic(&task)?
        .try_cast::<Map>()
        .ok_or_else(|| to_rhai("toy_task: the task is not a map"))
}

fn shots_list(shots: &Array) -> RResult<Vec<usize>> {
    if shots.is_empty() {
        return Err(to_rhai("toy_task shots must list at least one shot count"));
    }
    let mut out: Vec<usize> = shots
        .iter()
        .map(|k| {
            k.as_int()
                .map_err(|_| to_rhai("toy_task shots must be ints"))
                .and_then(|k| shots_arg("toy_task shot count", k))
        })
        .collect::<RResult<_>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn toy_eval_tasks(n: INT, seed: INT) -> RResult<Array> {
    TaskKind::all()
        .iter()
        .map(|t| toy_task_with_shots(t.name(), n, seed, &DEFAULT_SHOTS).map(Dynamic::from))
        .collect()
}

fn new_toy_model(o: Map, seed: INT) -> RResult<ScriptModel> {
    let tokenizer = Tokenizer::from_tokenizers(build_tokenizer(world()?).map_err(to_rhai)?);
    let options: ToyModelConfig = super::options::parse("new_toy_model", &o, &[])?;
    let model = options
        .random_model(tokenizer.vocab_size(), seed_arg(seed), &default_device()?)
        .map_err(to_rhai)?;
    Ok(ScriptModel::new(
        model,
        tokenizer,
        "toy (random init)",
        crate::toy::DEMO_SEPARATOR.into(),
    ))
}

pub fn register(engine: &mut Engine) {
    reg(
        engine,
        "toy_tasks",
        &["Array"],
        "The toy world's task names: the suite the toy model was pretrained on, evaluated in context.",
        || -> Array {
            TaskKind::all()
                .iter()
                .map(|t| Dynamic::from(t.name().to_string()))
                .collect()
        },
    );
    reg(
        engine,
        "toy_targets",
        &["Array"],
        "Toy tasks the pretraining never showed, made as fine-tuning targets with headroom: fr_en (toy French to English; \
         the pretrained model copies the French at 0, 1 and 4 shots). toy_examples and toy_task take them too.",
        || -> Array {
            TaskKind::targets()
                .iter()
                .map(|t| Dynamic::from(t.name().to_string()))
                .collect()
        },
    );
    reg(
        engine,
        "toy_examples",
        &["task: &str", "split: &str", "n: int", "seed: int", "Array"],
        "n toy examples #{input, target, references, task} of a split (\"train\", \"dev\", \"test\").",
        toy_examples,
    );
    reg(
        engine,
        "toy_episodes",
        &["task: &str", "split: &str", "k: int", "n: int", "seed: int", "Array"],
        "n k-shot toy episodes whose queries come from a split (demonstrations from train).",
        toy_episodes,
    );
    reg(
        engine,
        "toy_pretrain_data",
        &["n: int", "seed: int", "Array"],
        "n toy pretraining episodes #{input, target, task}: any task, k-shot with k uniform in 0..=4.",
        |n: INT, seed: INT| toy_pretrain_data(n, seed, &MixtureOptions::default()),
    );
    reg(
        engine,
        "toy_pretrain_data",
        &["n: int", "seed: int", "k_max: int", "Array"],
        "n toy pretraining episodes with k uniform in 0..=k_max.",
        |n: INT, seed: INT, k_max: INT| {
            let k_max = shots_arg("toy_pretrain_data k_max", k_max)?;
            toy_pretrain_data(
                n,
                seed,
                &MixtureOptions {
                    k_max,
                    ..MixtureOptions::default()
                },
            )
        },
    );
    let doc = super::options::doc_with_options::<MixtureOptions>(
        "n toy pretraining episodes drawn from the mixture these options set (tasks, k range, alternate formats).",
        &[],
    );
    reg(
        engine,
        "toy_pretrain_data",
        &["n: int", "seed: int", "options: Map", "Array"],
        &doc,
        |n: INT, seed: INT, o: Map| {
            let options: MixtureOptions = super::options::parse("toy_pretrain_data", &o, &[])?;
            toy_pretrain_data(n, seed, &options)
        },
    );
    reg(
        engine,
        "toy_task",
        &["name: &str", "n: int", "seed: int", "Map"],
        "A toy evaluation task with n test episodes at 0, 1 and 4 shots (for evaluate).",
        |name: &str, n: INT, seed: INT| toy_task_with_shots(name, n, seed, &DEFAULT_SHOTS),
    );
    reg(
        engine,
        "toy_task",
        &["name: &str", "n: int", "seed: int", "shots: Array", "Map"],
        "A toy evaluation task with n test episodes at each listed shot count.",
        |name: &str, n: INT, seed: INT, shots: Array| toy_task_with_shots(name, n, seed, &shots_list(&shots)?),
    );
    reg(
        engine,
        "toy_eval_tasks",
        &["n: int", "seed: int", "Array"],
        "Every toy task (toy_task) with n test episodes at 0, 1 and 4 shots.",
        toy_eval_tasks,
    );
    let doc = super::options::doc_with_options::<ToyModelConfig>(
        "A randomly initialised toy model (encoder-decoder, sized by these options) with the toy tokenizer.",
        &[],
    );
    reg(
        engine,
        "new_toy_model",
        &["config: Map", "seed: int", "Model"],
        &doc,
        new_toy_model,
    );
}
