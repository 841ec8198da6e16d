//! Llama-family decoder-only language models, written for training: Llama
//! (1/2/3, SmolLM), Mistral (without a sliding window) and Qwen2 (q/k/v
//! biases). RMSNorm, rotary position embeddings (plain, linear or llama3
//! scaled), grouped-query attention, a SwiGLU MLP and a tied or separate
//! `lm_head`, over parameters with Hugging Face names.
//!
//! The crate talks to every model as an encoder-decoder would be talked to:
//! input embeddings (a soft prompt is more embeddings in front) plus
//! teacher-forced targets. A decoder-only model concatenates the two. Each row
//! is left-aligned as `[padding, input, target[..t-1]]`, positions count real
//! tokens only (cumulative mask - 1), and the logits predicting target `j`
//! are read at the position just before it, so a loss over the targets never
//! sees the input or prompt positions.
//!
//! Shape legend:
//!   b batch        s input positions (prompt + input)   t target positions
//!   n positions    c cached positions                   d hidden_size
//!   h query heads  g key/value heads   r = h / g         k head_dim
//!   f intermediate_size                v vocabulary

mod config;
mod decode;
mod lm;
mod rope;

use candle_core::{DType, Device, Tensor};

use super::layers::{rms_norm, Linear};
use crate::error::{Error, Result};
use crate::kernels::{self, Dropout, Heads};
use crate::params::{Param, ParamStore};
pub use config::{LlamaConfig, RopeScaling, TokenIds};
use rope::Rope;

/// Per-layer keys and values of the positions seen so far, (b, g, c, k) each.
#[derive(Clone, Default)]
struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// (b, n, heads*k) -> (b, heads, n, k)
    fn split(x: Tensor, heads: usize, k: usize) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        Ok(x.reshape((b, n, heads, k))?.transpose(1, 2)?.contiguous()?)
    }

    /// x (b, n, d) attends causally to the cache plus itself; `bias` (b, 1, n, c) is additive.
    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        bias: &Tensor,
        cache: &mut LayerCache,
        drop: &Dropout,
        train: bool,
    ) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let (h, g, k) = (self.heads, self.kv_heads, self.head_dim);
        if train && cache.kv.is_none() {
            // Training: one attention over the whole sequence, heads in place (nothing to cache).
            let q = rope.apply_heads_last(&self.q.forward(x)?, h)?;
            let keys = rope.apply_heads_last(&self.k.forward(x)?, g)?;
            let kv = Tensor::cat(&[&keys, &self.v.forward(x)?], 2)?;
            let heads = Heads {
                query: h,
                kv: g,
                scale: (k as f32).powf(-0.5),
            };
            return self.o.forward(&kernels::attend(&q, &kv, bias, heads, drop, train)?);
        }
        let q = rope.apply(&Self::split(self.q.forward(x)?, h, k)?)?;
        let mut keys = rope.apply(&Self::split(self.k.forward(x)?, g, k)?)?;
        let mut values = Self::split(self.v.forward(x)?, g, k)?;
        if let Some((pk, pv)) = &cache.kv {
            keys = Tensor::cat(&[pk, &keys], 2)?;
            values = Tensor::cat(&[pv, &values], 2)?;
        }
        let c = keys.dim(2)?;
        // Query head i uses key/value head i / r: group the r query heads of each kv head as rows.
        let r = h / g;
        let q = (q.reshape((b, g, r * n, k))? * (k as f64).powf(-0.5))?;
        // Scores, mask and softmax in f32: -1e9 does not fit f16, and -inf would turn padding rows to NaN.
        let scores = kernels::batched_matmul(&q, &keys, false, true)?
            .reshape((b, h, n, c))?
            .to_dtype(DType::F32)?
            .broadcast_add(bias)?;
        let weights = kernels::softmax(&scores)?.to_dtype(x.dtype())?;
        let weights = drop.apply(&weights, train)?;
        let ctx = kernels::batched_matmul(&weights.reshape((b, g, r * n, c))?, &values, false, false)?; // (b, g, r*n, k)
        let ctx = ctx.reshape((b, h, n, k))?.transpose(1, 2)?.reshape((b, n, h * k))?;
        cache.kv = Some((keys, values));
        self.o.forward(&ctx)
    }
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    /// (b, n, d) -> (b, n, d) through (b, n, f): down(silu(gate(x)) * up(x)).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = kernels::swiglu(&self.gate.forward(x)?, &self.up.forward(x)?)?;
        self.down.forward(&h)
    }
}

struct Layer {
    attn_norm: Param,
    attn: Attention,
    mlp_norm: Param,
    mlp: Mlp,
}

/// A batch left-aligned for the decoder: embeddings (b, n, d) with padding
/// first, which of the n positions are real, and each position's index.
struct Aligned {
    embeds: Tensor,
    valid: Vec<Vec<bool>>,
    positions: Vec<Vec<u32>>,
}

/// Large negative score for masked keys (finite, so a padding query that sees
/// no real key stays finite instead of NaN).
const MASKED: f32 = -1e9;

pub struct Llama {
    pub cfg: LlamaConfig,
    pub params: ParamStore,
    embed_tokens: Param,
    lm_head: Option<Param>,
    layers: Vec<Layer>,
    norm: Param,
    inv_freq: Vec<f32>,
    /// Token ids generation stops on (the first is `eos_id`).
    eos: Vec<u32>,
    pub dropout: Dropout,
}

impl Llama {
    /// The parameter names and shapes of a model with this config (HF names).
    pub fn param_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
        let (d, f, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        let (q, kv) = (
            cfg.num_attention_heads * cfg.head_dim(),
            cfg.kv_heads() * cfg.head_dim(),
        );
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, d])];
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), vec![d]));
            for (name, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                out.push((format!("{p}.self_attn.{name}.weight"), vec![rows, d]));
                if cfg.qkv_bias() {
                    out.push((format!("{p}.self_attn.{name}.bias"), vec![rows]));
                }
            }
            out.push((format!("{p}.self_attn.o_proj.weight"), vec![d, q]));
            if cfg.o_bias() {
                out.push((format!("{p}.self_attn.o_proj.bias"), vec![d]));
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![d]));
            for (name, shape) in [
                ("gate_proj", vec![f, d]),
                ("up_proj", vec![f, d]),
                ("down_proj", vec![d, f]),
            ] {
                let rows = shape[0];
                out.push((format!("{p}.mlp.{name}.weight"), shape));
                if cfg.mlp_bias {
                    out.push((format!("{p}.mlp.{name}.bias"), vec![rows]));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), vec![d]));
        if !cfg.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![v, d]));
        }
        out
    }

    /// Build the model over an already filled parameter store.
    pub fn load(params: ParamStore, cfg: LlamaConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        params.check_shapes(&Self::param_shapes(&cfg))?;
        let get = |n: &str| params.get(n).cloned();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let lin = |n: &str| Linear::load(&params, &format!("{p}.{n}"));
            layers.push(Layer {
                attn_norm: get(&format!("{p}.input_layernorm.weight"))?,
                attn: Attention {
                    q: lin("self_attn.q_proj")?,
                    k: lin("self_attn.k_proj")?,
                    v: lin("self_attn.v_proj")?,
                    o: lin("self_attn.o_proj")?,
                    heads: cfg.num_attention_heads,
                    kv_heads: cfg.kv_heads(),
                    head_dim: cfg.head_dim(),
                },
                mlp_norm: get(&format!("{p}.post_attention_layernorm.weight"))?,
                mlp: Mlp {
                    gate: lin("mlp.gate_proj")?,
                    up: lin("mlp.up_proj")?,
                    down: lin("mlp.down_proj")?,
                },
            });
        }
        Ok(Self {
            embed_tokens: get("model.embed_tokens.weight")?,
            lm_head: if cfg.tie_word_embeddings {
                None
            } else {
                Some(get("lm_head.weight")?)
            },
            norm: get("model.norm.weight")?,
            layers,
            inv_freq: config::inv_freq(&cfg)?,
            eos: cfg.eos_ids(),
            dropout: Dropout::new(cfg.attention_dropout, seed),
            cfg,
            params,
        })
    }

    /// A randomly initialised model (HF's scheme: normal(0, 0.02) weights,
    /// unit norms, zero biases), for toy models and tests.
    pub fn random(cfg: LlamaConfig, seed: u64, device: &Device) -> Result<Self> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.02).map_err(|e| Error::msg(e.to_string()))?;
        let mut ps = ParamStore::new();
        for (name, shape) in Self::param_shapes(&cfg) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                (0..n).map(|_| normal.sample(&mut rng)).collect()
            };
            ps.insert(Param::new(&name, Tensor::from_vec(values, shape, device)?)?);
        }
        Self::load(ps, cfg, seed)
    }

    /// Stop generation on these ids instead of the config's (generation_config.json's list).
    pub fn set_eos(&mut self, ids: Vec<u32>) {
        if !ids.is_empty() {
            self.eos = ids;
        }
    }

    /// The ids generation stops on.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    /// ids (b, n) -> embeddings (b, n, d).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let flat = ids.to_dtype(DType::U32)?.flatten_all()?;
        Ok(self
            .embed_tokens
            .tensor()
            .index_select(&flat, 0)?
            .reshape((b, n, self.cfg.hidden_size))?)
    }

    /// hidden (b, n, d) -> logits (b, n, v).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        kernels::linear(hidden, &self.lm_head.as_ref().unwrap_or(&self.embed_tokens).tensor())
    }

    /// Rotary tables for per-row positions (b rows of n each).
    fn rope(&self, positions: &[Vec<u32>], dtype: DType, device: &Device) -> Result<Rope> {
        Rope::new(&self.inv_freq, positions, dtype, device)
    }

    /// Additive attention bias (b, 1, n, c), f32, for n new queries after c - n
    /// cached positions: key j is visible to query i when it is real
    /// (`valid[row][j]`) and not in the future. Made on the device from the
    /// b·c validity flags, so a GPU receives c bytes a row, not the bias.
    fn attention_bias(&self, valid: &[Vec<bool>], n: usize, device: &Device) -> Result<Tensor> {
        let (b, c) = (valid.len(), valid.first().map_or(0, Vec::len));
        if let Some(w) = self.cfg.active_window() {
            if c > w {
                return Err(Error::msg(format!(
                    "{} positions exceed the sliding window of {w}, which this implementation does not apply",
                    c
                )));
            }
        }
        if n > c || valid.iter().any(|row| row.len() != c) {
            return Err(Error::msg(format!("llama: {n} queries over rows of {c} keys")));
        }
        let real: Vec<u8> = valid.iter().flatten().map(|&ok| u8::from(ok)).collect();
        let real = Tensor::from_vec(real, (b, 1, 1, c), device)?;
        // Query i sits at position c - n + i and sees keys up to it.
        let keys = Tensor::arange(0u32, c as u32, device)?.reshape((1, 1, 1, c))?;
        let queries = Tensor::arange((c - n) as u32, c as u32, device)?.reshape((1, 1, n, 1))?;
        let visible = real.broadcast_mul(&keys.broadcast_le(&queries)?)?;
        // 1 -> 0 and 0 -> MASKED, exactly.
        Ok(visible
            .to_dtype(DType::F32)?
            .affine(-f64::from(MASKED), f64::from(MASKED))?)
    }

    /// The decoder stack: x (b, n, d) at `positions`, with the cache holding
    /// earlier positions and `valid` (b, c) marking which of all c keys are
    /// real -> final hidden states (b, n, d). Extends the cache.
    fn run(
        &self,
        x: Tensor,
        positions: &[Vec<u32>],
        valid: &[Vec<bool>],
        cache: &mut [LayerCache],
        train: bool,
    ) -> Result<Tensor> {
        let (_, n, _) = x.dims3()?;
        let (dtype, device) = (x.dtype(), x.device().clone());
        let rope = self.rope(positions, dtype, &device)?;
        let bias = self.attention_bias(valid, n, &device)?;
        let (eps, drop) = (self.cfg.rms_norm_eps, &self.dropout);
        let mut x = x;
        for (layer, lc) in self.layers.iter().zip(cache.iter_mut()) {
            let h = rms_norm(&x, &layer.attn_norm, eps)?;
            x = drop.residual(&x, &layer.attn.forward(&h, &rope, &bias, lc, drop, train)?, train)?;
            let h = rms_norm(&x, &layer.mlp_norm, eps)?;
            x = drop.residual(&x, &layer.mlp.forward(&h)?, train)?;
        }
        rms_norm(&x, &self.norm, eps)
    }

    fn empty_cache(&self) -> Vec<LayerCache> {
        vec![LayerCache::default(); self.layers.len()]
    }

    /// Left-align the real rows of `embeds` (b, s, d) under `mask` (b, s):
    /// padding first (zeros), then the real positions in order. Returns the
    /// aligned embeddings, key validity and positions (cumulative mask - 1;
    /// padding gets 1, as transformers gives it).
    fn left_align(&self, embeds: &Tensor, mask: &Tensor) -> Result<Aligned> {
        let (b, s, d) = embeds.dims3()?;
        if mask.dims() != [b, s] {
            return Err(Error::msg(format!(
                "llama: mask {:?} does not match embeddings {:?}",
                mask.dims(),
                embeds.dims()
            )));
        }
        let rows = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let zero_row = (b * s) as u32; // index of the zero row appended below
        let (mut idx, mut valid, mut positions) =
            (Vec::with_capacity(b * s), Vec::with_capacity(b), Vec::with_capacity(b));
        for (i, row) in rows.iter().enumerate() {
            let real: Vec<u32> = (0..s).filter(|&j| row[j] > 0.5).map(|j| (i * s + j) as u32).collect();
            if real.is_empty() {
                return Err(Error::msg(format!("llama: row {i} of the batch has no input tokens")));
            }
            let pad = s - real.len();
            idx.extend(std::iter::repeat_n(zero_row, pad).chain(real.iter().copied()));
            valid.push((0..s).map(|j| j >= pad).collect::<Vec<_>>());
            positions.push(
                (0..s)
                    .map(|j| if j >= pad { (j - pad) as u32 } else { 1 })
                    .collect::<Vec<_>>(),
            );
        }
        let flat = Tensor::cat(
            &[
                &embeds.reshape((b * s, d))?,
                &Tensor::zeros((1, d), embeds.dtype(), embeds.device())?,
            ],
            0,
        )?;
        let idx = Tensor::from_vec(idx, b * s, embeds.device())?;
        Ok(Aligned {
            embeds: flat.index_select(&idx, 0)?.reshape((b, s, d))?,
            valid,
            positions,
        })
    }

    /// Teacher-forced logits (b, t, v) for targets (b, t) after input
    /// embeddings (b, s, d) with mask (b, s).
    pub fn teacher_forced(
        &self,
        input_embeds: &Tensor,
        input_mask: &Tensor,
        targets: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let (b, s, _) = input_embeds.dims3()?;
        let (bt, t) = targets.dims2()?;
        if bt != b || t == 0 {
            return Err(Error::msg(format!(
                "llama: targets {:?} do not fit a batch of {b} inputs",
                targets.dims()
            )));
        }
        let Aligned {
            embeds: aligned,
            mut valid,
            mut positions,
        } = self.left_align(input_embeds, input_mask)?;
        let seq = if t > 1 {
            let tgt = self.embed(&targets.narrow(1, 0, t - 1)?)?.to_dtype(aligned.dtype())?;
            Tensor::cat(&[&aligned, &tgt], 1)?
        } else {
            aligned
        };
        for (v, p) in valid.iter_mut().zip(positions.iter_mut()) {
            let next = v.iter().filter(|&&ok| ok).count() as u32;
            v.extend(std::iter::repeat_n(true, t - 1));
            p.extend(next..next + t as u32 - 1);
        }
        let hidden = self.run(seq, &positions, &valid, &mut self.empty_cache(), train)?;
        self.logits(&hidden.narrow(1, s - 1, t)?)
    }

    /// The config transformers loads as this class (architectures and model_type set).
    pub fn hf_config(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("architectures".into(), serde_json::json!([self.cfg.class_name()]));
            obj.insert("model_type".into(), self.cfg.arch().into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::generate::StepDecoder;

    fn tiny(extra: serde_json::Value) -> LlamaConfig {
        let mut v = serde_json::json!({"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "eos_token_id": [3, 4]});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn incremental_decoding_matches_the_full_forward() {
        let m = Llama::random(tiny(serde_json::json!({"attention_bias": true})), 7, &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![5u32, 6, 7, 8, 9, 10, 0, 0], (2, 4), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(vec![1f32, 1., 1., 1., 1., 1., 0., 0.], (2, 4), &Device::Cpu).unwrap();
        let tgt = Tensor::from_vec(vec![11u32, 12, 13, 14], (2, 2), &Device::Cpu).unwrap();
        let full = m.teacher_forced(&m.embed(&ids).unwrap(), &mask, &tgt, false).unwrap();
        let mut steps = m.start_decoding(&m.embed(&ids).unwrap(), &mask).unwrap();
        let first = steps.step(&[0, 0]).unwrap();
        let second = steps.step(&[11, 13]).unwrap();
        let want = Tensor::stack(&[first, second], 1).unwrap();
        let diff = (full - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "cached decoding differs from the full forward by {diff}");
        assert_eq!(m.eos_ids(), &[3, 4]);
        assert_eq!(m.hf_config()["architectures"][0], "LlamaForCausalLM");
    }

    /// The bias made from the flags on the device is 0 exactly where a key is
    /// real and not after its query, MASKED elsewhere, for every query count.
    #[test]
    fn attention_bias_masks_padding_and_the_future() {
        let m = Llama::random(tiny(serde_json::json!({})), 1, &Device::Cpu).unwrap();
        let valid = vec![
            vec![false, false, true, true, true, true],
            vec![true, true, true, false, true, true],
        ];
        for n in 1..=6 {
            let got = m.attention_bias(&valid, n, &Device::Cpu).unwrap();
            assert_eq!(got.dims(), [2, 1, n, 6]);
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want: Vec<f32> = valid
                .iter()
                .flat_map(|row| {
                    (0..n).flat_map(move |i| {
                        row.iter()
                            .enumerate()
                            .map(move |(j, &ok)| if ok && j <= 6 - n + i { 0.0 } else { MASKED })
                    })
                })
                .collect();
            assert_eq!(got, want, "{n} queries");
        }
        assert!(m.attention_bias(&valid, 7, &Device::Cpu).is_err());
    }

    #[test]
    fn half_precision_with_padding_stays_finite() {
        let m32 = Llama::random(tiny(serde_json::json!({})), 3, &Device::Cpu).unwrap();
        let mut ps = ParamStore::new();
        for p in m32.params.iter() {
            ps.insert(Param::new(p.name(), p.var().as_tensor().to_dtype(DType::F16).unwrap()).unwrap());
        }
        let m = Llama::load(ps, m32.cfg.clone(), 0).unwrap();
        let ids = Tensor::from_vec(vec![5u32, 6, 7, 8, 0, 0], (2, 3), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(vec![1f32, 1., 1., 1., 0., 0.], (2, 3), &Device::Cpu).unwrap();
        let tgt = Tensor::from_vec(vec![11u32, 12, 13, 14], (2, 2), &Device::Cpu).unwrap();
        let logits = m.teacher_forced(&m.embed(&ids).unwrap(), &mask, &tgt, false).unwrap();
        let values = logits
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "f16 logits with padding are not finite"
        );
    }
}
