//! Incremental decoding for `T5`: the encoder runs once, then the decoder
//! one token per row per step over a cache of its self-attention keys and
//! values (the cross-attention's are computed once), behind the crate's
//! `StepDecoder` so greedy and beam search work unchanged.

use candle_core::Tensor;

use super::T5;
use crate::error::{Error, Result};
use crate::kernels::Dropout;
use crate::model::generate::StepDecoder;
use crate::model::layers::rms_norm;

/// Per-layer decoder cache for incremental generation.
#[derive(Clone)]
pub struct LayerCache {
    self_kv: Option<(Tensor, Tensor)>, // (b, h, c, k)
    cross_kv: (Tensor, Tensor),        // (b, h, s, k), computed once
}

/// The decoder state carried between generation steps.
#[derive(Clone)]
pub struct DecoderCache {
    layers: Vec<LayerCache>,
    pub len: usize,
}

impl DecoderCache {
    /// Keep only the rows `idx` (beam search reorders beams every step).
    pub fn select(&self, idx: &Tensor) -> Result<Self> {
        let pick = |t: &Tensor| t.index_select(idx, 0);
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let self_kv = match &l.self_kv {
                Some((k, v)) => Some((pick(k)?, pick(v)?)),
                None => None,
            };
            layers.push(LayerCache {
                self_kv,
                cross_kv: (pick(&l.cross_kv.0)?, pick(&l.cross_kv.1)?),
            });
        }
        Ok(Self { layers, len: self.len })
    }
}

impl T5 {
    /// Start incremental decoding over fixed encoder states.
    pub fn start_decoding(&self, enc: &Tensor) -> Result<DecoderCache> {
        let mut layers = Vec::with_capacity(self.decoder.len());
        for blk in &self.decoder {
            let (cross, _) = blk
                .cross
                .as_ref()
                .ok_or_else(|| Error::msg("decoder block without cross-attention"))?;
            layers.push(LayerCache {
                self_kv: None,
                cross_kv: cross.keys_values(enc)?,
            });
        }
        Ok(DecoderCache { layers, len: 0 })
    }

    /// One decoding step: ids (b, 1) -> logits (b, v), extending the cache.
    pub fn decode_step(&self, ids: &Tensor, enc_mask: &Tensor, cache: &mut DecoderCache) -> Result<Tensor> {
        let eps = self.cfg.layer_norm_epsilon;
        let pos = cache.len;
        let mut x = self.embed(ids)?;
        let dtype = x.dtype();
        let self_bias = self
            .position_bias(&self.dec_bias, 1, pos + 1, pos, false)?
            .to_dtype(dtype)?;
        let cross_bias = self.padding_bias(enc_mask, dtype)?;
        for (blk, lc) in self.decoder.iter().zip(cache.layers.iter_mut()) {
            let h = rms_norm(&x, &blk.self_norm, eps)?;
            let (k, v) = blk.self_attn.keys_values(&h)?;
            let (k, v) = match &lc.self_kv {
                Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
                None => (k, v),
            };
            x = (x + blk.self_attn.attend_cached(&h, &k, &v, &self_bias)?)?;
            lc.self_kv = Some((k, v));
            if let Some((cross, norm)) = &blk.cross {
                let h = rms_norm(&x, norm, eps)?;
                x = (x + cross.attend_cached(&h, &lc.cross_kv.0, &lc.cross_kv.1, &cross_bias)?)?;
            }
            let h = rms_norm(&x, &blk.ff_norm, eps)?;
            x = (x + blk.ff.forward(&h, &Dropout::new(0.0, 0), false)?)?;
        }
        cache.len += 1;
        let hidden = rms_norm(&x, &self.dec_norm, eps)?;
        Ok(self.logits(&hidden)?.squeeze(1)?)
    }
}

/// T5 decoding state for one generate call.
pub(super) struct T5Steps<'a> {
    pub(super) model: &'a T5,
    pub(super) enc_mask: Tensor,
    pub(super) cache: DecoderCache,
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
