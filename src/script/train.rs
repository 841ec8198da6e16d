//! Soft prompts, training and gradient probes in scripts.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;
use rhai::{Array, Dynamic, Engine, FnPtr, Map, NativeCallContext, INT};

use super::model::{map_float, strings, usize_arg, ScriptModel};
use super::options;
use super::tensor::reg;
use super::{to_rhai, RResult};
use crate::prompt::{Init, SoftPrompt};
use crate::train::{self, gradients, Evaluation, Example, Hooks, TaskData, TrainConfig, TrainOptions};

/// A prompt for model `m`, seeded by `seed` and its name (see `SoftPrompt::new`).
fn make_prompt(m: &mut ScriptModel, length: INT, init: Dynamic, name: &str, seed: INT) -> RResult<SoftPrompt> {
    let length = usize_arg("soft_prompt length", length)?;
    let init = match init.read_lock::<Tensor>().map(|t| t.clone()) {
        Some(t) => Init::Tensor(t),
        None => {
            let s = init
                .into_immutable_string()
                .map_err(|t| to_rhai(format!("soft_prompt: init must be a string or a Tensor, got {t}")))?;
            Init::from_name(&s, &m.tokenizer).map_err(to_rhai)?
        }
    };
    let p = SoftPrompt::new(name, m.lm(), length, init, seed as u64).map_err(to_rhai)?;
    if let Ok(mut prompts) = m.prompts.lock() {
        prompts.insert(name.to_string(), p.clone());
    }
    Ok(p)
}

/// Examples from an array of #{input, target} maps (task defaults to `task`).
pub fn examples(what: &str, data: &Array, task: &str) -> RResult<Vec<Example>> {
    data.iter()
        .enumerate()
        .map(|(i, d)| {
            let m = d
                .read_lock::<Map>()
                .ok_or_else(|| to_rhai(format!("{what}: item {i} is not a map #{{input, target}}")))?;
            let field = |k: &str| -> RResult<String> {
                let v = m
                    .get(k)
                    .ok_or_else(|| to_rhai(format!("{what}: item {i} has no '{k}'")))?;
                if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
                    return Ok(s.to_string());
                }
                // A target may be a list of references; train on the first.
                strings(what, v)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| to_rhai(format!("{what}: item {i} has an empty '{k}'")))
            };
            let task = match m.get("task") {
                Some(t) => t.to_string(),
                None => task.to_string(),
            };
            Ok(Example {
                input: field("input")?,
                target: field("target")?,
                task,
            })
        })
        .collect()
}

fn prompt_arg(v: &Dynamic, key: &str) -> RResult<SoftPrompt> {
    v.read_lock::<SoftPrompt>()
        .map(|p| p.clone())
        .ok_or_else(|| to_rhai(format!("option '{key}' must be a Prompt (from soft_prompt)")))
}

/// `train`'s options that are not data: read here, not by `TrainConfig`.
const TRAIN_EXTRA: [(&str, &str); 4] = [
    ("prompt", "the Prompt attached to every example (none)"),
    ("prompts", "a map task -> Prompt, for multi-task data (none)"),
    (
        "ratios",
        "a map task -> mixing share (default: proportional to example counts)",
    ),
    (
        "evaluate",
        "a function |step| -> score (or #{score, stop}: stop = true ends the run there, its goal reached), called every \
         eval_every steps (none)",
    ),
];

/// The trainer's options from a script map: data options through
/// `TrainConfig`, the separator defaulting to the model's, then the prompts.
fn train_options(m: &ScriptModel, o: &Map) -> RResult<TrainOptions> {
    let config: TrainConfig = options::parse("train", o, &TRAIN_EXTRA)?;
    let mut opts = m.train_options(&config)?;
    if let Some(p) = o.get("prompt").filter(|p| !p.is_unit()) {
        opts.prompt = Some(prompt_arg(p, "prompt")?);
    }
    if let Some(ps) = o.get("prompts").filter(|p| !p.is_unit()) {
        let ps = ps
            .read_lock::<Map>()
            .ok_or_else(|| to_rhai("option 'prompts' must be a map from task name to Prompt"))?;
        for (task, p) in ps.iter() {
            opts.task_prompts.insert(task.to_string(), prompt_arg(p, "prompts")?);
        }
    }
    Ok(opts)
}

/// Training data: an array of examples (one task) or a map task -> array (multi-task).
fn task_data(data: &Dynamic, o: &Map) -> RResult<Vec<TaskData>> {
    if let Some(arr) = data.read_lock::<Array>() {
        return Ok(vec![TaskData::new("default", examples("train data", &arr, "default")?)]);
    }
    let map = data.read_lock::<Map>().ok_or_else(|| {
        to_rhai("train: data must be an array of #{input, target} or a map from task name to such an array")
    })?;
    let ratios = o
        .get("ratios")
        .and_then(|r| r.read_lock::<Map>().map(|m| m.clone()))
        .unwrap_or_default();
    let mut out = Vec::new();
    for (task, arr) in map.iter() {
        let arr = arr
            .read_lock::<Array>()
            .ok_or_else(|| to_rhai(format!("train: data for task '{task}' is not an array")))?;
        let mut data = TaskData::new(task, examples("train data", &arr, task)?);
        if let Some(r) = ratios.get(task.as_str()) {
            data.ratio = r
                .as_float()
                .or_else(|_| r.as_int().map(|i| i as f64))
                .map_err(|_| to_rhai(format!("ratio of '{task}' must be a number")))?;
        }
        out.push(data);
    }
    Ok(out)
}

fn history_map(h: &train::History) -> Map {
    let mut m = Map::new();
    m.insert(
        "losses".into(),
        h.losses.iter().map(|l| Dynamic::from(*l)).collect::<Array>().into(),
    );
    m.insert(
        "evals".into(),
        h.evals
            .iter()
            .map(|(s, v)| Dynamic::from(vec![Dynamic::from(*s as INT), Dynamic::from(*v)]))
            .collect::<Array>()
            .into(),
    );
    m.insert(
        "best_step".into(),
        h.best.map(|b| Dynamic::from(b.0 as INT)).unwrap_or(Dynamic::UNIT),
    );
    m.insert(
        "best_score".into(),
        h.best.map(|b| Dynamic::from(b.1)).unwrap_or(Dynamic::UNIT),
    );
    m.insert("steps_per_sec".into(), h.steps_per_sec.into());
    m.insert(
        "final_loss".into(),
        h.losses.last().map(|l| Dynamic::from(*l)).unwrap_or(Dynamic::UNIT),
    );
    m.insert(
        "stopped".into(),
        h.stopped_early.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    );
    m.insert(
        "goal_step".into(),
        h.goal_step.map(|s| Dynamic::from(s as INT)).unwrap_or(Dynamic::UNIT),
    );
    m
}

/// What an `evaluate` function returned: a score, or #{score, stop}.
fn evaluation(r: &Dynamic) -> std::result::Result<Evaluation, String> {
    let number = |v: &Dynamic| v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64));
    if let Some(score) = number(r) {
        return Ok(score.into());
    }
    let bad = || {
        format!(
            "eval function must return a number or #{{score: number, stop: bool}}, got {}",
            r.type_name()
        )
    };
    let map = r.read_lock::<Map>().ok_or_else(bad)?;
    let score = map.get("score").and_then(number).ok_or_else(bad)?;
    let stop = match map.get("stop") {
        None => false,
        Some(s) => s.as_bool().map_err(|_| bad())?,
    };
    Ok(Evaluation { score, stop })
}

fn run_train(ctx: NativeCallContext, m: &mut ScriptModel, data: Dynamic, o: Map) -> RResult<Map> {
    let mut opts = train_options(m, &o)?;
    let tasks = task_data(&data, &o)?;
    let config: TrainConfig = options::parse("train", &o, &TRAIN_EXTRA)?;
    m.describe_run(&mut opts, &config, &tasks)?;
    let eval_fn: Option<FnPtr> = match o.get("evaluate") {
        None => None,
        Some(f) => Some(f.clone().try_cast::<FnPtr>().ok_or_else(|| {
            to_rhai("option 'evaluate' must be a function (e.g. |step| evaluate(...)) returning a number")
        })?),
    };
    let mut script_error = None;
    let mut eval_closure = |step: usize| -> crate::Result<Evaluation> {
        let f = eval_fn.as_ref().ok_or_else(|| crate::Error::msg("no eval function"))?;
        let r: Dynamic = f.call_within_context(&ctx, (step as INT,)).map_err(|e| {
            let msg = format!("eval function failed: {e}");
            script_error = Some(e);
            crate::Error::msg(msg)
        })?;
        evaluation(&r).map_err(crate::Error::msg)
    };
    let hooks = Hooks {
        evaluate: if eval_fn.is_some() {
            Some(&mut eval_closure)
        } else {
            None
        },
        should_stop: &crate::interrupt::interrupted,
    };
    let result = train::train(m.lm(), &m.tokenizer, tasks, &opts, hooks);
    match result {
        Ok(h) => Ok(history_map(&h)),
        Err(e) => Err(script_error.unwrap_or_else(|| to_rhai(e))),
    }
}

fn gradients_of(m: &mut ScriptModel, data: Array, o: Map) -> RResult<Map> {
    // `params`: only these parameters' gradients (the probe then keeps only
    // the activations above the first of them); the rest are train options.
    let mut o = o;
    let only = match o.remove("params") {
        Some(names) if !names.is_unit() => Some(strings("gradients params", &names)?),
        _ => None,
    };
    let mut opts = train_options(m, &o)?;
    // A gradient probe measures the plain loss unless told otherwise.
    opts.label_smoothing = map_float(&o, "label_smoothing", 0.0)?;
    let exs = examples("gradients", &data, "default")?;
    let batch = train::Batch {
        inputs: m.encode_inputs(
            &exs.iter().map(|e| e.input.clone()).collect::<Vec<_>>(),
            opts.batch.max_input_len,
        )?,
        targets: m.encode_targets(
            &exs.iter().map(|e| e.target.clone()).collect::<Vec<_>>(),
            opts.batch.max_target_len,
        )?,
        tasks: exs.iter().map(|e| e.task.clone()).collect(),
    };
    let g = gradients::batch_gradients(m.lm(), &batch, &opts, only.as_deref()).map_err(to_rhai)?;
    Ok(g.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))).collect())
}

fn tensor_map(what: &str, m: &Map) -> RResult<BTreeMap<String, Tensor>> {
    m.iter()
        .map(|(k, v)| {
            Ok((
                k.to_string(),
                v.read_lock::<Tensor>()
                    .map(|t| t.clone())
                    .ok_or_else(|| to_rhai(format!("{what}: '{k}' is not a Tensor")))?,
            ))
        })
        .collect()
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<SoftPrompt>("Prompt");
    reg(
        engine,
        "to_string",
        &["p: Prompt", "String"],
        "A prompt's name, shape and whether it trains.",
        |p: &mut SoftPrompt| {
            format!(
                "Prompt('{}', {} x {}, {})",
                p.name,
                p.len(),
                p.width(),
                if p.is_trainable() { "trainable" } else { "frozen" }
            )
        },
    );
    reg(
        engine,
        "to_debug",
        &["p: Prompt", "String"],
        "A prompt's name and shape.",
        |p: &mut SoftPrompt| format!("Prompt('{}', {} x {})", p.name, p.len(), p.width()),
    );
    reg(engine, "soft_prompt", &["m: Model", "length: int", "init: String|Tensor", "Prompt"], "A trainable soft prompt named \"default\", seed 0: init \"uniform\" (±0.5), \"vocab\" (top-5000 token embeddings), \"text:...\" or a Tensor.", |m: &mut ScriptModel, n: INT, init: Dynamic| make_prompt(m, n, init, "default", 0));
    reg(
        engine,
        "soft_prompt",
        &["m: Model", "length: int", "init: String|Tensor", "name: &str", "Prompt"],
        "A named soft prompt (one per task), seed 0.",
        |m: &mut ScriptModel, n: INT, init: Dynamic, name: &str| make_prompt(m, n, init, name, 0),
    );
    reg(
        engine,
        "soft_prompt",
        &[
            "m: Model",
            "length: int",
            "init: String|Tensor",
            "name: &str",
            "seed: int",
            "Prompt",
        ],
        "A named soft prompt whose random init depends only on (seed, name).",
        make_prompt,
    );
    reg(
        engine,
        "prompt",
        &["m: Model", "name: &str", "Prompt"],
        "The model's soft prompt called `name`.",
        |m: &mut ScriptModel, name: &str| -> RResult<SoftPrompt> {
            m.prompts
                .lock()
                .ok()
                .and_then(|p| p.get(name).cloned())
                .ok_or_else(|| to_rhai(format!("the model has no prompt named '{name}'")))
        },
    );
    reg(
        engine,
        "freeze",
        &["p: Prompt", "()"],
        "Freeze a prompt (it stays attached but no longer trains).",
        |p: &mut SoftPrompt| p.freeze(),
    );
    reg(
        engine,
        "unfreeze",
        &["p: Prompt", "()"],
        "Make a prompt trainable.",
        |p: &mut SoftPrompt| p.unfreeze(),
    );
    reg(
        engine,
        "len",
        &["p: Prompt", "int"],
        "Prompt length (virtual tokens).",
        |p: &mut SoftPrompt| p.len() as INT,
    );
    reg(
        engine,
        "values",
        &["p: Prompt", "Tensor"],
        "A copy of the prompt's embeddings (p, d).",
        |p: &mut SoftPrompt| -> RResult<Tensor> { p.param().var().as_tensor().copy().map_err(to_rhai) },
    );
    reg(
        engine,
        "is_trainable",
        &["p: Prompt", "bool"],
        "Whether the prompt trains.",
        |p: &mut SoftPrompt| p.is_trainable(),
    );
    reg(
        engine,
        "save",
        &["p: Prompt", "path: &str", "()"],
        "Save a prompt as safetensors.",
        |p: &mut SoftPrompt, path: &str| p.save(Path::new(path)).map_err(to_rhai),
    );
    reg(
        engine,
        "export_peft",
        &["p: Prompt", "dir: &str", "base_model: &str", "()"],
        "Write a PEFT prompt-tuning adapter (adapter_model.safetensors + adapter_config.json).",
        |p: &mut SoftPrompt, dir: &str, base: &str| {
            p.export_peft(Path::new(dir), base, p.peft_task_type()).map_err(to_rhai)
        },
    );
    reg(
        engine,
        "load_prompt",
        &["m: Model", "path: &str", "name: &str", "Prompt"],
        "Load a saved prompt or a PEFT adapter directory.",
        |m: &mut ScriptModel, path: &str, name: &str| -> RResult<SoftPrompt> {
            let p = SoftPrompt::load(name, Path::new(path), m.lm()).map_err(to_rhai)?;
            if let Ok(mut ps) = m.prompts.lock() {
                ps.insert(name.to_string(), p.clone());
            }
            Ok(p)
        },
    );
    let doc = options::doc_with_options::<TrainConfig>(
        "Train what is trainable (model and attached prompts); returns the history #{losses, evals, best_step, ...}.",
        &TRAIN_EXTRA,
    );
    reg(
        engine,
        "train",
        &["m: Model", "data: Array|Map", "opts: Map", "Map"],
        &doc,
        run_train,
    );
    reg(
        engine,
        "clear_checkpoints",
        &["dir: &str", "()"],
        "Remove the training checkpoints in a directory (only promot's step-* folders and 'latest').",
        |dir: &str| -> RResult<()> { crate::train::checkpoint::clear(Path::new(dir)).map_err(to_rhai) },
    );
    reg(
        engine,
        "train_option_names",
        &["Array"],
        "The option names `train` accepts.",
        || -> Array {
            crate::options::names::<TrainConfig>(&TRAIN_EXTRA)
                .into_iter()
                .map(Dynamic::from)
                .collect()
        },
    );
    reg(
        engine,
        "gradients",
        &["m: Model", "data: Array", "opts: Map", "Map"],
        "Gradient of the loss on a batch for every model parameter, by name (dropout off); with opts.params (names), for those only.",
        gradients_of,
    );
    reg(
        engine,
        "grad_cosine",
        &["a: Map", "b: Map", "names: Array", "float"],
        "Cosine similarity between two gradient sets over the named parameters.",
        |a: Map, b: Map, names: Array| -> RResult<f64> {
            let names = strings("grad_cosine names", &Dynamic::from(names))?;
            gradients::group_cosine(&tensor_map("grad_cosine", &a)?, &tensor_map("grad_cosine", &b)?, &names)
                .map_err(to_rhai)
        },
    );
    reg(
        engine,
        "shuffle_labels",
        &["data: Array", "seed: int", "Array"],
        "The same examples with targets shuffled across them (\"format only\" data).",
        |data: Array, seed: INT| -> RResult<Array> {
            let ex = examples("shuffle_labels", &data, "default")?;
            Ok(gradients::shuffle_labels(&ex, seed as u64)
                .into_iter()
                .map(|e| {
                    let mut m = Map::new();
                    m.insert("input".into(), e.input.into());
                    m.insert("target".into(), e.target.into());
                    m.insert("task".into(), e.task.into());
                    Dynamic::from(m)
                })
                .collect())
        },
    );
}
