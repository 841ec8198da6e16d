//! Turning lists of {input, target} examples into training batches: seeded
//! shuffling, multi-task mixing by ratios, optional k-shot demonstrations,
//! truncation and padding.
//!
//! The batch of step k is a pure function of (seed, k), so a resumed run sees
//! exactly the batches an uninterrupted one would have seen.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::data::fewshot::build_prompt;
use crate::error::{Error, Result};
use crate::model::LanguageModel;
use crate::text::{encode_input, encode_target};
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug)]
pub struct Example {
    pub input: String,
    pub target: String,
    /// Which task the example belongs to (selects its soft prompt).
    pub task: String,
}

/// One task's examples and its share of each batch.
#[derive(Clone, Debug)]
pub struct TaskData {
    pub name: String,
    pub examples: Vec<Example>,
    /// Relative share of batch rows; see [`TaskData::new`] for the default.
    pub ratio: f64,
}

impl TaskData {
    /// A task mixed in proportion to its size ("examples-proportional
    /// mixing", as the paper's code base mixes tasks): its ratio is its example count.
    /// Set `ratio` to mix otherwise (e.g. equal shares).
    pub fn new(name: &str, examples: Vec<Example>) -> Self {
        let ratio = examples.len() as f64;
        Self {
            name: name.to_string(),
            examples,
            ratio,
        }
    }
}

/// Token ids of one batch, before padding.
#[derive(Clone, Debug)]
pub struct Batch {
    pub inputs: Vec<Vec<u32>>,
    pub targets: Vec<Vec<u32>>,
    pub tasks: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct BatchOptions {
    pub batch_size: usize,
    pub max_input_len: usize,
    pub max_target_len: usize,
    /// Demonstrations from the same task prepended to every input (the "+1-shot" variants).
    pub shots: usize,
    /// What joins demonstrations and the query: the model's separator
    /// (`data::fewshot::model_separator`), the same one evaluation uses.
    pub separator: String,
    /// Group examples of similar length into batches (less padding; the
    /// batch order is still shuffled). Single-task data only.
    pub bucket_by_length: bool,
    pub seed: u64,
}

pub struct Batcher {
    tasks: Vec<TaskData>,
    opts: BatchOptions,
    /// Every example by its own task name: the pool its demonstrations come from.
    by_task: std::collections::HashMap<String, Vec<Example>>,
    /// The current epoch's batches (indices into the single task's examples).
    epoch_cache: std::sync::Mutex<Option<(usize, Vec<Vec<usize>>)>>,
}

/// Examples in a window sorted by length before batching: large enough to
/// find similar lengths, small enough to keep batches varied across the epoch.
const BUCKET_WINDOW_BATCHES: usize = 64;

impl Batcher {
    pub fn new(tasks: Vec<TaskData>, opts: BatchOptions) -> Result<Self> {
        if opts.batch_size == 0 {
            return Err(Error::msg("batch_size must be at least 1"));
        }
        if tasks.is_empty() || tasks.iter().all(|t| t.examples.is_empty()) {
            return Err(Error::msg("no training examples"));
        }
        for t in &tasks {
            if t.examples.is_empty() {
                return Err(Error::msg(format!("task '{}' has no examples", t.name)));
            }
            if !(t.ratio > 0.0 && t.ratio.is_finite()) {
                return Err(Error::msg(format!(
                    "task '{}': mixing ratio must be positive, got {}",
                    t.name, t.ratio
                )));
            }
        }
        let mut by_task: std::collections::HashMap<String, Vec<Example>> = std::collections::HashMap::new();
        for e in tasks.iter().flat_map(|t| t.examples.iter()) {
            by_task.entry(e.task.clone()).or_default().push(e.clone());
        }
        Ok(Self {
            tasks,
            opts,
            by_task,
            epoch_cache: std::sync::Mutex::new(None),
        })
    }

    /// The batches of one epoch over a single task: a seeded permutation cut
    /// into batches (sorted by length within windows when bucketing), in a
    /// seeded order. Every batch is full; the last rows wrap to the start.
    fn epoch_batches(&self, epoch: usize) -> Vec<Vec<usize>> {
        let ex = &self.tasks[0].examples;
        let (n, bs) = (ex.len(), self.opts.batch_size);
        let mut rng = crate::seed::rng(self.opts.seed, &format!("batches:epoch:{epoch}"));
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let count = n.div_ceil(bs);
        let wrap: Vec<usize> = (0..count * bs - n).map(|i| order[i % n]).collect();
        order.extend(wrap);
        if self.opts.bucket_by_length {
            for window in order.chunks_mut(bs * BUCKET_WINDOW_BATCHES) {
                window.sort_by_key(|&i| ex[i].input.len() + ex[i].target.len());
            }
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(bs).map(|c| c.to_vec()).collect();
        if self.opts.bucket_by_length {
            batches.shuffle(&mut rng);
        }
        batches
    }

    fn single_task_batch(&self, step: usize) -> Vec<usize> {
        let per_epoch = self.tasks[0].examples.len().div_ceil(self.opts.batch_size);
        let (epoch, index) = (step / per_epoch, step % per_epoch);
        let mut cache = self.epoch_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.as_ref().map(|c| c.0) != Some(epoch) {
            *cache = Some((epoch, self.epoch_batches(epoch)));
        }
        cache.as_ref().and_then(|c| c.1.get(index).cloned()).unwrap_or_default()
    }

    /// The examples of step `step` (text, before tokenisation).
    pub fn examples_at(&self, step: usize) -> Vec<Example> {
        let bs = self.opts.batch_size;
        if self.tasks.len() == 1 {
            // One task: seeded epochs of batches.
            let ex = &self.tasks[0].examples;
            self.single_task_batch(step)
                .into_iter()
                .map(|i| ex[i].clone())
                .collect()
        } else {
            // Several tasks: each row picks a task by ratio, then an example of it.
            let mut rng = crate::seed::rng(self.opts.seed, &format!("batches:step:{step}"));
            let total: f64 = self.tasks.iter().map(|t| t.ratio).sum();
            (0..bs)
                .map(|_| {
                    let mut r = rng.random::<f64>() * total;
                    let task = self.tasks.iter().find(|t| {
                        r -= t.ratio;
                        r < 0.0
                    });
                    let task = task.unwrap_or(&self.tasks[self.tasks.len() - 1]);
                    task.examples[rng.random_range(0..task.examples.len())].clone()
                })
                .collect()
        }
    }

    /// Prepend `shots` demonstrations drawn (seeded by step and row) from the same task.
    pub fn with_demonstrations(&self, ex: &Example, step: usize, row: usize) -> String {
        if self.opts.shots == 0 {
            return ex.input.clone();
        }
        let Some(pool) = self.by_task.get(&ex.task) else {
            return ex.input.clone();
        };
        let mut rng = crate::seed::rng(self.opts.seed, &format!("demonstrations:{step}:{row}"));
        let mut demos = Vec::new();
        for _ in 0..self.opts.shots {
            // Never show the example itself as its own demonstration.
            for _ in 0..8 {
                let d = &pool[rng.random_range(0..pool.len())];
                if d.input != ex.input || pool.len() == 1 {
                    demos.push((d.input.clone(), d.target.clone()));
                    break;
                }
            }
        }
        build_prompt(&ex.input, &demos, &self.opts.separator)
    }

    /// Tokenised batch of step `step`, encoded for `model` (`crate::text`).
    pub fn batch(&self, step: usize, tok: &Tokenizer, model: &dyn LanguageModel) -> Result<Batch> {
        let examples = self.examples_at(step);
        let mut b = Batch {
            inputs: vec![],
            targets: vec![],
            tasks: vec![],
        };
        for (row, ex) in examples.iter().enumerate() {
            let text = self.with_demonstrations(ex, step, row);
            b.inputs.push(encode_input(tok, model, &text, self.opts.max_input_len)?);
            b.targets
                .push(encode_target(tok, model, &ex.target, self.opts.max_target_len)?);
            b.tasks.push(ex.task.clone());
        }
        Ok(b)
    }
}
