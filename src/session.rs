//! A model with what it takes to use it: its tokenizer, where it came from,
//! the separator that joins demonstrations to a query, and the soft prompts
//! made for it (one per task). Evaluation, few-shot prompts and training
//! built through a `Session` use the model's own separator, so a Rust caller
//! builds the same prompts as a script (whose `load_model` returns one).
//!
//! ```no_run
//! use promot::session::{LoadOptions, Session};
//! let s = Session::load("toy", &LoadOptions::default())?;
//! let text = s.generate_texts(&["translate English to French: the cat".into()], None, &Default::default(), 512)?;
//! # Ok::<(), promot::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::fewshot;
use crate::error::{Error, Result};
use crate::eval::cache;
use crate::eval::record::Provenance;
use crate::eval::{self, EvalOptions, EvalTask, ResultTable};
use crate::model::{loading, GenerateOptions, Generation, LanguageModel, Model};
use crate::prompt::SoftPrompt;
use crate::provenance::{self, Build};
use crate::tokenizer::Tokenizer;
use crate::train::{TaskData, TrainConfig, TrainOptions};
use serde_json::{json, Value};

/// How `Session::load` (and `load_model`) loads.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadOptions {
    /// "cpu", "cuda" or "metal"; none: the default device (`promot --device`,
    /// a script's `device(NAME)`).
    pub device: Option<String>,
    /// The parameters' dtype: f32, f16, bf16 or f64.
    pub dtype: String,
    /// Seeds the model's dropout stream.
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: None,
            dtype: "f32".into(),
            seed: 0,
        }
    }
}

/// A model, its tokenizer and separator, and its prompts by task.
#[derive(Clone)]
pub struct Session {
    pub model: Model,
    pub tokenizer: Arc<Tokenizer>,
    /// What the model was loaded from, as given.
    pub source: String,
    /// What joins demonstrations and queries for this model, in training and
    /// evaluation alike (`data::fewshot::model_separator`).
    pub separator: String,
    pub prompts: Arc<Mutex<BTreeMap<String, SoftPrompt>>>,
}

impl Session {
    /// Load `spec`: "toy", "smollm2", a model directory, a GGUF file or a hub
    /// id (`model::loading::resolve`), with its tokenizer and separator.
    pub fn load(spec: &str, opts: &LoadOptions) -> Result<Session> {
        let device = match &opts.device {
            Some(name) => crate::device::device(name)?,
            None => crate::device::default_device()?,
        };
        let dtype = dtype_named(&opts.dtype)?;
        let (model, dir) = loading::load(spec, &device, dtype, opts.seed)?;
        let tokenizer = loading::load_tokenizer(&dir, model.as_ref())?;
        let separator = fewshot::model_separator(&dir)?;
        Ok(Session::new(model, tokenizer, spec, separator))
    }

    /// A session over a model already built (a toy model, a test fixture).
    pub fn new(model: Model, tokenizer: Tokenizer, source: &str, separator: String) -> Session {
        Session {
            model,
            tokenizer: Arc::new(tokenizer),
            source: source.to_string(),
            separator,
            prompts: Arc::default(),
        }
    }

    pub fn lm(&self) -> &dyn LanguageModel {
        self.model.as_ref()
    }

    pub fn device(&self) -> Device {
        self.model.params().device()
    }

    /// Input ids as the model reads them (`crate::text::encode_input`).
    pub fn encode_inputs(&self, texts: &[String], max_len: usize) -> Result<Vec<Vec<u32>>> {
        texts
            .iter()
            .map(|t| crate::text::encode_input(&self.tokenizer, self.lm(), t, max_len))
            .collect()
    }

    /// Target ids as training encodes them (`crate::text::encode_target`).
    pub fn encode_targets(&self, texts: &[String], max_len: usize) -> Result<Vec<Vec<u32>>> {
        texts
            .iter()
            .map(|t| crate::text::encode_target(&self.tokenizer, self.lm(), t, max_len))
            .collect()
    }

    /// Embeddings and mask of texts, with an optional prompt in front.
    pub fn embed_texts(
        &self,
        texts: &[String],
        prompt: Option<&SoftPrompt>,
        max_len: usize,
    ) -> Result<(Tensor, Tensor)> {
        let ids = self.encode_inputs(texts, max_len)?;
        crate::prompt::embed_inputs(self.lm(), &ids, &vec![prompt; ids.len()])
    }

    /// Generations with their ids and HF scores (`Generation`).
    pub fn generate_scored(
        &self,
        texts: &[String],
        prompt: Option<&SoftPrompt>,
        opts: &GenerateOptions,
        max_len: usize,
    ) -> Result<Vec<Generation>> {
        crate::params::no_grad(|| {
            let (embeds, mask) = self.embed_texts(texts, prompt, max_len)?;
            self.lm().generate_scored(&embeds, &mask, opts)
        })
    }

    /// Generated texts (special tokens dropped).
    pub fn generate_texts(
        &self,
        texts: &[String],
        prompt: Option<&SoftPrompt>,
        opts: &GenerateOptions,
        max_len: usize,
    ) -> Result<Vec<String>> {
        self.generate_scored(texts, prompt, opts, max_len)?
            .iter()
            .map(|g| self.tokenizer.decode(&g.ids, true))
            .collect()
    }

    /// Demonstrations (input, target) and a query joined with this model's separator.
    pub fn few_shot_prompt(&self, query: &str, demos: &[(String, String)]) -> String {
        fewshot::build_prompt(query, demos, &self.separator)
    }

    /// k-shot evaluation of `tasks`; the separator is this model's unless
    /// `opts` names one. The table's cells carry what made them
    /// (`eval::record::Provenance`: the model and its files' hashes, the
    /// prompt, the tasks' data, shots, decoding, seed, promot's build).
    pub fn evaluate(&self, tasks: &[EvalTask], opts: &EvalOptions) -> Result<ResultTable> {
        let mut opts = opts.clone();
        opts.separator.get_or_insert_with(|| self.separator.clone());
        let mut table = eval::evaluate(self.lm(), &self.tokenizer, tasks, &opts)?;
        let location = self.location();
        let record = Provenance::of(self.lm(), &self.source, location.as_deref(), tasks, &opts)?;
        eval::record::stamp(&mut table, record);
        Ok(table)
    }

    /// Where the model's files lie on this machine, looked up locally only
    /// (never the network): a directory or file, a built-in name, or a hub
    /// id's snapshot in the Hugging Face cache. `None` for a model made in memory.
    pub fn location(&self) -> Option<PathBuf> {
        let spec = self.source.as_str();
        if matches!(spec, "toy" | "smollm2") || Path::new(spec).exists() {
            return loading::resolve(spec).ok();
        }
        let config = hf_hub::Cache::from_env().model(spec.to_string()).get("config.json")?;
        config.parent().map(Path::to_path_buf)
    }

    /// The trainer's options from `config`; the separator is this model's
    /// unless `config` names one.
    pub fn train_options(&self, config: &TrainConfig) -> Result<TrainOptions> {
        let mut config = config.clone();
        config.separator.get_or_insert_with(|| self.separator.clone());
        config.build()
    }

    /// Describe a `train` call for its run folder (`run.json` beside
    /// `metrics.jsonl`, written by `train` once it holds the folder): promot's
    /// build, the model and a hash of its weights as the call starts, the
    /// options, the prompts and a hash of each task's data.
    pub fn describe_run(&self, opts: &mut TrainOptions, config: &TrainConfig, tasks: &[TaskData]) -> Result<()> {
        if opts.run_dir.is_none() && opts.checkpoint_dir.is_none() {
            return Ok(());
        }
        let prompts: Vec<Value> = opts
            .prompt
            .iter()
            .chain(opts.task_prompts.values())
            .map(|p| json!({"name": p.name, "length": p.len(), "trains": p.is_trainable()}))
            .collect();
        let data: Vec<Value> = tasks
            .iter()
            .map(|t| {
                let text: String = t
                    .examples
                    .iter()
                    .map(|e| format!("{}\u{1f}{}\u{1f}{}\u{1e}", e.task, e.input, e.target))
                    .collect();
                json!({"task": t.name, "examples": t.examples.len(), "ratio": t.ratio,
                       "sha256": provenance::sha256_hex(text.as_bytes())})
            })
            .collect();
        let record = json!({
            "format": "promot-run/1",
            "promot": Build::current(),
            "model": {
                "source": self.source,
                "weights_sha256_at_start": cache::model_fingerprint(self.lm(), None)?,
            },
            "options": serde_json::to_value(config).map_err(|e| Error::msg(e.to_string()))?,
            "prompts": prompts,
            "data": data,
            "started_unix": provenance::unix_time(),
        });
        opts.run_record = Some(record);
        Ok(())
    }

    /// A one-line description, as the REPL shows it.
    pub fn summary(&self) -> String {
        let ps = self.lm().params();
        format!(
            "Model({}, d={} from '{}': {} parameters, {} trainable, {} tensors, {} prompt(s))",
            self.lm().arch(),
            self.lm().hidden_size(),
            self.source,
            human(ps.count()),
            human(ps.trainable_count()),
            ps.len(),
            self.prompts.lock().map(|p| p.len()).unwrap_or(0)
        )
    }
}

/// A count as people read it: 101.6K, 1.89M.
pub fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// A dtype by name, as scripts write it: f32, f16, bf16, f64, u8, u32 or
/// i64 (and the long names, float32 ...).
pub fn dtype_named(name: &str) -> Result<DType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "f32" | "float32" | "float" => DType::F32,
        "f16" | "float16" | "half" => DType::F16,
        "bf16" | "bfloat16" => DType::BF16,
        "f64" | "float64" | "double" => DType::F64,
        "u8" | "uint8" => DType::U8,
        "u32" | "uint32" => DType::U32,
        "i64" | "int64" | "long" => DType::I64,
        _ => {
            return Err(Error::msg(format!(
                "unknown dtype \"{name}\" (expected \"f32\", \"f16\", \"bf16\", \"f64\", \"u8\", \"u32\" or \"i64\")"
            )))
        }
    })
}
