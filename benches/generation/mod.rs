//! Beam-4 generation speed: each shape's model (random weights, eval mode)
//! decodes its batch of random inputs with beam search, 4 beams, up to
//! `target_len` new tokens; tokens/s counts the returned (best) sequences'
//! generated tokens, as benches/train_step_torch.py counts transformers'.
//! Random weights almost never emit EOS, so both sides decode the full length.

use std::time::Instant;

use candle_core::Tensor;

use promot::error::Result;
use promot::model::generate::GenerateOptions;
use promot::model::LanguageModel;

/// Tokens generated and mean seconds over `reps` timed calls (after one warm-up).
pub fn beam4(
    model: &dyn LanguageModel,
    ids: &Tensor,
    mask: &Tensor,
    new_tokens: usize,
    reps: usize,
) -> Result<(usize, f64)> {
    let opts = GenerateOptions {
        max_new_tokens: new_tokens,
        num_beams: 4,
        ..GenerateOptions::default()
    };
    let embeds = model.embed(ids)?;
    model.generate(&embeds, mask, &opts)?;
    let mut tokens = 0;
    let t0 = Instant::now();
    for _ in 0..reps.max(1) {
        tokens = model.generate(&embeds, mask, &opts)?.iter().map(Vec::len).sum();
    }
    Ok((tokens, t0.elapsed().as_secs_f64() / reps.max(1) as f64))
}
