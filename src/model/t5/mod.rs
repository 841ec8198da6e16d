//! T5 and mT5, written for training: the encoder takes *embeddings* (so a soft
//! prompt can be prepended), padding is masked, dropout runs in training mode,
//! and the decoder returns logits for every position.
//!
//! Covers v1.0 (relu feed-forward, tied embeddings, logits scaled by d^-0.5)
//! and v1.1 / mT5 (gated-gelu feed-forward, separate lm_head).
//!
//! Shape legend:
//!   b batch      s encoder positions   t decoder positions
//!   d d_model    h heads               k d_kv (per-head width)
//!   f d_ff       v vocabulary          c cached decoder positions

mod config;
mod decode;
mod lm;

use candle_core::{DType, Device, Tensor};

use super::layers::{linear_concat, rms_norm, Linear};
use crate::error::{Error, Result};
use crate::kernels::{self, Dropout, Heads};
use crate::params::{Param, ParamStore};
pub use config::T5Config;
pub use decode::DecoderCache;

/// T5's relative position bucket: exact buckets for small distances, log-spaced
/// ones up to `max_distance`, and (encoder only) separate halves for each sign.
fn relative_bucket(relative: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> u32 {
    let mut buckets = num_buckets as i64;
    let mut out = 0i64;
    let n = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            out += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if n < max_exact {
        return (out + n) as u32;
    }
    // Computed in f32 and truncated, exactly as the reference does.
    let ratio = (n as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln();
    let large = max_exact + (ratio * (buckets - max_exact) as f32) as i64;
    (out + large.min(buckets - 1)) as u32
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    d_kv: usize,
}

impl Attention {
    fn load(ps: &ParamStore, prefix: &str, heads: usize, d_kv: usize) -> Result<Self> {
        let get = |n: &str| Linear::load(ps, &format!("{prefix}.{n}"));
        Ok(Self {
            q: get("q")?,
            k: get("k")?,
            v: get("v")?,
            o: get("o")?,
            heads,
            d_kv,
        })
    }

    /// (b, n, d) -> (b, h, n, k)
    fn split_heads(&self, x: Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        Ok(x.reshape((b, n, self.heads, self.d_kv))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Keys and values of a source sequence, (b, h, n, k) each.
    fn keys_values(&self, src: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split_heads(self.k.forward(src)?)?,
            self.split_heads(self.v.forward(src)?)?,
        ))
    }

    /// Teacher-forced attention of x (b, q, d) over src (b, kv, d), itself
    /// for self-attention, with additive bias (b or 1, h or 1, q, kv). T5
    /// does not scale scores by 1/sqrt(k).
    fn forward(&self, x: &Tensor, src: &Tensor, bias: &Tensor, drop: &Dropout, train: bool) -> Result<Tensor> {
        let q = self.q.forward(x)?;
        let kv = linear_concat(src, &[&self.k, &self.v])?;
        let heads = Heads {
            query: self.heads,
            kv: self.heads,
            scale: 1.0,
        };
        self.o.forward(&kernels::attend(&q, &kv, bias, heads, drop, train)?)
    }

    /// One decoding step's attention: x (b, 1, d) attends to cached
    /// keys/values (b, h, c, k) with additive bias (b or 1, h or 1, 1, c).
    fn attend_cached(&self, x: &Tensor, keys: &Tensor, values: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, q_len, _) = x.dims3()?;
        let q = self.split_heads(self.q.forward(x)?)?;
        let weights = kernels::attention_weights(&q, keys, bias)?; // (b, h, q, c)
        let ctx = kernels::batched_matmul(&weights, values, false, false)?; // (b, h, q, k)
        let ctx = ctx.transpose(1, 2)?.reshape((b, q_len, self.heads * self.d_kv))?;
        self.o.forward(&ctx)
    }
}

struct FeedForward {
    wi: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
    act: String,
}

impl FeedForward {
    fn load(ps: &ParamStore, prefix: &str, cfg: &T5Config) -> Result<Self> {
        let get = |n: &str| Linear::load(ps, &format!("{prefix}.DenseReluDense.{n}"));
        // HF's legacy rule: "gated-gelu" means the tanh approximation (gelu_new).
        let act = match cfg.feed_forward_proj.as_str() {
            "gated-gelu" => "gelu_new".to_string(),
            other => other.trim_start_matches("gated-").to_string(),
        };
        if cfg.is_gated() {
            Ok(Self {
                wi: get("wi_0")?,
                wi_1: Some(get("wi_1")?),
                wo: get("wo")?,
                act,
            })
        } else {
            Ok(Self {
                wi: get("wi")?,
                wi_1: None,
                wo: get("wo")?,
                act,
            })
        }
    }

    fn activate(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.act.as_str() {
            "relu" => kernels::relu(x)?,
            "gelu" => kernels::gelu_erf(x)?,
            _ => kernels::gelu_tanh(x)?, // gelu_new: the tanh approximation
        })
    }

    /// (b, n, d) -> (b, n, d) through (b, n, f).
    fn forward(&self, x: &Tensor, drop: &Dropout, train: bool) -> Result<Tensor> {
        let mut h = self.activate(&self.wi.forward(x)?)?;
        if let Some(wi_1) = &self.wi_1 {
            h = h.mul(&wi_1.forward(x)?)?;
        }
        self.wo.forward(&drop.apply(&h, train)?)
    }
}

/// One block: self-attention, (decoder only) cross-attention, feed-forward,
/// each pre-normed and added back to the residual stream.
struct Block {
    self_attn: Attention,
    self_norm: Param,
    cross: Option<(Attention, Param)>,
    ff: FeedForward,
    ff_norm: Param,
}

impl Block {
    fn load(ps: &ParamStore, prefix: &str, decoder: bool, cfg: &T5Config) -> Result<Self> {
        let (h, k) = (cfg.num_heads, cfg.d_kv);
        let norm = |i: usize| ps.get(&format!("{prefix}.layer.{i}.layer_norm.weight")).cloned();
        let cross = if decoder {
            Some((
                Attention::load(ps, &format!("{prefix}.layer.1.EncDecAttention"), h, k)?,
                norm(1)?,
            ))
        } else {
            None
        };
        let ff_layer = if decoder { 2 } else { 1 };
        Ok(Self {
            self_attn: Attention::load(ps, &format!("{prefix}.layer.0.SelfAttention"), h, k)?,
            self_norm: norm(0)?,
            cross,
            ff: FeedForward::load(ps, &format!("{prefix}.layer.{ff_layer}"), cfg)?,
            ff_norm: norm(ff_layer)?,
        })
    }
}

pub struct T5 {
    pub cfg: T5Config,
    pub params: ParamStore,
    shared: Param,
    lm_head: Option<Param>,
    encoder: Vec<Block>,
    decoder: Vec<Block>,
    enc_bias: Param,
    dec_bias: Param,
    enc_norm: Param,
    dec_norm: Param,
    pub dropout: Dropout,
}

/// Large negative score for masked positions (finite, so fully masked rows
/// of padding queries stay finite instead of NaN).
const MASKED: f64 = -1e9;

impl T5 {
    /// The parameter names and shapes of a model with this config (HF names).
    pub fn param_shapes(cfg: &T5Config) -> Vec<(String, Vec<usize>)> {
        let (d, inner, f) = (cfg.d_model, cfg.num_heads * cfg.d_kv, cfg.d_ff);
        let mut out = vec![("shared.weight".to_string(), vec![cfg.vocab_size, d])];
        for (stack, layers) in [("encoder", cfg.num_layers), ("decoder", cfg.decoder_layers())] {
            for i in 0..layers {
                let p = format!("{stack}.block.{i}");
                let mut attn = |name: &str| {
                    for w in ["q", "k", "v"] {
                        out.push((format!("{p}.{name}.{w}.weight"), vec![inner, d]));
                    }
                    out.push((format!("{p}.{name}.o.weight"), vec![d, inner]));
                };
                attn("layer.0.SelfAttention");
                if stack == "decoder" {
                    attn("layer.1.EncDecAttention");
                }
                if i == 0 {
                    out.push((
                        format!("{p}.layer.0.SelfAttention.relative_attention_bias.weight"),
                        vec![cfg.relative_attention_num_buckets, cfg.num_heads],
                    ));
                }
                let ff = if stack == "decoder" { 2 } else { 1 };
                for l in 0..=ff {
                    out.push((format!("{p}.layer.{l}.layer_norm.weight"), vec![d]));
                }
                let fp = format!("{p}.layer.{ff}.DenseReluDense");
                if cfg.is_gated() {
                    out.push((format!("{fp}.wi_0.weight"), vec![f, d]));
                    out.push((format!("{fp}.wi_1.weight"), vec![f, d]));
                } else {
                    out.push((format!("{fp}.wi.weight"), vec![f, d]));
                }
                out.push((format!("{fp}.wo.weight"), vec![d, f]));
            }
            out.push((format!("{stack}.final_layer_norm.weight"), vec![d]));
        }
        if !cfg.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, d]));
        }
        out
    }

    /// Build the model over an already filled parameter store.
    pub fn load(params: ParamStore, cfg: T5Config, seed: u64) -> Result<Self> {
        cfg.validate()?;
        params.check_shapes(&Self::param_shapes(&cfg))?;
        let get = |n: &str| params.get(n).cloned();
        let encoder = (0..cfg.num_layers)
            .map(|i| Block::load(&params, &format!("encoder.block.{i}"), false, &cfg))
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..cfg.decoder_layers())
            .map(|i| Block::load(&params, &format!("decoder.block.{i}"), true, &cfg))
            .collect::<Result<Vec<_>>>()?;
        let bias = |s: &str| {
            get(&format!(
                "{s}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
            ))
        };
        Ok(Self {
            shared: get("shared.weight")?,
            lm_head: if cfg.tie_word_embeddings {
                None
            } else {
                Some(get("lm_head.weight")?)
            },
            enc_bias: bias("encoder")?,
            dec_bias: bias("decoder")?,
            enc_norm: get("encoder.final_layer_norm.weight")?,
            dec_norm: get("decoder.final_layer_norm.weight")?,
            encoder,
            decoder,
            dropout: Dropout::new(cfg.dropout_rate, seed),
            cfg,
            params,
        })
    }

    /// A randomly initialised model (T5's initialisation scheme), for toy
    /// models and tests.
    pub fn random(cfg: T5Config, seed: u64, device: &Device) -> Result<Self> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut ps = ParamStore::new();
        let d = cfg.d_model as f64;
        for (name, shape) in Self::param_shapes(&cfg) {
            let n: usize = shape.iter().product();
            let std = if name.ends_with("layer_norm.weight") {
                0.0
            } else if name == "shared.weight" {
                1.0
            } else if name == "lm_head.weight" {
                // HF uses 1.0 here; d^-0.5 starts a model trained from scratch
                // with O(1) logits instead of a loss several times ln(vocab).
                d.powf(-0.5)
            } else if name.contains("relative_attention_bias") || name.ends_with(".o.weight") {
                ((cfg.num_heads * cfg.d_kv) as f64).powf(-0.5)
            } else if name.ends_with(".q.weight") {
                (d * cfg.d_kv as f64).powf(-0.5)
            } else if name.ends_with(".wo.weight") {
                (cfg.d_ff as f64).powf(-0.5)
            } else {
                d.powf(-0.5)
            };
            let values: Vec<f32> = if std == 0.0 {
                vec![1.0; n]
            } else {
                let normal = Normal::new(0.0, std).map_err(|e| Error::msg(e.to_string()))?;
                (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
            };
            ps.insert(Param::new(&name, Tensor::from_vec(values, shape, device)?)?);
        }
        Self::load(ps, cfg, seed)
    }

    /// ids (b, n) -> embeddings (b, n, d).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let flat = ids.to_dtype(DType::U32)?.flatten_all()?;
        let emb = self.shared.tensor().index_select(&flat, 0)?;
        Ok(emb.reshape((b, n, self.cfg.d_model))?)
    }

    /// Relative position bias (1, h, q, kv) for queries at positions
    /// `q_offset..q_offset+q` against keys at `0..kv`.
    fn position_bias(
        &self,
        table: &Param,
        q: usize,
        kv: usize,
        q_offset: usize,
        bidirectional: bool,
    ) -> Result<Tensor> {
        let mut buckets = Vec::with_capacity(q * kv);
        for i in 0..q {
            for j in 0..kv {
                let rel = j as i64 - (i + q_offset) as i64;
                buckets.push(relative_bucket(
                    rel,
                    bidirectional,
                    self.cfg.relative_attention_num_buckets,
                    self.cfg.relative_attention_max_distance,
                ));
            }
        }
        let idx = Tensor::from_vec(buckets, q * kv, table.var().device())?;
        let bias = table.tensor().index_select(&idx, 0)?; // (q*kv, h)
        Ok(bias
            .reshape((q, kv, self.cfg.num_heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?)
    }

    /// Additive mask (b, 1, 1, s) from a 0/1 padding mask (b, s).
    fn padding_bias(&self, mask: &Tensor, dtype: DType) -> Result<Tensor> {
        let keep = mask.to_dtype(DType::F32)?;
        let bias = ((1.0 - keep)? * MASKED)?;
        Ok(bias.unsqueeze(1)?.unsqueeze(1)?.to_dtype(dtype)?)
    }

    /// embeddings (b, s, d) and mask (b, s) -> encoder states (b, s, d).
    pub fn encode(&self, embeds: &Tensor, mask: &Tensor, train: bool) -> Result<Tensor> {
        let (b, s, d) = embeds.dims3()?;
        if d != self.cfg.d_model || mask.dims() != [b, s] {
            return Err(Error::msg(format!(
                "encode: expected embeddings [b, s, {}] and mask [b, s], got {:?} and {:?}",
                self.cfg.d_model,
                embeds.dims(),
                mask.dims()
            )));
        }
        let bias = self
            .position_bias(&self.enc_bias, s, s, 0, true)?
            .to_dtype(embeds.dtype())?;
        let bias = bias.broadcast_add(&self.padding_bias(mask, embeds.dtype())?)?; // (b, h, s, s)
        let drop = &self.dropout;
        let eps = self.cfg.layer_norm_epsilon;
        let mut x = drop.apply(embeds, train)?;
        for blk in &self.encoder {
            let h = rms_norm(&x, &blk.self_norm, eps)?;
            x = drop.residual(&x, &blk.self_attn.forward(&h, &h, &bias, drop, train)?, train)?;
            let h = rms_norm(&x, &blk.ff_norm, eps)?;
            x = drop.residual(&x, &blk.ff.forward(&h, drop, train)?, train)?;
        }
        drop.apply(&rms_norm(&x, &self.enc_norm, eps)?, train)
    }

    /// Teacher-forced decoder: ids (b, t) with the encoder states -> hidden (b, t, d).
    pub fn decode(&self, dec_ids: &Tensor, enc: &Tensor, enc_mask: &Tensor, train: bool) -> Result<Tensor> {
        let (_, t) = dec_ids.dims2()?;
        let dtype = enc.dtype();
        let causal: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { MASKED as f32 } else { 0.0 }))
            .collect();
        let causal = Tensor::from_vec(causal, (1, 1, t, t), enc.device())?.to_dtype(dtype)?;
        let self_bias = self
            .position_bias(&self.dec_bias, t, t, 0, false)?
            .to_dtype(dtype)?
            .broadcast_add(&causal)?;
        let cross_bias = self.padding_bias(enc_mask, dtype)?;
        let drop = &self.dropout;
        let eps = self.cfg.layer_norm_epsilon;
        let mut x = drop.apply(&self.embed(dec_ids)?, train)?;
        for blk in &self.decoder {
            let h = rms_norm(&x, &blk.self_norm, eps)?;
            x = drop.residual(&x, &blk.self_attn.forward(&h, &h, &self_bias, drop, train)?, train)?;
            if let Some((cross, norm)) = &blk.cross {
                let h = rms_norm(&x, norm, eps)?;
                x = drop.residual(&x, &cross.forward(&h, enc, &cross_bias, drop, train)?, train)?;
            }
            let h = rms_norm(&x, &blk.ff_norm, eps)?;
            x = drop.residual(&x, &blk.ff.forward(&h, drop, train)?, train)?;
        }
        drop.apply(&rms_norm(&x, &self.dec_norm, eps)?, train)
    }

    /// hidden (b, t, d) -> logits (b, t, v).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(head) => kernels::linear(hidden, &head.tensor()),
            // Tied embeddings: v1.0 rescales before reusing the input embedding.
            None => kernels::linear(&(hidden * (self.cfg.d_model as f64).powf(-0.5))?, &self.shared.tensor()),
        }
    }

    /// Decoder inputs: the targets shifted right behind the start token.
    pub fn shift_right(&self, targets: &Tensor) -> Result<Tensor> {
        let (b, t) = targets.dims2()?;
        let start = Tensor::full(self.cfg.decoder_start_id(), (b, 1), targets.device())?;
        Ok(Tensor::cat(
            &[
                &start,
                &targets.to_dtype(DType::U32)?.narrow(1, 0, t.saturating_sub(1))?,
            ],
            1,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::relative_bucket;

    #[test]
    fn buckets_match_reference_values() {
        // Values from transformers' T5Attention._relative_position_bucket(32 buckets, 128 max distance).
        assert_eq!(relative_bucket(0, true, 32, 128), 0);
        assert_eq!(relative_bucket(3, true, 32, 128), 19);
        assert_eq!(relative_bucket(-3, true, 32, 128), 3);
        assert_eq!(relative_bucket(-200, true, 32, 128), 15);
        assert_eq!(relative_bucket(-1, false, 32, 128), 1);
        assert_eq!(relative_bucket(5, false, 32, 128), 0);
        assert_eq!(relative_bucket(-20, false, 32, 128), 17);
    }
}
