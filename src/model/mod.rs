//! Models. Everything above this module (soft prompts, training, evaluation)
//! talks to a model through `LanguageModel`, so it is not T5-specific: a model
//! embeds ids, takes input *embeddings* plus a mask (a soft prompt is just more
//! embeddings in front), returns logits for teacher-forced targets, and
//! generates.

pub mod activation;
pub mod attention;
pub mod batched;
pub mod bf16;
pub mod blas;
pub mod fused;
pub mod gemv;
pub mod generate;
pub mod gguf;
pub mod layers;
pub mod llama;
pub mod loading;
pub mod loss;
pub mod precision;
pub mod t5;
pub mod tokenizer;
pub mod toy_config;

use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::params::ParamStore;
use generate::{decode, Specials, StepDecoder};
pub use generate::{GenerateOptions, Generation};
pub use layers::Dropout;
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

/// T5 decoding state for one generate call.
struct T5Steps<'a> {
    model: &'a T5,
    enc_mask: Tensor,
    cache: t5::DecoderCache,
}

impl StepDecoder for T5Steps<'_> {
    fn step(&mut self, last: &[u32]) -> Result<Tensor> {
        let ids = Tensor::from_vec(last.to_vec(), (last.len(), 1), self.enc_mask.device())?;
        self.model.decode_step(&ids, &self.enc_mask, &mut self.cache)
    }
    fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        let idx = Tensor::from_vec(rows.to_vec(), rows.len(), self.enc_mask.device())?;
        self.cache = self.cache.select(&idx)?;
        self.enc_mask = self.enc_mask.index_select(&idx, 0)?;
        Ok(())
    }
}

impl LanguageModel for T5 {
    fn arch(&self) -> &str {
        "t5"
    }
    fn special_ids(&self) -> Vec<u32> {
        // T5 vocabularies start with pad 0, eos 1 and SentencePiece's unk 2.
        vec![self.pad_id(), self.eos_id(), 2]
    }
    fn peft_task_type(&self) -> &'static str {
        "SEQ_2_SEQ_LM"
    }
    fn last_layer_groups(&self) -> Vec<(String, Vec<String>)> {
        let l = format!("decoder.block.{}.layer", self.cfg.decoder_layers().saturating_sub(1));
        let one = |name: &str, param: String| (name.to_string(), vec![param]);
        let mlp: Vec<String> = self
            .params
            .iter()
            .map(|p| p.name().to_string())
            .filter(|n| n.starts_with(&format!("{l}.2.DenseReluDense.")))
            .collect();
        vec![
            one("self-attn q", format!("{l}.0.SelfAttention.q.weight")),
            one("self-attn k", format!("{l}.0.SelfAttention.k.weight")),
            one("self-attn v", format!("{l}.0.SelfAttention.v.weight")),
            one("cross-attn q", format!("{l}.1.EncDecAttention.q.weight")),
            one("cross-attn v", format!("{l}.1.EncDecAttention.v.weight")),
            ("MLP".to_string(), mlp),
        ]
    }
    fn params(&self) -> &ParamStore {
        &self.params
    }
    fn hidden_size(&self) -> usize {
        self.cfg.d_model
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    fn pad_id(&self) -> u32 {
        self.cfg.pad_id()
    }
    fn eos_id(&self) -> u32 {
        self.cfg.eos_id()
    }
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        T5::embed(self, ids)
    }
    fn forward(&self, input_embeds: &Tensor, input_mask: &Tensor, targets: &Tensor, train: bool) -> Result<Tensor> {
        let enc = self.encode(input_embeds, input_mask, train)?;
        let dec_in = self.shift_right(targets)?;
        let hidden = self.decode(&dec_in, &enc, input_mask, train)?;
        self.logits(&hidden)
    }
    fn generate_scored(
        &self,
        input_embeds: &Tensor,
        input_mask: &Tensor,
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>> {
        let b = input_embeds.dim(0)?;
        let enc = self.encode(input_embeds, input_mask, false)?;
        let sp = Specials {
            start: self.cfg.decoder_start_id(),
            eos: self.eos_id(),
            pad: self.pad_id(),
        };
        let mut steps = T5Steps {
            model: self,
            enc_mask: input_mask.clone(),
            cache: self.start_decoding(&enc)?,
        };
        decode(&mut steps, b, sp, opts)
    }
    fn dropout(&self) -> &Dropout {
        &self.dropout
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.cfg).unwrap_or(serde_json::Value::Null)
    }
}

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
