//! The configuration of a Llama-family model: the fields of an HF config.json
//! (or of GGUF metadata, see `gguf`), and the rotary frequencies it implies.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One token id or several (Llama 3 lists more than one `eos_token_id`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn ids(&self) -> Vec<u32> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// The fields of an HF Llama / Mistral / Qwen2 config.json that the model uses.
/// Rope settings come either as transformers 5's `rope_parameters` or as the
/// older `rope_theta` + `rope_scaling`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// Llama's switch for biases on q/k/v/o (Qwen2 always has q/k/v biases).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub attention_dropout: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sliding_window: Option<bool>,
    /// Every other field of config.json, kept so a saved model round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_model_type() -> String {
    "llama".into()
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

/// How rotary frequencies are scaled.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (all frequencies / factor).
    Linear {
        factor: f64,
    },
    /// Llama 3.1: low frequencies / factor, high ones kept, a smooth blend between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl LlamaConfig {
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }
    /// "llama", "mistral" or "qwen2".
    pub fn arch(&self) -> &str {
        match self.model_type.as_str() {
            "qwen2" => "qwen2",
            "mistral" => "mistral",
            _ => "llama",
        }
    }
    /// The transformers class this config loads as.
    pub fn class_name(&self) -> &'static str {
        match self.arch() {
            "qwen2" => "Qwen2ForCausalLM",
            "mistral" => "MistralForCausalLM",
            _ => "LlamaForCausalLM",
        }
    }
    pub(crate) fn qkv_bias(&self) -> bool {
        self.arch() == "qwen2" || self.attention_bias
    }
    pub(crate) fn o_bias(&self) -> bool {
        self.arch() == "llama" && self.attention_bias
    }
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id.as_ref().map(TokenIds::ids).unwrap_or_default()
    }
    /// The rope section: `rope_parameters` (transformers 5) or `rope_scaling`.
    fn rope_section(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.rope_parameters
            .as_ref()
            .or(self.rope_scaling.as_ref())
            .and_then(|v| v.as_object())
    }
    pub fn rope_theta(&self) -> f64 {
        let from_section = self
            .rope_section()
            .and_then(|s| s.get("rope_theta"))
            .and_then(|v| v.as_f64());
        self.rope_theta.or(from_section).unwrap_or(10000.0)
    }
    pub fn rope_scaling(&self) -> Result<RopeScaling> {
        let Some(s) = self.rope_section() else {
            return Ok(RopeScaling::None);
        };
        let kind = s
            .get("rope_type")
            .or_else(|| s.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let num = |k: &str| {
            s.get(k)
                .and_then(|v| v.as_f64())
                .ok_or_else(|| Error::msg(format!("rope scaling '{kind}' needs '{k}'")))
        };
        match kind {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear { factor: num("factor")? }),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            }),
            other => Err(Error::msg(format!(
                "rope scaling '{other}' is not supported (default, linear, llama3)"
            ))),
        }
    }
    /// A sliding window that would change attention (Mistral v0.1; Qwen2 with use_sliding_window).
    pub(crate) fn active_window(&self) -> Option<usize> {
        match self.arch() {
            "qwen2" => self.sliding_window.filter(|_| self.use_sliding_window == Some(true)),
            "mistral" => self.sliding_window,
            _ => None,
        }
    }
    pub(crate) fn validate(&self) -> Result<()> {
        let (h, g) = (self.num_attention_heads, self.kv_heads());
        if h == 0 || g == 0 || !h.is_multiple_of(g) {
            return Err(Error::msg(format!(
                "llama config: {h} attention heads cannot share {g} key/value heads"
            )));
        }
        if !self.head_dim().is_multiple_of(2) || self.head_dim() == 0 {
            return Err(Error::msg(format!(
                "llama config: head_dim {} must be even and positive",
                self.head_dim()
            )));
        }
        if self.hidden_act != "silu" {
            return Err(Error::msg(format!(
                "llama config: hidden_act '{}' is not supported (silu)",
                self.hidden_act
            )));
        }
        self.rope_scaling().map(|_| ())
    }
}

/// Inverse rotary frequencies (k/2), computed in f32 as transformers does.
pub(crate) fn inv_freq(cfg: &LlamaConfig) -> Result<Vec<f32>> {
    let dim = cfg.head_dim();
    let base = cfg.rope_theta() as f32;
    let plain: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    Ok(match cfg.rope_scaling()? {
        RopeScaling::None => plain,
        RopeScaling::Linear { factor } => plain.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let (factor, lo, hi, old) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                original_max_position_embeddings as f32,
            );
            let (low_wavelen, high_wavelen) = (old / lo, old / hi);
            plain
                .iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - lo) / (hi - lo);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(extra: serde_json::Value) -> LlamaConfig {
        let mut v = serde_json::json!({"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let cfg = tiny(
            serde_json::json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}),
        );
        let (plain, scaled) = (inv_freq(&tiny(serde_json::json!({}))).unwrap(), inv_freq(&cfg).unwrap());
        assert_eq!(plain[0], scaled[0]);
        assert!((scaled[1] - plain[1] / 8.0).abs() < 1e-9);
    }

    #[test]
    fn rope_settings_read_from_either_config_generation() {
        let old = tiny(serde_json::json!({"rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}}));
        let new =
            tiny(serde_json::json!({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}}));
        for c in [old, new] {
            assert_eq!(c.rope_theta(), 500.0);
            assert_eq!(c.rope_scaling().unwrap(), RopeScaling::Linear { factor: 2.0 });
        }
    }
}
