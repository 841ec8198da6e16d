//! Turning lists of {input, target} examples into training batches: seeded
//! shuffling, multi-task mixing by ratios, optional k-shot demonstrations,
//! truncation and padding.
//!
//! The batch of step k is a pure function of (seed, k), so a resumed run sees
//! exactly the batches an uninterrupted one would have seen.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
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
    pub ratio: f64,
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
    /// What joins demonstrations and the query (the evaluation prompts' joiner).
    pub separator: String,
    pub seed: u64,
}

pub struct Batcher {
    tasks: Vec<TaskData>,
    opts: BatchOptions,
}

/// Demonstrations are joined to the query the way the evaluation prompts join them.
pub const DEMO_SEPARATOR: &str = "\n\n";

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
                return Err(Error::msg(format!("task '{}': mixing ratio must be positive, got {}", t.name, t.ratio)));
            }
        }
        Ok(Self { tasks, opts })
    }

    /// The examples of step `step` (text, before tokenisation).
    pub fn examples_at(&self, step: usize) -> Vec<Example> {
        let bs = self.opts.batch_size;
        if self.tasks.len() == 1 {
            // One task: walk seeded permutations epoch by epoch.
            let ex = &self.tasks[0].examples;
            let n = ex.len();
            (0..bs)
                .map(|j| {
                    let global = step * bs + j;
                    let (epoch, pos) = (global / n, global % n);
                    let mut order: Vec<usize> = (0..n).collect();
                    order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.opts.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
                    ex[order[pos]].clone()
                })
                .collect()
        } else {
            // Several tasks: each row picks a task by ratio, then an example of it.
            let mut rng = ChaCha8Rng::seed_from_u64(self.opts.seed.wrapping_add((step as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)));
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
    fn with_demonstrations(&self, ex: &Example, step: usize, row: usize) -> String {
        if self.opts.shots == 0 {
            return ex.input.clone();
        }
        let pool = self.tasks.iter().find(|t| t.name == ex.task).map(|t| &t.examples);
        let Some(pool) = pool else { return ex.input.clone() };
        let mut rng = ChaCha8Rng::seed_from_u64(self.opts.seed ^ ((step * 7919 + row) as u64).wrapping_mul(0x9E37_79B9));
        let mut parts = Vec::new();
        for _ in 0..self.opts.shots {
            // Never show the example itself as its own demonstration.
            for _ in 0..8 {
                let d = &pool[rng.random_range(0..pool.len())];
                if d.input != ex.input || pool.len() == 1 {
                    parts.push(format!("{} {}", d.input, d.target));
                    break;
                }
            }
        }
        parts.push(ex.input.clone());
        parts.join(&self.opts.separator)
    }

    /// Tokenised batch of step `step`: inputs keep their end (the query) when cut.
    pub fn batch(&self, step: usize, tok: &Tokenizer) -> Result<Batch> {
        let examples = self.examples_at(step);
        let mut b = Batch { inputs: vec![], targets: vec![], tasks: vec![] };
        for (row, ex) in examples.iter().enumerate() {
            let text = self.with_demonstrations(ex, step, row);
            b.inputs.push(keep_tail(tok.encode(&text, true)?, self.opts.max_input_len));
            let mut target = tok.encode(&ex.target, true)?;
            target.truncate(self.opts.max_target_len.max(1));
            b.targets.push(target);
            b.tasks.push(ex.task.clone());
        }
        Ok(b)
    }
}

/// Cut a sequence to `max` tokens from the front, so a long demonstration
/// prefix shrinks while the query and its EOS stay whole.
pub fn keep_tail(mut ids: Vec<u32>, max: usize) -> Vec<u32> {
    if max > 0 && ids.len() > max {
        ids.drain(..ids.len() - max);
    }
    ids
}
