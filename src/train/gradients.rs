//! Gradient probes for the paper's Fig. 3: the gradient of one batch as named
//! tensors, and the cosine similarity between two such gradient sets over a
//! group of parameters.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{batch_loss, Batch, Example, TrainOptions};
use crate::error::{Error, Result};
use crate::model::LanguageModel;

/// d loss / d param for every model parameter, on one batch, dropout off.
/// Frozen parameters are unfrozen for the measurement and restored after.
pub fn batch_gradients(
    model: &dyn LanguageModel,
    batch: &Batch,
    opts: &TrainOptions,
) -> Result<BTreeMap<String, Tensor>> {
    let params: Vec<_> = model.params().iter().cloned().collect();
    let was: Vec<bool> = params.iter().map(|p| p.is_trainable()).collect();
    params.iter().for_each(|p| p.set_trainable(true));
    let result = (|| {
        let loss = batch_loss(model, batch, opts, false)?;
        let grads = loss.backward()?;
        let mut out = BTreeMap::new();
        for p in &params {
            if let Some(g) = grads.get(p.var().as_tensor()) {
                out.insert(p.name().to_string(), g.clone());
            }
        }
        Ok(out)
    })();
    params.iter().zip(was).for_each(|(p, w)| p.set_trainable(w));
    result
}

/// Cosine similarity of two gradient sets over the parameters whose names
/// contain any of `group` (flattened and concatenated).
pub fn group_cosine(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>, names: &[String]) -> Result<f64> {
    if names.is_empty() {
        return Err(Error::msg("gradient group is empty"));
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for n in names {
        let ga = a
            .get(n)
            .ok_or_else(|| Error::msg(format!("no gradient for '{n}' in the first set")))?;
        let gb = b
            .get(n)
            .ok_or_else(|| Error::msg(format!("no gradient for '{n}' in the second set")))?;
        let ga = ga.to_dtype(DType::F64)?.flatten_all()?;
        let gb = gb.to_dtype(DType::F64)?.flatten_all()?;
        dot += (&ga * &gb)?.sum_all()?.to_scalar::<f64>()?;
        na += ga.sqr()?.sum_all()?.to_scalar::<f64>()?;
        nb += gb.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    Ok(dot / (na.sqrt() * nb.sqrt()).max(1e-30))
}

/// "Format only" data: the same inputs with targets shuffled across examples,
/// so the output format survives while the input-output relation is broken.
pub fn shuffle_labels(examples: &[Example], seed: u64) -> Vec<Example> {
    let mut targets: Vec<String> = examples.iter().map(|e| e.target.clone()).collect();
    targets.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    examples
        .iter()
        .zip(targets)
        .map(|(e, t)| Example { target: t, ..e.clone() })
        .collect()
}
