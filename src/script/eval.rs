//! Data readers, templates, post-processing, metrics and the in-context
//! evaluation harness in scripts. Tasks themselves are defined in Rhai
//! (stdlib/tasks.rhai) as maps over these readers, so adding a task needs no
//! Rust.

use std::path::{Path, PathBuf};

use rhai::{Array, Dynamic, Engine, Map, INT};
use serde_json::Value;

use super::model::{map_str, strings, usize_arg, ScriptModel};
use super::options;
use super::tensor::reg;
use super::{to_rhai, RResult};
use crate::data::{fewshot, postprocess as post, readers, template};
use crate::eval::comparison::Comparison;
use crate::eval::interval::{Bootstrap, Estimate};
use crate::eval::preconditions;
use crate::eval::{table, EvalOptions, EvalTask, ResultTable};
use crate::metrics;
use crate::prompt::SoftPrompt;

/// JSON -> Rhai value (objects become maps, arrays arrays).
pub fn json_to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => (i as INT).into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.clone().into(),
        Value::Array(a) => a.iter().map(json_to_dynamic).collect::<Array>().into(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
            .collect::<Map>()
            .into(),
    }
}

/// Rhai value -> JSON (for templates and saving).
pub fn dynamic_to_json(d: &Dynamic) -> Value {
    if d.is_unit() {
        Value::Null
    } else if let Ok(b) = d.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = d.as_int() {
        Value::from(i)
    } else if let Ok(f) = d.as_float() {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    } else if let Some(s) = d.read_lock::<rhai::ImmutableString>() {
        Value::String(s.to_string())
    } else if let Some(a) = d.read_lock::<Array>() {
        Value::Array(a.iter().map(dynamic_to_json).collect())
    } else if let Some(m) = d.read_lock::<Map>() {
        Value::Object(m.iter().map(|(k, v)| (k.to_string(), dynamic_to_json(v))).collect())
    } else if let Some(t) = d.read_lock::<ResultTable>() {
        t.to_json()
    } else {
        Value::String(d.to_string())
    }
}

/// A path relative to promot's home (where stdlib/ and data/ live), unless absolute or present here.
pub fn home_path(rel: &str) -> PathBuf {
    crate::home::resolve(rel)
}

/// A task map (stdlib/tasks.rhai, `toy_task`; its form: `eval::forms`) -> EvalTask.
pub fn eval_task(d: &Dynamic) -> RResult<EvalTask> {
    let name = d
        .read_lock::<Map>()
        .ok_or_else(|| to_rhai("evaluate: each task must be a map (see stdlib/tasks.rhai)"))?
        .get("name")
        .map(|n| n.to_string())
        .unwrap_or_else(|| "task".into());
    let task: EvalTask =
        rhai::serde::from_dynamic(d).map_err(|e| to_rhai(format!("task {name}: {}", e.to_string().trim())))?;
    task.check()?;
    Ok(task)
}

/// `evaluate`'s options that are not data.
const EVAL_EXTRA: [(&str, &str); 1] = [("prompt", "a Prompt attached to every query (none)")];

/// Evaluation options from a script map (the separator, unless given, is
/// the model's: `Session::evaluate` fills it in).
fn eval_options(o: &Map) -> RResult<EvalOptions> {
    let mut opts: EvalOptions = options::parse("evaluate", o, &EVAL_EXTRA)?;
    opts.prompt = match o.get("prompt") {
        Some(p) if !p.is_unit() => Some(
            p.read_lock::<SoftPrompt>()
                .map(|p| p.clone())
                .ok_or_else(|| to_rhai("option 'prompt' must be a Prompt"))?,
        ),
        _ => None,
    };
    Ok(opts)
}

fn run_evaluate(m: &mut ScriptModel, tasks: Dynamic, o: Map) -> RResult<ResultTable> {
    let opts = eval_options(&o)?;
    let tasks: Vec<EvalTask> = match tasks.read_lock::<Array>() {
        Some(a) => a.iter().map(eval_task).collect::<RResult<_>>()?,
        None => vec![eval_task(&tasks)?],
    };
    Ok(m.evaluate(&tasks, &opts)?)
}

/// (input, target) pairs from an array of #{input, target} maps.
fn demo_pairs(demos: &Array) -> RResult<Vec<(String, String)>> {
    demos
        .iter()
        .map(|d| {
            let m = d
                .read_lock::<Map>()
                .ok_or_else(|| to_rhai("few_shot_prompt: demos must be maps #{input, target}"))?;
            Ok((map_str(&m, "input", "")?, map_str(&m, "target", "")?))
        })
        .collect()
}

fn cells(t: &ResultTable) -> Array {
    t.cells.iter().map(|c| json_to_dynamic(&c.to_json())).collect()
}

pub fn register(engine: &mut Engine) {
    // Readers: every malformed line is reported as file:line.
    reg(
        engine,
        "data_path",
        &["rel: &str", "String"],
        "A path inside promot's home (data/..., models/...).",
        |rel: &str| home_path(rel).display().to_string(),
    );
    reg(
        engine,
        "read_jsonl",
        &["path: &str", "Array"],
        "Read a JSON-lines file into an array of maps.",
        |p: &str| -> RResult<Array> {
            Ok(readers::read_jsonl(home_path(p))
                .map_err(to_rhai)?
                .into_iter()
                .map(|r| json_to_dynamic(&Value::Object(r)))
                .collect())
        },
    );
    reg(
        engine,
        "read_json",
        &["path: &str", "Dynamic"],
        "Read a JSON file.",
        |p: &str| -> RResult<Dynamic> { Ok(json_to_dynamic(&readers::read_json(home_path(p)).map_err(to_rhai)?)) },
    );
    reg(
        engine,
        "read_lines",
        &["path: &str", "Array"],
        "Read a text file's lines.",
        |p: &str| -> RResult<Array> {
            Ok(readers::read_lines(home_path(p))
                .map_err(to_rhai)?
                .into_iter()
                .map(Dynamic::from)
                .collect())
        },
    );
    reg(
        engine,
        "read_parallel",
        &["source: &str", "target: &str", "Array"],
        "Read two line-aligned files into #{source, target} maps.",
        |s: &str, t: &str| -> RResult<Array> {
            Ok(readers::read_parallel(home_path(s), home_path(t))
                .map_err(to_rhai)?
                .into_iter()
                .map(|(a, b)| {
                    let mut m = Map::new();
                    m.insert("source".into(), a.into());
                    m.insert("target".into(), b.into());
                    Dynamic::from(m)
                })
                .collect())
        },
    );
    reg(
        engine,
        "fill",
        &["template: &str", "fields: Map", "String"],
        "Fill {name} placeholders of a template from a map.",
        |t: &str, f: Map| -> RResult<String> {
            let Value::Object(fields) = dynamic_to_json(&Dynamic::from(f)) else {
                return Err(to_rhai("fill: fields must be a map"));
            };
            template::fill(t, &fields).map_err(to_rhai)
        },
    );
    // The one template table (data::template): stdlib/tasks.rhai and the toy world read it.
    reg(
        engine,
        "template",
        &["task: &str", "String"],
        "The current template of a task (rte, cb, wic, qa, translation, summarization).",
        |t: &str| -> RResult<String> { template::template_by_name(t).map_err(to_rhai) },
    );
    reg(
        engine,
        "set_template",
        &["task: &str", "text: &str", "()"],
        "Replace a task's template for this run: tasks built afterwards, for training and evaluation alike, use it.",
        |t: &str, text: &str| -> RResult<()> { template::set_template(t, Some(text)).map_err(to_rhai) },
    );
    reg(
        engine,
        "reset_template",
        &["task: &str", "()"],
        "Restore a task's template to the paper's (Table 5).",
        |t: &str| -> RResult<()> { template::set_template(t, None).map_err(to_rhai) },
    );
    reg(
        engine,
        "label_word",
        &["task: &str", "label: Dynamic", "String"],
        "The target word of a dataset label (rte: entailment -> True; wic: true -> True).",
        |t: &str, l: Dynamic| -> RResult<String> { template::label_word(t, &dynamic_to_json(&l)).map_err(to_rhai) },
    );
    reg(
        engine,
        "label_words",
        &["task: &str", "Array"],
        "The target words of a classification task (cb: True, False, Neither).",
        |t: &str| -> RResult<Array> {
            Ok(template::label_words(t)
                .map_err(to_rhai)?
                .into_iter()
                .map(|w| Dynamic::from(w.to_string()))
                .collect())
        },
    );
    reg(
        engine,
        "language_name",
        &["code: &str", "String"],
        "The English name of a WMT language code (de -> German).",
        |c: &str| -> RResult<String> { template::language_name(c).map(str::to_string).map_err(to_rhai) },
    );
    reg(
        engine,
        "triviaqa_question",
        &["context: &str", "String"],
        "The bare question of a TriviaQA record's 'Question: ...\\nAnswer:' context.",
        |c: &str| -> RResult<String> { template::triviaqa_question(c).map_err(to_rhai) },
    );
    reg(
        engine,
        "few_shot_prompt",
        &["query: &str", "demos: Array", "String"],
        "Join #{input, target} demonstrations and a query with the default separator (a blank line); m.few_shot_prompt uses the model's.",
        |q: &str, demos: Array| -> RResult<String> {
            Ok(fewshot::build_prompt(q, &demo_pairs(&demos)?, fewshot::DEFAULT_SEPARATOR))
        },
    );
    reg(
        engine,
        "few_shot_prompt",
        &["m: Model", "query: &str", "demos: Array", "String"],
        "Join #{input, target} demonstrations and a query with the model's separator, as its evaluation and training do.",
        |m: &mut ScriptModel, q: &str, demos: Array| -> RResult<String> { Ok(m.few_shot_prompt(q, &demo_pairs(&demos)?)) },
    );
    reg(
        engine,
        "postprocess",
        &["text: &str", "kind: &str", "String"],
        "The paper's output post-processing (kind \"classification\" or \"generation\").",
        |t: &str, k: &str| -> RResult<String> {
            Ok(post::postprocess(t, post::OutputKind::from_name(k).map_err(to_rhai)?))
        },
    );
    reg(
        engine,
        "extract_sentinel",
        &["text: &str", "String"],
        "The text between <extra_id_0> and <extra_id_1>, when present.",
        |t: &str| post::extract_sentinel(t),
    );
    reg(
        engine,
        "cut_at_second_prefix",
        &["text: &str", "String"],
        "Cut at the second prefix token (Q:, Translate, Article:).",
        |t: &str| post::cut_at_second_prefix(t, post::PREFIX_TOKENS),
    );
    reg(
        engine,
        "first_word",
        &["text: &str", "String"],
        "The first word of an output (for classification).",
        |t: &str| crate::metrics::first_word(t).to_string(),
    );

    // Metrics, identical to sacrebleu, rouge-score and the SQuAD EM script.
    reg(
        engine,
        "bleu",
        &["hyps: Array", "refs: Array", "float"],
        "Corpus BLEU as sacrebleu computes it (13a, exp smoothing); refs[i] lists hypothesis i's references.",
        |h: Array, r: Array| -> RResult<f64> {
            let hyps = strings("bleu hypotheses", &Dynamic::from(h))?;
            let refs = r
                .iter()
                .map(|x| strings("bleu references", x))
                .collect::<RResult<Vec<_>>>()?;
            Ok(metrics::corpus_bleu(&hyps, &refs).map_err(to_rhai)?.score)
        },
    );
    reg(
        engine,
        "rouge2",
        &["hyp: &str", "reference: &str", "float"],
        "ROUGE-2 F as rouge-score computes it (0-1).",
        |h: &str, r: &str| metrics::rouge2(h, r).fmeasure,
    );
    reg(
        engine,
        "rouge2",
        &["hyps: Array", "refs: Array", "float"],
        "Mean ROUGE-2 F over pairs (0-1).",
        |h: Array, r: Array| -> RResult<f64> {
            metrics::mean_rouge2_f(
                &strings("rouge2", &Dynamic::from(h))?,
                &strings("rouge2", &Dynamic::from(r))?,
            )
            .map_err(to_rhai)
        },
    );
    reg(
        engine,
        "exact_match",
        &["prediction: &str", "aliases: Array", "bool"],
        "SQuAD/TriviaQA-normalised exact match against any alias.",
        |p: &str, a: Array| -> RResult<bool> {
            Ok(metrics::exact_match(p, &strings("exact_match", &Dynamic::from(a))?))
        },
    );
    reg(
        engine,
        "normalize_answer",
        &["text: &str", "String"],
        "SQuAD answer normalisation.",
        |t: &str| metrics::normalize_answer(t),
    );
    reg(
        engine,
        "accuracy",
        &["preds: Array", "labels: Array", "float"],
        "Accuracy (%) comparing each prediction's first word with its label.",
        |p: Array, l: Array| -> RResult<f64> {
            metrics::accuracy(
                &strings("accuracy", &Dynamic::from(p))?,
                &strings("accuracy", &Dynamic::from(l))?,
            )
            .map_err(to_rhai)
        },
    );
    reg(
        engine,
        "label_share",
        &["preds: Array", "labels: Array", "float"],
        "Share (0-1) of outputs whose first word is in the label set (Fig. 2's probe).",
        |p: Array, l: Array| -> RResult<f64> {
            Ok(metrics::label_share(
                &strings("label_share", &Dynamic::from(p))?,
                &strings("label_share", &Dynamic::from(l))?,
            ))
        },
    );

    // The harness and its result tables.
    engine.register_type_with_name::<ResultTable>("Results");
    reg(
        engine,
        "to_string",
        &["r: Results", "String"],
        "A results table as text (tasks x shots).",
        |t: &mut ResultTable| t.render(false),
    );
    reg(
        engine,
        "to_debug",
        &["r: Results", "String"],
        "A results table as text (tasks x shots).",
        |t: &mut ResultTable| t.render(false),
    );
    let doc = options::doc_with_options::<EvalOptions>(
        "In-context evaluation of tasks (stdlib/tasks.rhai) at each shot count; returns a Results table.",
        &EVAL_EXTRA,
    );
    reg(
        engine,
        "evaluate",
        &["m: Model", "tasks: Array", "opts: Map", "Results"],
        &doc,
        run_evaluate,
    );
    reg(
        engine,
        "evaluate",
        &["m: Model", "tasks: Array", "Results"],
        "In-context evaluation with defaults (1- and 4-shot, beam 4).",
        |m: &mut ScriptModel, t: Dynamic| run_evaluate(m, t, Map::new()),
    );
    reg(
        engine,
        "score",
        &["r: Results", "task: &str", "shots: int", "float"],
        "One cell of a result table.",
        |t: &mut ResultTable, task: &str, k: INT| -> RResult<f64> {
            let k = usize_arg("shots", k)?;
            t.get(task, k)
                .map(|c| c.value)
                .ok_or_else(|| to_rhai(format!("no result for {task} at {k} shots")))
        },
    );
    reg(
        engine,
        "share",
        &["r: Results", "task: &str", "shots: int", "float"],
        "The probe label share of one cell (needs opts.probe).",
        |t: &mut ResultTable, task: &str, k: INT| -> RResult<f64> {
            let k = usize_arg("shots", k)?;
            t.get(task, k).and_then(|c| c.label_share).ok_or_else(|| {
                to_rhai(format!(
                    "no label share for {task} at {k} shots (evaluate with a probe)"
                ))
            })
        },
    );
    reg(
        engine,
        "shares",
        &["r: Results", "Results"],
        "The probe label shares (0-1) as a table of their own, to `compare` like scores.",
        |t: &mut ResultTable| t.shares(),
    );
    reg(
        engine,
        "cells",
        &["r: Results", "Array"],
        "Every cell as a map #{task, shots, metric, value, n, label_share, samples}.",
        |t: &mut ResultTable| cells(t),
    );
    reg(
        engine,
        "markdown",
        &["r: Results", "String"],
        "The table as markdown.",
        |t: &mut ResultTable| t.render(true),
    );
    reg(
        engine,
        "save",
        &["r: Results", "path: &str", "()"],
        "Save as JSON (path.json) and markdown (path.md).",
        |t: &mut ResultTable, p: &str| -> RResult<()> {
            let base = Path::new(p).with_extension("");
            crate::fsio::write_json(&base.with_extension("json"), &t.to_json()).map_err(to_rhai)?;
            crate::fsio::write_atomic(&base.with_extension("md"), t.render(true).as_bytes()).map_err(to_rhai)
        },
    );
    reg(
        engine,
        "load_results",
        &["path: &str", "Results"],
        "Load results saved as JSON.",
        |p: &str| -> RResult<ResultTable> {
            let v = crate::fsio::read_json(Path::new(p)).map_err(to_rhai)?;
            ResultTable::from_json(&v).ok_or_else(|| to_rhai(format!("{p}: not a saved result table")))
        },
    );
    reg(
        engine,
        "file_exists",
        &["path: &str", "bool"],
        "Whether a file or directory exists at `path` (to skip work a resumed script already did).",
        |p: &str| Path::new(p).exists(),
    );
    reg(
        engine,
        "write_text",
        &["path: &str", "text: &str", "String"],
        "Write a text file (atomically); returns the path.",
        |p: &str, t: &str| -> RResult<String> {
            crate::fsio::write_atomic(Path::new(p), t.as_bytes()).map_err(to_rhai)?;
            Ok(p.to_string())
        },
    );
    reg(
        engine,
        "write_json",
        &["path: &str", "value: Dynamic", "String"],
        "Write a value as pretty JSON (atomically); returns the path.",
        |p: &str, v: Dynamic| -> RResult<String> {
            crate::fsio::write_json(Path::new(p), &dynamic_to_json(&v)).map_err(to_rhai)?;
            Ok(p.to_string())
        },
    );
    reg(
        engine,
        "merge",
        &["a: Results", "b: Results", "Results"],
        "One table with the cells of both.",
        |a: &mut ResultTable, b: ResultTable| ResultTable {
            cells: a.cells.iter().chain(b.cells.iter()).cloned().collect(),
        },
    );
    reg(
        engine,
        "rename_task",
        &["r: Results", "from: &str", "to: &str", "Results"],
        "The same results with one task renamed (e.g. to mark the target).",
        |t: &mut ResultTable, from: &str, to: &str| t.rename_task(from, to),
    );
    engine.register_fn("+", |a: &mut ResultTable, b: ResultTable| ResultTable {
        cells: a.cells.iter().chain(b.cells.iter()).cloned().collect(),
    });
    reg(
        engine,
        "compare",
        &["results: Array", "names: Array", "String"],
        "Several models' results (Results, or paths of saved results .json files) side by side (the paper's Table 2 layout).",
        |rs: Array, names: Array| -> RResult<String> { compare(rs, names, false) },
    );
    reg(
        engine,
        "compare_markdown",
        &["results: Array", "names: Array", "String"],
        "Like compare, as markdown.",
        |rs: Array, names: Array| -> RResult<String> { compare(rs, names, true) },
    );
    register_comparison(engine);
    register_preconditions(engine);
    reg(
        engine,
        "table",
        &["header: Array", "rows: Array", "String"],
        "Render rows of values as an aligned text table.",
        |h: Array, rows: Array| -> RResult<String> {
            let header: Vec<String> = h.iter().map(|x| x.to_string()).collect();
            let rows = rows
                .iter()
                .map(|r| {
                    r.read_lock::<Array>()
                        .map(|r| r.iter().map(fmt_cell).collect::<Vec<_>>())
                        .ok_or_else(|| to_rhai("table: each row must be an array"))
                })
                .collect::<RResult<Vec<_>>>()?;
            Ok(table::render(&header, &rows, false))
        },
    );
}

fn fmt_cell(d: &Dynamic) -> String {
    match d.as_float() {
        Ok(f) => format!("{f:.2}"),
        Err(_) => d.to_string(),
    }
}

fn compare(rs: Array, names: Array, markdown: bool) -> RResult<String> {
    if rs.len() != names.len() {
        return Err(to_rhai(format!(
            "compare: {} result tables but {} names",
            rs.len(),
            names.len()
        )));
    }
    let tables = rs
        .iter()
        .zip(names.iter())
        .map(|(r, n)| Ok((n.to_string(), super::record::results_arg("compare", r)?)))
        .collect::<RResult<Vec<_>>>()?;
    Ok(table::compare(&tables, markdown))
}

/// Several methods under several seeds (`compare_seeds`), and the means and
/// differences a claim is made of, each with its bootstrap interval.
fn register_comparison(engine: &mut Engine) {
    engine.register_type_with_name::<Comparison>("Comparison");
    reg(
        engine,
        "compare_seeds",
        &["results: Array", "names: Array", "Comparison"],
        "Methods side by side over seeds: `results[i]` is method i's array of Results (or saved results paths), one per seed, \
         the same seeds in the same order for every method. Each cell prints as `mean [lo, hi]`: the mean over seeds and a 95% \
         percentile bootstrap interval over seeds and then each seed's examples, paired across methods.",
        |rs: Array, names: Array| -> RResult<Comparison> {
            if rs.len() != names.len() {
                return Err(to_rhai(format!("compare_seeds: {} methods' results but {} names", rs.len(), names.len())));
            }
            let methods = rs
                .iter()
                .zip(names.iter())
                .map(|(r, n)| {
                    let seeds = r.read_lock::<Array>().ok_or_else(|| {
                        to_rhai(format!("compare_seeds: method '{n}' needs an array of Results (one per seed), got {}", r.type_name()))
                    })?;
                    let tables = seeds
                        .iter()
                        .map(|t| super::record::results_arg("compare_seeds", t))
                        .collect::<RResult<Vec<_>>>()?;
                    Ok((n.to_string(), tables))
                })
                .collect::<RResult<Vec<_>>>()?;
            Ok(Comparison::new(methods, Bootstrap::default())?)
        },
    );
    for name in ["to_string", "to_debug"] {
        reg(
            engine,
            name,
            &["c: Comparison", "String"],
            "The comparison as text: each cell `mean [lo, hi]` over the seeds.",
            |c: &mut Comparison| -> RResult<String> { Ok(c.render(false)?) },
        );
    }
    reg(
        engine,
        "markdown",
        &["c: Comparison", "String"],
        "The comparison as a markdown table.",
        |c: &mut Comparison| -> RResult<String> { Ok(c.render(true)?) },
    );
    reg(
        engine,
        "estimate",
        &["c: Comparison", "method: &str", "task: &str", "shots: i64", "Map"],
        "One cell of the comparison: #{mean, lo, hi} over the seeds, or () where the method has no such cell.",
        |c: &mut Comparison, method: &str, task: &str, shots: INT| -> RResult<Dynamic> {
            let k =
                usize::try_from(shots).map_err(|_| to_rhai(format!("estimate: shots must be >= 0, got {shots}")))?;
            Ok(c.cell(method, task, k)?
                .map_or(Dynamic::UNIT, |e| estimate_map(e).into()))
        },
    );
    reg(
        engine,
        "mean_over",
        &["c: Comparison", "method: &str", "tasks: Array", "Map"],
        "A method's mean over every cell (all shot counts) of `tasks`, e.g. its in-context mean: #{mean, lo, hi}.",
        |c: &mut Comparison, method: &str, tasks: Array| -> RResult<Map> {
            Ok(estimate_map(
                c.mean(method, &strings("mean_over", &Dynamic::from(tasks))?)?,
            ))
        },
    );
    reg(
        engine,
        "difference",
        &["c: Comparison", "a: &str", "b: &str", "tasks: Array", "Map"],
        "Method a's mean over the cells of `tasks` minus method b's, paired by seed and example: #{mean, lo, hi}.",
        |c: &mut Comparison, a: &str, b: &str, tasks: Array| -> RResult<Map> {
            Ok(estimate_map(c.difference(
                a,
                b,
                &strings("difference", &Dynamic::from(tasks))?,
            )?))
        },
    );
    reg(
        engine,
        "to_json",
        &["c: Comparison", "Map"],
        "Every cell of every method as data (mean, lo, hi, the per-seed values), with how the intervals were made; for write_json.",
        |c: &mut Comparison| -> RResult<Dynamic> { Ok(json_to_dynamic(&c.to_json()?)) },
    );
}

/// The preconditions of a comparison (`eval::preconditions`), and the answer
/// formats they and the format probes read.
fn register_preconditions(engine: &mut Engine) {
    reg(
        engine,
        "answer_format",
        &["task: Map", "Map"],
        "A task's answer format as evaluate options #{probe, probe_every_word}: its label words (read off the first word) for a \
         classification task, the vocabulary of its answers (every word must be in it) for a generative one. Evaluating other \
         tasks with it measures how far the task's format has spread to them.",
        |t: Map| -> RResult<Map> {
            let f = preconditions::format_of(&eval_task(&Dynamic::from(t))?)?;
            let mut m = Map::new();
            m.insert("probe".into(), f.words.into_iter().map(Dynamic::from).collect::<Array>().into());
            m.insert("probe_every_word".into(), f.every_word.into());
            Ok(m)
        },
    );
    reg(
        engine,
        "format_share",
        &["format: Map", "texts: Array", "f64"],
        "The share (0-1) of texts in a format (as answer_format gives it), e.g. of another task's references.",
        |f: Map, texts: Array| -> RResult<f64> {
            let words = f
                .get("probe")
                .ok_or_else(|| to_rhai("format_share: the format has no probe words"))?;
            let every_word = f
                .get("probe_every_word")
                .and_then(|b| b.as_bool().ok())
                .unwrap_or(false);
            let format = crate::eval::format::Format {
                words: strings("format_share", words)?.into_iter().collect(),
                every_word,
            };
            Ok(format.share(&strings("format_share", &Dynamic::from(texts))?))
        },
    );
    reg(
        engine,
        "preconditions",
        &["scores: Comparison", "shares: Comparison", "o: Map", "Map"],
        "What must hold before methods are compared, measured: the model learns every in-context task above a constant answer, \
         the target is new to it (pretrained at most 30 at every shot count) and fine-tuning learns it (80), the target's format \
         is no in-context task's, and prompt tuning put the format on 95% of target outputs. `o`: #{ target (its row name), \
         target_task (task map), tasks (the in-context task maps), pretrained, fine_tuned, prompt_tuned (method names) }; \
         `shares`: the same runs' probe shares (Results.shares()), the target evaluated with answer_format(target_task). \
         Returns #{ checks: [#{name, requirement, measured, holds}], all_hold, text, markdown }.",
        |scores: &mut Comparison, shares: Comparison, o: Map| -> RResult<Map> {
            let get = |k: &str| -> RResult<String> {
                o.get(k)
                    .and_then(|v| v.clone().into_string().ok())
                    .ok_or_else(|| to_rhai(format!("preconditions: option {k} must be a string")))
            };
            let target = get("target")?;
            let target_task = eval_task(o.get("target_task").ok_or_else(|| to_rhai("preconditions: no target_task"))?)?;
            let tasks = o
                .get("tasks")
                .and_then(|v| v.read_lock::<Array>().map(|a| a.clone()))
                .ok_or_else(|| to_rhai("preconditions: tasks must be an array of task maps"))?
                .iter()
                .map(eval_task)
                .collect::<RResult<Vec<_>>>()?;
            let mut checks = vec![preconditions::learns_in_context(scores, &get("pretrained")?, &tasks)?];
            checks.extend(preconditions::headroom(scores, &target, &get("pretrained")?, &get("fine_tuned")?)?);
            checks.push(preconditions::format_is_its_own(&preconditions::format_of(&target_task)?, &target, &tasks)?);
            checks.push(preconditions::prompt_took_format(&shares, &target, &get("prompt_tuned")?)?);
            let mut m = Map::new();
            m.insert("all_hold".into(), checks.iter().all(|c| c.holds).into());
            m.insert("text".into(), preconditions::render_checks(&checks, false).into());
            m.insert("markdown".into(), preconditions::render_checks(&checks, true).into());
            m.insert(
                "checks".into(),
                checks
                    .iter()
                    .map(|c| json_to_dynamic(&serde_json::to_value(c).unwrap_or_default()))
                    .collect::<Array>()
                    .into(),
            );
            Ok(m)
        },
    );
}

fn estimate_map(e: Estimate) -> Map {
    let mut m = Map::new();
    m.insert("mean".into(), e.mean.into());
    m.insert("lo".into(), e.lo.into());
    m.insert("hi".into(), e.hi.into());
    m
}
