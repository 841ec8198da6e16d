//! `Llama` behind the crate's `LanguageModel` interface.

use candle_core::Tensor;

use super::Llama;
use crate::error::Result;
use crate::kernels::Dropout;
use crate::model::{GenerateOptions, Generation, LanguageModel};
use crate::params::ParamStore;

impl LanguageModel for Llama {
    fn arch(&self) -> &str {
        self.cfg.arch()
    }
    fn params(&self) -> &ParamStore {
        &self.params
    }
    fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }
    fn pad_id(&self) -> u32 {
        self.cfg.pad_token_id.unwrap_or_else(|| self.eos_id())
    }
    fn eos_id(&self) -> u32 {
        self.eos.first().copied().unwrap_or(0)
    }
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Llama::embed(self, ids)
    }
    fn forward(&self, input_embeds: &Tensor, input_mask: &Tensor, targets: &Tensor, train: bool) -> Result<Tensor> {
        self.teacher_forced(input_embeds, input_mask, targets, train)
    }
    fn generate_scored(
        &self,
        input_embeds: &Tensor,
        input_mask: &Tensor,
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>> {
        Llama::generate_scored(self, input_embeds, input_mask, opts)
    }
    fn dropout(&self) -> &Dropout {
        &self.dropout
    }
    fn config_json(&self) -> serde_json::Value {
        self.hf_config()
    }
    fn input_ends_with_eos(&self) -> bool {
        false
    }
    fn target_continues_input(&self) -> bool {
        true
    }
    fn special_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .eos
            .iter()
            .copied()
            .chain(self.cfg.bos_token_id)
            .chain([self.pad_id()])
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
    fn peft_task_type(&self) -> &'static str {
        "CAUSAL_LM"
    }
    fn last_layer_groups(&self) -> Vec<(String, Vec<String>)> {
        let l = format!("model.layers.{}", self.cfg.num_hidden_layers.saturating_sub(1));
        let one = |name: &str, proj: &str| (name.to_string(), vec![format!("{l}.self_attn.{proj}.weight")]);
        let mlp = ["gate_proj", "up_proj", "down_proj"]
            .iter()
            .map(|p| format!("{l}.mlp.{p}.weight"))
            .collect();
        vec![
            one("self-attn q", "q_proj"),
            one("self-attn k", "k_proj"),
            one("self-attn v", "v_proj"),
            one("self-attn o", "o_proj"),
            ("MLP".to_string(), mlp),
        ]
    }
}
