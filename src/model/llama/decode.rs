//! Incremental decoding for `Llama`: a prefill over the inputs, then one
//! token per row per step over a key/value cache, behind the crate's
//! `StepDecoder` so greedy and beam search work unchanged.

use candle_core::Tensor;

use super::{Aligned, LayerCache, Llama};
use crate::device::REUSED_ALLOCATION_BYTES;
use crate::error::{Error, Result};
use crate::model::generate::{decode, Specials, StepDecoder};
use crate::model::{GenerateOptions, Generation, LanguageModel};

impl Llama {
    /// Start decoding: run the inputs (prefill) and keep their keys/values.
    ///
    /// The prefill runs in chunks of rows, so that a layer's activations stay
    /// under glibc's mmap threshold and their memory is reused instead of
    /// mapped and faulted in afresh: a 1-shot XSum batch (16 x ~1100 tokens)
    /// in one pass spent a tenth of an evaluation profile in page faults.
    /// Rows are independent, so the result is that of one pass.
    pub(super) fn start_decoding(&self, input_embeds: &Tensor, input_mask: &Tensor) -> Result<LlamaSteps<'_>> {
        // Rows x length such that the widest activation of a layer (f32)
        // stays a reused allocation.
        let widest = self.cfg.intermediate_size.max(self.cfg.hidden_size).max(1);
        let max_tokens = REUSED_ALLOCATION_BYTES / (widest * std::mem::size_of::<f32>());
        self.prefill(input_embeds, input_mask, max_tokens)
    }

    /// `start_decoding` with the rows run `max_tokens` tokens at a time.
    fn prefill(&self, input_embeds: &Tensor, input_mask: &Tensor, max_tokens: usize) -> Result<LlamaSteps<'_>> {
        let Aligned {
            embeds: aligned,
            valid,
            positions,
        } = self.left_align(input_embeds, input_mask)?;
        let (b, s) = (aligned.dim(0)?, aligned.dim(1)?);
        // Rows in chunks of at most `max_tokens` tokens; each chunk's keys
        // and values and last logits are joined along the batch afterwards.
        let rows_per_chunk = (max_tokens / s.max(1)).max(1);
        let mut caches = Vec::new();
        let mut last_logits = Vec::new();
        for start in (0..b).step_by(rows_per_chunk) {
            let len = rows_per_chunk.min(b - start);
            let rows = start..start + len;
            let mut cache = self.empty_cache();
            let hidden = self.run(
                aligned.narrow(0, start, len)?,
                &positions[rows.clone()],
                &valid[rows],
                &mut cache,
                false,
            )?;
            detach(&mut cache);
            last_logits.push(self.logits(&hidden.narrow(1, s - 1, 1)?)?.squeeze(1)?.detach());
            caches.push(cache);
        }
        let cache = join_rows(caches)?;
        let pending = Tensor::cat(&last_logits, 0)?;
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

/// Per-layer caches of consecutive row chunks -> one cache over all rows.
fn join_rows(mut chunks: Vec<Vec<LayerCache>>) -> Result<Vec<LayerCache>> {
    if chunks.len() <= 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    let layers = chunks.first().map_or(0, Vec::len);
    (0..layers)
        .map(|layer| {
            let kv: Vec<&(Tensor, Tensor)> = chunks
                .iter()
                .filter_map(|chunk| chunk.get(layer).and_then(|lc| lc.kv.as_ref()))
                .collect();
            if kv.is_empty() {
                return Ok(LayerCache::default());
            }
            let keys: Vec<&Tensor> = kv.iter().map(|(k, _)| k).collect();
            let values: Vec<&Tensor> = kv.iter().map(|(_, v)| v).collect();
            Ok(LayerCache {
                kv: Some((Tensor::cat(&keys, 0)?, Tensor::cat(&values, 0)?)),
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::llama::LlamaConfig;

    #[test]
    fn prefill_in_row_chunks_equals_one_pass() {
        let cfg: LlamaConfig = serde_json::from_value(serde_json::json!({"vocab_size": 40, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}))
        .unwrap();
        let m = Llama::random(cfg, 11, &Device::Cpu).unwrap();
        // Five rows of six positions, padded differently.
        let ids: Vec<u32> = (0..30).map(|i| 5 + (i * 7 % 31) as u32).collect();
        let mask: Vec<f32> = (0..30)
            .map(|i| if i % 6 < 6 - (i / 6) % 3 { 1.0 } else { 0.0 })
            .collect();
        let ids = Tensor::from_vec(ids, (5, 6), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(mask, (5, 6), &Device::Cpu).unwrap();
        let embeds = m.embed(&ids).unwrap();
        let run = |max_tokens: usize| -> Vec<Vec<f32>> {
            let mut steps = m.prefill(&embeds, &mask, max_tokens).unwrap();
            let first = steps.step(&[0; 5]).unwrap();
            let second = steps.step(&[7, 8, 9, 10, 11]).unwrap();
            Tensor::cat(&[first, second], 1).unwrap().to_vec2().unwrap()
        };
        let whole = run(usize::MAX);
        // One row, two rows (the last chunk shorter), and the whole batch at once.
        for max_tokens in [1, 12, 30] {
            let chunked = run(max_tokens);
            for (a, b) in whole.iter().flatten().zip(chunked.iter().flatten()) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "prefill in chunks of {max_tokens} tokens: {a} vs {b}"
                );
            }
        }
    }
}
