//! How texts become a model's token ids, the one definition every layer uses
//! (training batches, evaluation, scripts):
//!
//! - an input is cut to its last `max_len` tokens (a long demonstration
//!   prefix shrinks, the query stays whole) and ends with EOS only where the
//!   model reads it so (an encoder-decoder does; a decoder-only model continues its input);
//! - a target always ends with EOS (the model learns to stop) and is cut to
//!   its first `max_len` tokens; for a model that continues its input, the
//!   target is written after the same joiner a demonstration puts between
//!   input and target (`"answer: True"`), so training and k-shot prompts
//!   agree on the format.

use crate::data::fewshot::TARGET_JOIN;
use crate::error::Result;
use crate::model::LanguageModel;
use crate::tokenizer::Tokenizer;

/// Token ids of an input text.
pub fn encode_input(tok: &Tokenizer, model: &dyn LanguageModel, text: &str, max_len: usize) -> Result<Vec<u32>> {
    Ok(keep_tail(tok.encode(text, model.input_ends_with_eos())?, max_len))
}

/// Token ids of a target text.
pub fn encode_target(tok: &Tokenizer, model: &dyn LanguageModel, text: &str, max_len: usize) -> Result<Vec<u32>> {
    let mut ids = if model.target_continues_input() {
        tok.encode(&format!("{TARGET_JOIN}{text}"), true)?
    } else {
        tok.encode(text, true)?
    };
    ids.truncate(max_len.max(1));
    Ok(ids)
}

/// Cut a sequence to `max` tokens from the front (0: no limit).
pub fn keep_tail(mut ids: Vec<u32>, max: usize) -> Vec<u32> {
    if max > 0 && ids.len() > max {
        ids.drain(..ids.len() - max);
    }
    ids
}
