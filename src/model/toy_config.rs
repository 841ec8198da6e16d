//! The options of `new_toy_model`, declared once: a randomly initialised T5
//! sized for the toy world. Field names are T5 config.json names; `Default`
//! is the size of the built-in toy model. `t5_config` checks the ranges and
//! fills in what follows from the rest (d_kv = d_model / num_heads, d_ff =
//! 4 d_model, as many decoder layers as encoder layers).

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use candle_core::Device;

use super::{Model, T5Config, T5};
use crate::error::{Error, Result};
use crate::options::number;

/// Largest randomly initialised toy model, in parameters.
const MAX_PARAMS: usize = 100_000_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToyModelConfig {
    pub d_model: usize,
    /// Width of one attention head (none: d_model / num_heads).
    pub d_kv: Option<usize>,
    /// Width of the feed-forward layer (none: 4 d_model).
    pub d_ff: Option<usize>,
    pub num_layers: usize,
    /// Decoder depth (none: num_layers).
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    /// "gated-gelu" (T5 v1.1 / mT5) or "relu" (T5 v1.0).
    pub feed_forward_proj: String,
    #[serde(deserialize_with = "number")]
    pub dropout_rate: f64,
    pub tie_word_embeddings: bool,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
}

impl Default for ToyModelConfig {
    fn default() -> Self {
        Self {
            d_model: 128,
            d_kv: None,
            d_ff: None,
            num_layers: 3,
            num_decoder_layers: None,
            num_heads: 4,
            feed_forward_proj: "gated-gelu".into(),
            dropout_rate: 0.0,
            tie_word_embeddings: false,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
        }
    }
}

/// `value` must lie in 1..=max.
fn in_range(key: &str, value: usize, max: usize) -> Result<usize> {
    if value < 1 || value > max {
        return Err(Error::msg(format!(
            "new_toy_model: '{key}' must be in 1..={max}, got {value}"
        )));
    }
    Ok(value)
}

impl ToyModelConfig {
    /// The T5 config for a vocabulary of `vocab_size` tokens, checked.
    pub fn t5_config(&self, vocab_size: usize) -> Result<T5Config> {
        let d_model = in_range("d_model", self.d_model, 4096)?;
        let num_heads = in_range("num_heads", self.num_heads, 64)?;
        let num_layers = in_range("num_layers", self.num_layers, 48)?;
        let buckets = in_range(
            "relative_attention_num_buckets",
            self.relative_attention_num_buckets,
            1024,
        )?;
        let max_distance = in_range(
            "relative_attention_max_distance",
            self.relative_attention_max_distance,
            1 << 20,
        )?;
        if buckets < 4 || max_distance < buckets {
            return Err(Error::msg(format!(
                "new_toy_model: need relative_attention_num_buckets >= 4 and relative_attention_max_distance >= it, \
                 got {buckets} and {max_distance}"
            )));
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return Err(Error::msg(format!(
                "new_toy_model: 'dropout_rate' must be in [0, 1), got {}",
                self.dropout_rate
            )));
        }
        let config = serde_json::json!({
            "model_type": "t5",
            "vocab_size": vocab_size,
            "d_model": d_model,
            "d_kv": in_range("d_kv", self.d_kv.unwrap_or((d_model / num_heads).max(1)), 1024)?,
            "d_ff": in_range("d_ff", self.d_ff.unwrap_or(4 * d_model), 65536)?,
            "num_layers": num_layers,
            "num_decoder_layers": in_range("num_decoder_layers", self.num_decoder_layers.unwrap_or(num_layers), 48)?,
            "num_heads": num_heads,
            "relative_attention_num_buckets": buckets,
            "relative_attention_max_distance": max_distance,
            "dropout_rate": self.dropout_rate,
            "layer_norm_epsilon": 1e-6,
            "feed_forward_proj": self.feed_forward_proj,
            "tie_word_embeddings": self.tie_word_embeddings,
            "decoder_start_token_id": 0,
            "pad_token_id": 0,
            "eos_token_id": 1,
        });
        let cfg: T5Config = serde_json::from_value(config).map_err(|e| Error::msg(format!("new_toy_model: {e}")))?;
        let count: usize = T5::param_shapes(&cfg)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        if count > MAX_PARAMS {
            return Err(Error::msg(format!(
                "new_toy_model: {count} parameters is more than a toy model may have ({MAX_PARAMS})"
            )));
        }
        Ok(cfg)
    }

    /// A randomly initialised model of this size for a vocabulary of `vocab_size` tokens.
    pub fn random_model(&self, vocab_size: usize, seed: u64, device: &Device) -> Result<Model> {
        Ok(Arc::new(T5::random(self.t5_config(vocab_size)?, seed, device)?))
    }
}
