//! The fields of an HF T5/mT5 config.json that the model reads, with
//! transformers' defaults.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The fields of an HF T5/mT5 config.json that the model uses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_dropout")]
    pub dropout_rate: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Every other field of config.json, kept so a saved model round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_dropout() -> f64 {
    0.1
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}
fn default_true() -> bool {
    true
}

impl T5Config {
    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }
    pub fn is_gated(&self) -> bool {
        self.feed_forward_proj.starts_with("gated-")
    }
    pub fn pad_id(&self) -> u32 {
        self.pad_token_id.unwrap_or(0)
    }
    pub fn eos_id(&self) -> u32 {
        self.eos_token_id.unwrap_or(1)
    }
    pub fn decoder_start_id(&self) -> u32 {
        self.decoder_start_token_id.unwrap_or(self.pad_id())
    }
    pub(super) fn validate(&self) -> Result<()> {
        let act = self.feed_forward_proj.trim_start_matches("gated-");
        if !matches!(act, "relu" | "gelu" | "gelu_new") {
            return Err(Error::msg(format!(
                "T5 config: unsupported feed_forward_proj '{}'",
                self.feed_forward_proj
            )));
        }
        if self.num_heads == 0 || self.d_kv == 0 || self.d_model == 0 || self.vocab_size == 0 {
            return Err(Error::msg(
                "T5 config: d_model, d_kv, num_heads and vocab_size must be positive",
            ));
        }
        Ok(())
    }
}
