//! `help()`, `help("topic")` and `help("name")`: the topics, each with its
//! functions, and the signatures and docs of the registered functions, read
//! from the engine's own metadata, so every function registered with
//! `FuncRegistration::with_comments` documents itself. Which topic a function
//! belongs to is declared once, in [`TOPICS`]; a test checks that every
//! function is in exactly one.

use rhai::{Engine, FuncRegistration, NativeCallContext};
use serde_json::Value;

/// One registered function (one overload).
#[derive(Debug, Clone)]
pub struct FnDoc {
    /// Name as called from scripts, with a module prefix (`m::f`) if any.
    pub name: String,
    /// e.g. `zeros(shape: Array) -> Tensor`.
    pub signature: String,
    /// Doc comment text without the `///` markers; may be empty.
    pub doc: String,
    /// (parameter name, type name); either may be unknown ("").
    pub params: Vec<(String, String)>,
    /// Written in Rhai (promot's stdlib) rather than registered from Rust.
    pub is_script: bool,
}

impl FnDoc {
    /// The first line of the doc comment.
    pub fn summary(&self) -> &str {
        self.doc.lines().next().unwrap_or("")
    }

    /// Operators, property getters/setters and indexers are called with
    /// syntax rather than by name.
    pub fn is_plain_function(&self) -> bool {
        let base = self.name.rsplit("::").next().unwrap_or(&self.name);
        base.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && base.chars().all(|c| c.is_alphanumeric() || c == '_')
    }
}

/// Every function registered in `engine` (promot's, or also Rhai's standard
/// library when `include_std`), sorted by name.
pub fn functions(engine: &Engine, include_std: bool) -> Vec<FnDoc> {
    let mut out = Vec::new();
    if let Ok(json) = engine.gen_fn_metadata_to_json(include_std) {
        if let Ok(v) = serde_json::from_str::<Value>(&json) {
            collect(&v, "", &mut out);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.signature.cmp(&b.signature)));
    out
}

fn collect(module: &Value, prefix: &str, out: &mut Vec<FnDoc>) {
    if let Some(fns) = module.get("functions").and_then(Value::as_array) {
        for f in fns {
            let name = f.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let signature = f.get("signature").and_then(Value::as_str).unwrap_or(&name).to_string();
            let doc = f
                .get("docComments")
                .and_then(Value::as_array)
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(Value::as_str)
                        .map(strip_comment)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            let params = f
                .get("params")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                            (s("name"), s("type"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(FnDoc {
                name: format!("{prefix}{name}"),
                signature: format!("{prefix}{signature}"),
                doc: doc.trim().to_string(),
                params,
                is_script: f.get("type").and_then(Value::as_str) == Some("script"),
            });
        }
    }
    if let Some(mods) = module.get("modules").and_then(Value::as_object) {
        for (name, m) in mods {
            collect(m, &format!("{prefix}{name}::"), out);
        }
    }
}

/// "/// text" -> "text" (also handles `/** */` blocks), per line.
fn strip_comment(c: &str) -> String {
    let c = c.trim();
    let c = c.strip_prefix("/**").and_then(|c| c.strip_suffix("*/")).unwrap_or(c);
    c.lines()
        .map(|l| {
            let l = l.trim();
            l.strip_prefix("///")
                .or_else(|| l.strip_prefix('*'))
                .unwrap_or(l)
                .trim()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every name worth completing in the REPL: plain functions (promot's and
/// Rhai's standard library), deduplicated and sorted.
pub fn completion_names(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = functions(engine, true)
        .into_iter()
        .filter(FnDoc::is_plain_function)
        .map(|f| f.name)
        .collect();
    names.dedup();
    names
}

/// A topic of `help()`: its name, one line about it, and the names of its
/// functions (every overload of a name belongs to that name's topic).
pub struct Topic {
    pub name: &'static str,
    pub about: &'static str,
    pub functions: &'static [&'static str],
}

/// Every topic, in the order `help()` lists them. Each registered function
/// (Rust or stdlib/*.rhai) is named in exactly one (tests/docs.rs checks it).
pub const TOPICS: &[Topic] = &[
    Topic {
        name: "tensors",
        about: "make, combine and inspect tensors; elementwise maths and reductions",
        functions: &[
            "abs",
            "arange",
            "argmax",
            "argmin",
            "cat",
            "cos",
            "cosine",
            "device",
            "dtype",
            "exp",
            "flatten",
            "full",
            "gelu",
            "get",
            "item",
            "len",
            "log",
            "log_softmax",
            "matmul",
            "max",
            "mean",
            "min",
            "narrow",
            "neg",
            "norm",
            "numel",
            "ones",
            "permute",
            "powf",
            "rand",
            "randn",
            "rank",
            "relu",
            "reshape",
            "select",
            "shape",
            "sigmoid",
            "sin",
            "softmax",
            "sqr",
            "sqrt",
            "squeeze",
            "stack",
            "sum",
            "t",
            "tanh",
            "tensor",
            "to_array",
            "to_device",
            "to_dtype",
            "transpose",
            "unsqueeze",
            "zeros",
        ],
    },
    Topic {
        name: "models",
        about: "load, run and save models: generation, logits, loss, gradients, tokenizers",
        functions: &[
            "detokenize",
            "dtype_of",
            "embed",
            "generate",
            "generate_scored",
            "grad",
            "load_model",
            "logits",
            "loss",
            "tokenize",
            "tokenize_target",
        ],
    },
    Topic {
        name: "prompts",
        about: "soft prompts, parameters and freezing",
        functions: &[
            "export_peft",
            "freeze",
            "is_trainable",
            "last_layer_groups",
            "load_prompt",
            "num_params",
            "param",
            "params",
            "prompt",
            "snapshot",
            "soft_prompt",
            "trainable_count",
            "unfreeze",
            "values",
        ],
    },
    Topic {
        name: "training",
        about: "train a model or prompt, its options, checkpoints and gradient probes",
        functions: &[
            "clear_checkpoints",
            "grad_cosine",
            "gradients",
            "keep_best",
            "paper_defaults",
            "shuffle_labels",
            "stage_opts",
            "train",
            "train_opts",
            "train_option_names",
            "with_dir",
        ],
    },
    Topic {
        name: "evaluation",
        about: "k-shot evaluation, metrics, post-processing and result tables",
        functions: &[
            "accuracy",
            "bleu",
            "cells",
            "compare",
            "compare_markdown",
            "compare_seeds",
            "markdown",
            "estimate",
            "mean_over",
            "difference",
            "answer_format",
            "format_share",
            "preconditions",
            "to_json",
            "curve_recorder",
            "cut_at_second_prefix",
            "evaluate",
            "exact_match",
            "extract_sentinel",
            "first_word",
            "label_share",
            "load_results",
            "markdown",
            "matched_points",
            "merge",
            "normalize_answer",
            "postprocess",
            "provenance",
            "rename_task",
            "rouge2",
            "score",
            "share",
            "shares",
            "table",
        ],
    },
    Topic {
        name: "data",
        about: "the paper's tasks and data, templates, label words and few-shot prompts",
        functions: &[
            "cb",
            "classification",
            "classification_items",
            "eval_tasks",
            "few_shot_prompt",
            "fill",
            "label_word",
            "label_words",
            "language_name",
            "reset_template",
            "rte",
            "rte_train",
            "set_template",
            "task",
            "template",
            "translation",
            "translation_items",
            "triviaqa",
            "triviaqa_question",
            "web_questions",
            "webq_items",
            "wic",
            "wikilingua",
            "wmt14_en_fr",
            "wmt14_en_fr_train",
            "wmt16_en_de",
            "wmt16_en_ro",
            "xsum",
            "xsum_items",
        ],
    },
    Topic {
        name: "toy",
        about: "the toy world: the built-in model's synthetic tasks, episodes and pretraining data",
        functions: &[
            "new_toy_model",
            "toy_episodes",
            "toy_eval_tasks",
            "toy_examples",
            "toy_pretrain_data",
            "toy_task",
            "toy_targets",
            "toy_tasks",
        ],
    },
    Topic {
        name: "methods",
        about: "the paper's methods (stdlib/methods.rhai): ProMoT and every baseline, and their inference rule",
        functions: &[
            "clear_method_checkpoints",
            "evaluate_method",
            "fine_tuning",
            "fine_tuning_fixed_random_prompt",
            "fine_tuning_one_shot",
            "joint_tuning",
            "multitask_promot",
            "new_prompt",
            "prompt_for",
            "prompt_tuning",
            "promot",
            "promot_one_shot",
            "random_prompt_tuning",
            "result",
            "sequential_promot",
        ],
    },
    Topic {
        name: "reports",
        about:
            "a reproduction's report over seeds (stdlib/report.rhai): intervals, preconditions, headline, matched score",
        functions: &[
            "seed_report",
            "matched_states",
            "interval_text",
            "joined",
            "answers_of",
            "parse_seeds",
            "seeds_text",
        ],
    },
    Topic {
        name: "plotting",
        about: "figures as SVG and PNG",
        functions: &["plot_lines", "plot_tradeoff", "plot_tradeoff_over_seeds"],
    },
    Topic {
        name: "files",
        about: "read and write files: JSON, JSON lines, text, parallel text; save results",
        functions: &[
            "data_path",
            "file_exists",
            "read_json",
            "read_jsonl",
            "read_lines",
            "read_parallel",
            "save",
            "write_json",
            "write_text",
        ],
    },
    Topic {
        name: "session",
        about: "help, printing values, progress of long scripts, leaving",
        functions: &[
            "exit",
            "help",
            "progress_advance",
            "progress_begin",
            "progress_end",
            "progress_skip",
            "to_debug",
            "to_string",
        ],
    },
];

/// The topics that name `function`.
pub fn topics_of(function: &str) -> Vec<&'static Topic> {
    TOPICS.iter().filter(|t| t.functions.contains(&function)).collect()
}

/// The topic called `name` (case and surrounding spaces ignored).
pub fn topic(name: &str) -> Option<&'static Topic> {
    let name = name.trim().to_lowercase();
    TOPICS.iter().find(|t| t.name == name)
}

/// The topic names, for completion.
pub fn topic_names() -> Vec<String> {
    TOPICS.iter().map(|t| t.name.to_string()).collect()
}

/// The text `help()` (topic None), `help("topic")` or `help("name")` prints.
/// A promot function's name wins over a topic's, a topic's over a function of
/// Rhai's own; "all" lists every promot function.
pub fn help_text(engine: &Engine, topic: Option<&str>) -> String {
    let own = functions(engine, false);
    let Some(topic) = topic.map(str::trim).filter(|t| !t.is_empty()) else {
        return overview(&own);
    };
    let exact = |list: &[FnDoc]| -> Vec<FnDoc> {
        list.iter()
            .filter(|f| f.name == topic || f.name == format!("get${topic}") || f.name.ends_with(&format!("::{topic}")))
            .cloned()
            .collect()
    };
    // promot's functions first, then the topics, then Rhai's own functions (it has an `all`).
    let mut found = exact(&own);
    if found.is_empty() {
        if let Some(text) = topic_text(&own, topic) {
            return text;
        }
        found = exact(&functions(engine, true));
    }
    if !found.is_empty() {
        let mut out = String::new();
        for f in found {
            let sig = f.signature.replacen("get$", "(property) ", 1);
            out.push_str(&sig);
            out.push('\n');
            for line in f.doc.lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
        return out.trim_end().to_string();
    }
    let needle = topic.to_lowercase();
    let mut related: Vec<String> = own
        .iter()
        .filter(|f| f.is_plain_function())
        .filter(|f| f.name.to_lowercase().contains(&needle) || f.doc.to_lowercase().contains(&needle))
        .map(|f| f.name.clone())
        .collect();
    related.dedup();
    if related.is_empty() {
        format!("no function or topic named '{topic}'; help() lists the topics")
    } else {
        format!("no function or topic named '{topic}'; related: {}", related.join(", "))
    }
}

/// The listing of topic `name` ("all": every function), if there is one.
fn topic_text(own: &[FnDoc], name: &str) -> Option<String> {
    if name.eq_ignore_ascii_case("all") {
        let plain: Vec<&FnDoc> = own.iter().filter(|f| f.is_plain_function()).collect();
        return Some(listing(
            "every promot function (help(\"name\") shows one in full):",
            &plain,
        ));
    }
    let t = topic(name)?;
    let inside: Vec<&FnDoc> = own
        .iter()
        .filter(|f| f.is_plain_function() && t.functions.contains(&f.name.as_str()))
        .collect();
    Some(listing(
        &format!("{}: {} (help(\"name\") shows one in full):", t.name, t.about),
        &inside,
    ))
}

/// `title`, then one line per function: its signature and the first line of its doc.
fn listing(title: &str, fns: &[&FnDoc]) -> String {
    let width = fns.iter().map(|f| f.signature.len()).max().unwrap_or(0).min(56);
    let mut out = format!("{title}\n");
    for f in fns {
        out.push_str(&format!("  {:<width$}  {}\n", f.signature, f.summary()));
    }
    out.trim_end().to_string()
}

fn overview(own: &[FnDoc]) -> String {
    let width = TOPICS.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut out = String::from(
        "promot's functions by topic: help(\"topic\") lists a topic's functions, help(\"name\") shows one in full, \
         help(\"all\") lists them all.\n",
    );
    for t in TOPICS {
        let n = own
            .iter()
            .filter(|f| f.is_plain_function() && t.functions.contains(&f.name.as_str()))
            .map(|f| f.name.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        out.push_str(&format!("  {:<width$}  {} ({n})\n", t.name, t.about));
    }
    let mut props: Vec<&str> = own.iter().filter_map(|f| f.name.strip_prefix("get$")).collect();
    props.dedup();
    if !props.is_empty() {
        out.push_str(&format!("properties (x.name): {}\n", props.join(", ")));
    }
    let mut ops: Vec<&str> = own
        .iter()
        .filter(|f| !f.is_plain_function() && !f.name.contains('$'))
        .map(|f| f.name.as_str())
        .collect();
    ops.sort_unstable();
    ops.dedup();
    if !ops.is_empty() {
        out.push_str(&format!("operators: {}\n", ops.join(" ")));
    }
    out.push_str(
        "Rhai's own functions (print, len, push, ...) work too; in the REPL, `vars` lists variables and Ctrl-D quits.",
    );
    out
}

/// Register `help()` and `help(topic)`; they print to stdout.
pub fn register(engine: &mut Engine) {
    FuncRegistration::new("help")
        .in_global_namespace()
        .with_comments(["/// List the topics of promot's functions with one line each."])
        .register_into_engine(engine, |ctx: NativeCallContext| {
            println!("{}", help_text(ctx.engine(), None))
        });
    FuncRegistration::new("help")
        .in_global_namespace()
        .with_params_info(["topic: &str"])
        .with_comments([
            "/// List a topic's functions, e.g. help(\"training\"), or show one function in full, e.g. help(\"zeros\").",
        ])
        .register_into_engine(engine, |ctx: NativeCallContext, topic: &str| {
            println!("{}", help_text(ctx.engine(), Some(topic)))
        });
}

/// A hint for "function not found": the signatures a function of that name
/// does take, or registered names close to the misspelled one.
pub fn hint(engine: &Engine, err: &rhai::EvalAltResult) -> Option<String> {
    use rhai::EvalAltResult as E;
    let mut e = err;
    while let E::ErrorInFunctionCall(_, _, inner, _) | E::ErrorInModule(_, inner, _) = e {
        e = inner;
    }
    let E::ErrorFunctionNotFound(sig, _) = e else {
        return None;
    };
    let name = sig.split(" (").next()?.trim();
    let all = functions(engine, true);
    let takes: Vec<&str> = all
        .iter()
        .filter(|f| f.name == name)
        .map(|f| f.signature.as_str())
        .collect();
    if !takes.is_empty() {
        let shown: Vec<&str> = takes.iter().take(8).copied().collect();
        return Some(format!("help: {name} is defined as: {}", shown.join("; ")));
    }
    let mut close: Vec<(usize, &str)> = all
        .iter()
        .filter(|f| f.is_plain_function())
        .map(|f| (edit_distance(name, &f.name), f.name.as_str()))
        .filter(|(d, n)| {
            *d <= 2.max(name.len() / 4) && *d < name.len().max(2) || n.starts_with(name) && name.len() >= 3
        })
        .collect();
    close.sort();
    close.dedup_by(|a, b| a.1 == b.1);
    let names: Vec<&str> = close.iter().take(3).map(|(_, n)| *n).collect();
    (!names.is_empty()).then(|| format!("help: did you mean {}?", names.join(", ")))
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
