//! `T5` behind the crate's `LanguageModel` interface.

use candle_core::Tensor;

use super::decode::T5Steps;
use super::T5;
use crate::error::Result;
use crate::kernels::Dropout;
use crate::model::generate::{decode, Specials};
use crate::model::{GenerateOptions, Generation, LanguageModel};
use crate::params::ParamStore;

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
