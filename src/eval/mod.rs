//! In-context evaluation: k-shot prompts for each task, generation, the
//! paper's post-processing, and the task's metric. Results form a table of
//! tasks × shots that prints, saves as JSON/markdown, and sits beside other
//! models' tables in the layout of the paper's Table 2.

pub mod cache;
pub mod comparison;
pub mod format;
mod forms;
pub mod interval;
pub mod preconditions;
pub mod record;
pub mod statistics;
pub mod table;

use crate::data::fewshot::{build_prompt, fit_to_budget, sample_demos, DEFAULT_SEPARATOR};
use crate::data::postprocess::{is_final, postprocess, OutputKind};
use crate::error::{Error, Result};
use crate::metrics;
use crate::model::generate::StopRule;
use crate::model::{GenerateOptions, LanguageModel};
use crate::options::{number, one_or_many, opt_one_or_many};
use crate::prompt::{embed_inputs, SoftPrompt};
use crate::tokenizer::Tokenizer;
use crate::train::progress::Progress;
use serde::{Deserialize, Serialize};
pub use table::{Cell, ResultTable};

#[derive(Clone, Debug, PartialEq, Default)]
pub enum Metric {
    #[default]
    Accuracy,
    ExactMatch,
    Bleu,
    Rouge2,
}

impl Metric {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "accuracy" => Ok(Metric::Accuracy),
            "exact_match" | "em" => Ok(Metric::ExactMatch),
            "bleu" => Ok(Metric::Bleu),
            "rouge2" | "rouge-2" => Ok(Metric::Rouge2),
            other => Err(Error::msg(format!(
                "unknown metric '{other}' (expected accuracy, exact_match, bleu or rouge2)"
            ))),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::ExactMatch => "exact_match",
            Metric::Bleu => "bleu",
            Metric::Rouge2 => "rouge2",
        }
    }
}

/// One evaluation example: the templated query (or the fields to fill the
/// task's template with, capped lazily) and its acceptable answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalExample {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(rename = "target", with = "forms::references")]
    pub references: Vec<String>,
}

impl EvalExample {
    pub fn new(input: String, references: Vec<String>) -> Self {
        Self {
            input,
            fields: None,
            references,
        }
    }
}

/// An evaluation task; as data, the map `forms` describes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalTask {
    #[serde(default = "forms::default_task_name")]
    pub name: String,
    #[serde(default)]
    pub metric: Metric,
    #[serde(default = "forms::kind::generation", with = "forms::kind")]
    pub kind: OutputKind,
    #[serde(default)]
    pub examples: Vec<EvalExample>,
    /// Demonstrations (their first reference is the target shown). When
    /// `pool_is_eval`, a query never sees itself.
    #[serde(default)]
    pub pool: Vec<EvalExample>,
    /// Template for examples given as fields, and token caps per field (XSum articles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, with = "forms::caps")]
    pub caps: Vec<(String, usize)>,
    #[serde(default)]
    pub pool_is_eval: bool,
    #[serde(default = "forms::default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// Ready-made k-shot prompts by k (tasks whose demonstrations must share a
    /// hidden rule with the query, like the toy world's fresh-rule task).
    #[serde(default, with = "forms::episodes")]
    pub episodes: std::collections::BTreeMap<usize, Vec<EvalExample>>,
    /// A classification task's answer words (for readers; scoring compares texts).
    #[serde(default)]
    pub labels: Vec<String>,
}

impl EvalTask {
    /// An example's input text: its fields are capped and filled only when
    /// the example is used, so large demonstration pools cost nothing unused.
    pub fn input_of(&self, ex: &EvalExample, tok: &Tokenizer) -> Result<String> {
        let Some(fields) = &ex.fields else {
            return Ok(ex.input.clone());
        };
        let template = self
            .template
            .as_deref()
            .ok_or_else(|| Error::msg(format!("task {}: examples given as fields need a template", self.name)))?;
        let mut fields = fields.clone();
        for (name, cap) in &self.caps {
            if let Some(serde_json::Value::String(text)) = fields.get(name) {
                let ids = tok.encode(text, false)?;
                if ids.len() > *cap {
                    let cut = tok.decode(&ids[..*cap], true)?;
                    fields.insert(name.clone(), serde_json::Value::String(cut));
                }
            }
        }
        crate::data::template::fill(template, &fields)
    }

    /// Every example given as `input` or as `fields` (with a template to fill).
    pub fn check(&self) -> Result<()> {
        let lists = [("examples", &self.examples), ("pool", &self.pool)];
        let episodes = self.episodes.iter();
        for (list, items) in lists
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .chain(episodes.map(|(k, v)| (format!("episodes.{k}"), v)))
        {
            for (i, e) in items.iter().enumerate() {
                if e.input.is_empty() && e.fields.is_none() {
                    return Err(Error::msg(format!(
                        "task {}: {list} item {i} needs 'input' or 'fields'",
                        self.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The examples a k-shot evaluation scores.
    pub fn examples_for(&self, k: usize) -> &[EvalExample] {
        self.episodes.get(&k).map(|v| v.as_slice()).unwrap_or(&self.examples)
    }
}

/// The options of `evaluate`, declared once: field names are the option
/// names, `Default` the defaults `help("evaluate")` lists.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalOptions {
    /// Shot counts to evaluate (an int or a list).
    #[serde(deserialize_with = "one_or_many")]
    pub shots: Vec<usize>,
    /// Score only the first `limit` examples of each task.
    pub limit: Option<usize>,
    /// A soft prompt attached to every query (not data: given by the caller).
    #[serde(skip)]
    pub prompt: Option<SoftPrompt>,
    /// Beam width (1: greedy).
    pub beams: usize,
    #[serde(deserialize_with = "number")]
    pub length_penalty: f64,
    pub early_stopping: bool,
    pub batch_size: usize,
    /// Seeds the demonstrations drawn for each query.
    pub seed: u64,
    /// Token budget of a whole k-shot prompt (demonstrations shrink first).
    pub max_input_len: usize,
    /// Labels whose share among outputs is reported (the paper's Fig. 2 probe).
    #[serde(deserialize_with = "opt_one_or_many")]
    pub probe: Option<Vec<String>>,
    /// Read the probe as a generative format: an output counts when every one
    /// of its words is a probe word (`format::Format`), not only its first.
    pub probe_every_word: bool,
    /// Between demonstrations and the query; none: the model's own
    /// (`data::fewshot::model_separator`), the one its training used.
    pub separator: Option<String>,
    pub quiet: bool,
    /// Reuse cached results of identical cells.
    #[serde(rename = "cache")]
    pub use_cache: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        let g = GenerateOptions::default();
        Self {
            shots: vec![1, 4],
            limit: None,
            prompt: None,
            beams: g.num_beams,
            length_penalty: g.length_penalty,
            early_stopping: g.early_stopping,
            batch_size: 8,
            seed: 0,
            max_input_len: 1024,
            probe: None,
            probe_every_word: false,
            separator: None,
            quiet: false,
            use_cache: true,
        }
    }
}

impl EvalOptions {
    /// Decoding settings for a task that generates up to `max_new` tokens.
    pub fn generate_options(&self, max_new: usize) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens: max_new,
            num_beams: self.beams.max(1),
            length_penalty: self.length_penalty,
            early_stopping: self.early_stopping,
            stop: None,
        }
    }

    fn separator(&self) -> &str {
        self.separator.as_deref().unwrap_or(DEFAULT_SEPARATOR)
    }
}

pub fn prompts_for(task: &EvalTask, k: usize, n: usize, opts: &EvalOptions, tok: &Tokenizer) -> Result<Vec<String>> {
    let (seed, budget, sep) = (opts.seed, opts.max_input_len, opts.separator());
    let count = |t: &str| tok.encode(t, false).map(|ids| ids.len()).unwrap_or(usize::MAX / 4);
    let cut = |t: &str, max: usize| -> String {
        tok.encode(t, false)
            .ok()
            .and_then(|ids| tok.decode(&ids[..max.min(ids.len())], false).ok())
            .unwrap_or_default()
    };
    let mut out = Vec::with_capacity(n);
    if let Some(prebuilt) = task.episodes.get(&k) {
        return prebuilt.iter().take(n).map(|e| task.input_of(e, tok)).collect();
    }
    for (i, ex) in task.examples.iter().take(n).enumerate() {
        let query = task.input_of(ex, tok)?;
        if k == 0 || task.pool.is_empty() {
            out.push(query);
            continue;
        }
        let exclude = if task.pool_is_eval { Some(i) } else { None };
        let idx = sample_demos(task.pool.len(), k, seed.wrapping_add(i as u64), exclude)?;
        let mut demos = Vec::with_capacity(k);
        for j in idx {
            if let Some(d) = task.pool.get(j) {
                demos.push((
                    task.input_of(d, tok)?,
                    d.references.first().cloned().unwrap_or_default(),
                ));
            }
        }
        let demos = fit_to_budget(&demos, &query, sep, budget, 16, &count, &cut)
            .map_err(|e| Error::msg(format!("task {} example {i}: {e}", task.name)))?;
        out.push(build_prompt(&query, &demos, sep));
    }
    Ok(out)
}

/// Score post-processed predictions with the task's metric (0-100 scale).
pub fn score(metric: &Metric, preds: &[String], refs: &[Vec<String>]) -> Result<f64> {
    Ok(match metric {
        Metric::Accuracy => {
            let labels: Vec<String> = refs.iter().map(|r| r.first().cloned().unwrap_or_default()).collect();
            metrics::accuracy(preds, &labels)?
        }
        Metric::ExactMatch => metrics::exact_match_score(preds, refs)?,
        Metric::Bleu => metrics::corpus_bleu(preds, refs)?.score,
        Metric::Rouge2 => {
            let r: Vec<String> = refs.iter().map(|r| r.first().cloned().unwrap_or_default()).collect();
            100.0 * metrics::mean_rouge2_f(preds, &r)?
        }
    })
}

/// Generate raw outputs for prompts, in batches, with an optional soft
/// prompt. With `stop_when_final`, greedy rows of a decoder-only model stop
/// once their answer of that kind is fixed under the post-processing rules.
pub fn generate_raw(
    model: &dyn LanguageModel,
    tok: &Tokenizer,
    prompts: &[String],
    opts: &EvalOptions,
    max_new: usize,
    stop_when_final: Option<OutputKind>,
    progress: &dyn Fn(usize),
) -> Result<Vec<String>> {
    let mut gen = opts.generate_options(max_new);
    if let Some(kind) = stop_when_final.filter(|_| model.target_continues_input()) {
        // A row stops once more text could not change its post-processed
        // answer: the same scores, without generating the tokens the rules
        // would cut. Decoder-only models only (see `is_final`).
        let tok = tok.clone();
        gen.stop = Some(StopRule(std::sync::Arc::new(move |ids: &[u32]| {
            tok.decode_for_postprocess(ids).is_ok_and(|t| is_final(&t, kind))
        })));
    }
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(opts.batch_size.max(1)) {
        if crate::interrupt::interrupted() {
            return Err(Error::Interrupted);
        }
        let ids = chunk
            .iter()
            .map(|p| crate::text::encode_input(tok, model, p, opts.max_input_len))
            .collect::<Result<Vec<_>>>()?;
        let generated = crate::params::no_grad(|| -> Result<Vec<Vec<u32>>> {
            let (embeds, mask) = embed_inputs(model, &ids, &vec![opts.prompt.as_ref(); ids.len()])?;
            model.generate(&embeds, &mask, &gen)
        })?;
        for g in generated {
            out.push(tok.decode_for_postprocess(&g)?);
        }
        progress(out.len());
    }
    Ok(out)
}

/// Evaluate one task at one shot count.
pub fn evaluate_cell(
    model: &dyn LanguageModel,
    tok: &Tokenizer,
    task: &EvalTask,
    k: usize,
    opts: &EvalOptions,
) -> Result<Cell> {
    let examples = task.examples_for(k);
    let n = opts.limit.unwrap_or(examples.len()).min(examples.len());
    if n == 0 {
        return Err(Error::msg(format!("task {} has no evaluation examples", task.name)));
    }
    let prompts = prompts_for(task, k, n, opts, tok)?;
    let bar = Progress::new(&format!("eval {} {k}-shot", task.name), 0, n, opts.quiet);
    let raw = generate_raw(
        model,
        tok,
        &prompts,
        opts,
        task.max_new_tokens,
        Some(task.kind),
        &|done| bar.update(done, f64::NAN, ""),
    )?;
    bar.finish();
    let preds: Vec<String> = raw.iter().map(|r| postprocess(r, task.kind)).collect();
    let refs: Vec<Vec<String>> = examples.iter().take(n).map(|e| e.references.clone()).collect();
    let value = score(&task.metric, &preds, &refs)?;
    let example_stats = preds
        .iter()
        .zip(&refs)
        .map(|(p, r)| statistics::example(&task.metric, p, r))
        .collect::<Result<Vec<_>>>()?;
    let (share, probe_hits) = match &opts.probe {
        Some(words) => {
            let format = format::Format {
                words: words.iter().cloned().collect(),
                every_word: opts.probe_every_word,
            };
            let hits: Vec<f64> = raw.iter().map(|r| if format.holds(r) { 1.0 } else { 0.0 }).collect();
            (Some(format.share(&raw)), hits)
        }
        None => (None, Vec::new()),
    };
    let samples = prompts
        .iter()
        .zip(preds.iter())
        .zip(refs.iter())
        .take(3)
        .map(|((p, o), r)| (p.clone(), o.clone(), r.first().cloned().unwrap_or_default()))
        .collect();
    Ok(Cell {
        task: task.name.clone(),
        shots: k,
        metric: task.metric.name().into(),
        value,
        n,
        label_share: share,
        samples,
        example_stats,
        probe_hits,
        provenance: None,
    })
}

/// Every task at every shot count; cached by (model, prompt, task, options).
pub fn evaluate(
    model: &dyn LanguageModel,
    tok: &Tokenizer,
    tasks: &[EvalTask],
    opts: &EvalOptions,
) -> Result<ResultTable> {
    let model_hash = if opts.use_cache {
        Some(cache::model_fingerprint(model, opts.prompt.as_ref())?)
    } else {
        None
    };
    let mut table = ResultTable::default();
    for task in tasks {
        for &k in &opts.shots {
            let key = model_hash.as_ref().map(|h| cache::cell_key(h, task, k, opts));
            if let Some(hit) = key.as_ref().and_then(|k| cache::get(k)) {
                table.cells.push(hit);
                continue;
            }
            let cell = evaluate_cell(model, tok, task, k, opts)?;
            if let Some(key) = &key {
                cache::put(key, &cell);
            }
            table.cells.push(cell);
        }
    }
    Ok(table)
}
