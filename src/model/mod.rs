//! Models. Everything above this module (soft prompts, training, evaluation)
//! talks to a model through `LanguageModel`, so it is not T5-specific: a model
//! embeds ids, takes input *embeddings* plus a mask (a soft prompt is just more
//! embeddings in front), returns logits for teacher-forced targets, and
//! generates.

pub mod generate;
pub mod gguf;
pub mod layers;
pub mod llama;
pub mod loading;
pub mod loss;
pub mod t5;
pub mod tokenizer;
pub mod toy_config;

use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
pub use crate::kernels::Dropout;
use crate::params::ParamStore;
pub use generate::{GenerateOptions, Generation};
pub use llama::{Llama, LlamaConfig};
pub use t5::{T5Config, T5};

/// Logits and the training loss for one batch.
pub struct Output {
    pub logits: Tensor,
    pub loss: Tensor,
}

pub trait LanguageModel: Send + Sync {
    /// "t5" (and "mt5"), or a decoder-only "llama" / "mistral" / "qwen2".
    fn arch(&self) -> &str;
    fn params(&self) -> &ParamStore;
    fn hidden_size(&self) -> usize;
    fn vocab_size(&self) -> usize;
    fn pad_id(&self) -> u32;
    fn eos_id(&self) -> u32;
    /// ids (b, n) -> embeddings (b, n, d).
    fn embed(&self, ids: &Tensor) -> Result<Tensor>;
    /// Teacher-forced logits (b, t, v) for targets (b, t) given input
    /// embeddings (b, s, d) with mask (b, s). `train` turns dropout on.
    fn forward(&self, input_embeds: &Tensor, input_mask: &Tensor, targets: &Tensor, train: bool) -> Result<Tensor>;
    /// Generated ids per row (up to and including EOS) with their scores
    /// (see `Generation`): greedy when `opts.num_beams` is 1, else beam search.
    fn generate_scored(
        &self,
        input_embeds: &Tensor,
        input_mask: &Tensor,
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>>;
    /// The dropout stream (its rate and its seeded state, for checkpoints).
    fn dropout(&self) -> &Dropout;
    /// The HF config.json this model saves.
    fn config_json(&self) -> serde_json::Value;
    /// Whether inputs end with EOS, as T5 is trained. A decoder-only model
    /// continues its input, so an EOS there would end the text it is asked to
    /// continue: callers building inputs should append EOS only when this holds.
    fn input_ends_with_eos(&self) -> bool {
        true
    }
    /// Whether a target continues the input text (decoder-only models), so it
    /// is written after the demonstration joiner; for T5 it is a separate
    /// sequence.
    fn target_continues_input(&self) -> bool {
        false
    }
    /// Ids of special tokens (pad, eos, ...): a "vocab" prompt init never draws them.
    fn special_ids(&self) -> Vec<u32> {
        vec![self.pad_id(), self.eos_id()]
    }
    /// The PEFT `task_type` of this model's prompt-tuning adapters.
    fn peft_task_type(&self) -> &'static str;
    /// The parameters of the last layer in named groups (attention
    /// projections, the MLP), as the paper's Fig. 3 compares gradients per group.
    fn last_layer_groups(&self) -> Vec<(String, Vec<String>)>;

    /// Generated ids per row (up to and including EOS), without scores.
    fn generate(&self, input_embeds: &Tensor, input_mask: &Tensor, opts: &GenerateOptions) -> Result<Vec<Vec<u32>>> {
        Ok(self
            .generate_scored(input_embeds, input_mask, opts)?
            .into_iter()
            .map(|g| g.ids)
            .collect())
    }

    /// Logits and the mean token cross-entropy (padding, mask 0, ignored).
    fn loss(
        &self,
        input_embeds: &Tensor,
        input_mask: &Tensor,
        targets: &Tensor,
        target_mask: &Tensor,
        label_smoothing: f64,
        train: bool,
    ) -> Result<Output> {
        let logits = self.forward(input_embeds, input_mask, targets, train)?;
        let loss = loss::cross_entropy(&logits, targets, target_mask, label_smoothing)?;
        Ok(Output { logits, loss })
    }
}

/// A shareable model handle (cheap to clone; scripts pass it around).
pub type Model = Arc<dyn LanguageModel>;

/// Right-pad id sequences into (b, n) ids and a 0/1 mask.
pub fn pad_batch(seqs: &[Vec<u32>], pad: u32, device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
    if seqs.is_empty() {
        return Err(Error::msg("empty batch"));
    }
    let n = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(seqs.len() * n);
    let mut mask = Vec::with_capacity(seqs.len() * n);
    for s in seqs {
        ids.extend(s.iter().copied().chain(std::iter::repeat_n(pad, n - s.len())));
        mask.extend(std::iter::repeat_n(1f32, s.len()).chain(std::iter::repeat_n(0f32, n - s.len())));
    }
    Ok((
        Tensor::from_vec(ids, (seqs.len(), n), device)?,
        Tensor::from_vec(mask, (seqs.len(), n), device)?.to_dtype(DType::F32)?,
    ))
}
