//! Incremental decoding for `Llama`: a prefill over the inputs, then one
//! token per row per step over a key/value cache, behind the crate's
//! `StepDecoder` so greedy and beam search work unchanged.

use candle_core::Tensor;

use super::{Aligned, LayerCache, Llama};
use crate::error::{Error, Result};
use crate::model::generate::{decode, Specials, StepDecoder};
use crate::model::{GenerateOptions, Generation, LanguageModel};

impl Llama {
    /// Start decoding: run the inputs (prefill) and keep their keys/values.
    pub(super) fn start_decoding(&self, input_embeds: &Tensor, input_mask: &Tensor) -> Result<LlamaSteps<'_>> {
        let Aligned {
            embeds: aligned,
            valid,
            positions,
        } = self.left_align(input_embeds, input_mask)?;
        let s = aligned.dim(1)?;
        let mut cache = self.empty_cache();
        let hidden = self.run(aligned, &positions, &valid, &mut cache, false)?;
        detach(&mut cache);
        let pending = self.logits(&hidden.narrow(1, s - 1, 1)?)?.squeeze(1)?.detach();
        let next_pos = valid
            .iter()
            .map(|v| v.iter().filter(|&&ok| ok).count() as u32)
            .collect();
        Ok(LlamaSteps {
            model: self,
            cache,
            valid,
            next_pos,
            pending: Some(pending),
        })
    }

    fn specials(&self) -> Specials {
        Specials {
            start: self.cfg.bos_token_id.unwrap_or(self.pad_id()),
            eos: self.eos_id(),
            pad: self.pad_id(),
        }
    }

    /// Greedy or beam-search generation; rows for beams are source-major
    /// (row = source * beams + beam).
    pub fn generate_scored(
        &self,
        input_embeds: &Tensor,
        input_mask: &Tensor,
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>> {
        let b = input_embeds.dim(0)?;
        let mut steps = self.start_decoding(input_embeds, input_mask)?;
        decode(&mut steps, b, self.specials(), opts)
    }
}

/// Llama decoding state for one generate call. The first `step` returns the
/// prefill logits (its `last` tokens, the dummy start token, are ignored);
/// later ones feed each row's chosen token at that row's next position.
pub(super) struct LlamaSteps<'a> {
    model: &'a Llama,
    cache: Vec<LayerCache>,
    /// (rows, c): which cached keys are real tokens.
    valid: Vec<Vec<bool>>,
    next_pos: Vec<u32>,
    pending: Option<Tensor>,
}

impl StepDecoder for LlamaSteps<'_> {
    fn step(&mut self, last: &[u32]) -> Result<Tensor> {
        if let Some(logits) = self.pending.take() {
            return Ok(logits);
        }
        let device = self.model.embed_tokens.var().device().clone();
        let ids = Tensor::from_vec(last.to_vec(), (last.len(), 1), &device)?;
        let x = self.model.embed(&ids)?;
        for v in self.valid.iter_mut() {
            v.push(true);
        }
        let positions: Vec<Vec<u32>> = self.next_pos.iter().map(|&p| vec![p]).collect();
        let hidden = self.model.run(x, &positions, &self.valid, &mut self.cache, false)?;
        detach(&mut self.cache);
        for p in self.next_pos.iter_mut() {
            *p += 1;
        }
        Ok(self.model.logits(&hidden)?.squeeze(1)?.detach())
    }

    fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        let device = self.model.embed_tokens.var().device().clone();
        let idx = Tensor::from_vec(rows.to_vec(), rows.len(), &device)?;
        for lc in self.cache.iter_mut() {
            if let Some((k, v)) = &lc.kv {
                lc.kv = Some((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?));
            }
        }
        if let Some(p) = &self.pending {
            self.pending = Some(p.index_select(&idx, 0)?);
        }
        let pick = |i: &u32| *i as usize;
        self.valid = rows
            .iter()
            .map(|i| self.valid.get(pick(i)).cloned())
            .collect::<Option<_>>()
            .ok_or_else(bad_row)?;
        self.next_pos = rows
            .iter()
            .map(|i| self.next_pos.get(pick(i)).copied())
            .collect::<Option<_>>()
            .ok_or_else(bad_row)?;
        Ok(())
    }
}

/// Cut the cache from the autograd graph: decoding never backpropagates, and
/// a cached key that still points at the ops that made it keeps every
/// intermediate of the prefill (all layers' attention weights) alive.
fn detach(cache: &mut [LayerCache]) {
    for lc in cache.iter_mut() {
        if let Some((k, v)) = &lc.kv {
            lc.kv = Some((k.detach(), v.detach()));
        }
    }
}

fn bad_row() -> Error {
    Error::msg("llama decoding: reorder asked for a row that does not exist")
}
