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

/// d loss / d param on one batch, dropout off: for every model parameter, or
/// with `only`, for the parameters of those names. The others are held
/// frozen for the measurement, so no gradient is computed for them and,
/// unless a trainable prompt is attached (it starts the graph at the input),
/// the forward pass keeps no activations below the first parameter asked for
/// (gradients of the last layer keep one layer's, not all of them). Whether
/// each parameter trains is restored after.
pub fn batch_gradients(
    model: &dyn LanguageModel,
    batch: &Batch,
    opts: &TrainOptions,
    only: Option<&[String]>,
) -> Result<BTreeMap<String, Tensor>> {
    let params: Vec<_> = model.params().iter().cloned().collect();
    if let Some(names) = only {
        if let Some(missing) = names.iter().find(|n| !params.iter().any(|p| p.name() == n.as_str())) {
            return Err(Error::msg(format!("gradients: the model has no parameter '{missing}'")));
        }
    }
    let was: Vec<bool> = params.iter().map(|p| p.is_trainable()).collect();
    let wanted = |name: &str| only.is_none_or(|names| names.iter().any(|n| n == name));
    params.iter().for_each(|p| p.set_trainable(wanted(p.name())));
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

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::{Llama, LlamaConfig};

    #[test]
    fn gradients_of_named_parameters_equal_those_of_all() {
        let cfg: LlamaConfig = serde_json::from_value(serde_json::json!({"vocab_size": 40, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}))
        .unwrap();
        let m = Llama::random(cfg, 5, &Device::Cpu).unwrap();
        m.params.set_trainable("*", false).unwrap();
        let batch = Batch {
            inputs: vec![vec![5, 6, 7, 8], vec![9, 10]],
            targets: vec![vec![11, 12], vec![13, 14, 15]],
            tasks: vec!["t".into(), "t".into()],
        };
        let opts = TrainOptions::default();
        let all = batch_gradients(&m, &batch, &opts, None).unwrap();
        let names: Vec<String> = [
            "model.layers.1.mlp.up_proj.weight",
            "model.layers.1.self_attn.q_proj.weight",
        ]
        .map(String::from)
        .to_vec();
        let some = batch_gradients(&m, &batch, &opts, Some(&names)).unwrap();
        assert_eq!(some.keys().cloned().collect::<Vec<_>>(), names);
        // Equal up to rounding: the layers below run untracked, where a
        // kernel may take another path (summing in another order).
        for n in &names {
            let max_abs = |t: Tensor| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let (diff, scale) = (max_abs((&all[n] - &some[n]).unwrap()), max_abs(all[n].clone()));
            assert!(
                scale > 0.0 && diff <= 1e-5 * scale,
                "{n}: differs by {diff} (largest {scale})"
            );
        }
        // Every parameter is as frozen as before the probes.
        assert!(m.params.iter().all(|p| !p.is_trainable()));
        let err = batch_gradients(&m, &batch, &opts, Some(&["nope".to_string()])).unwrap_err();
        assert!(err.to_string().contains("no parameter 'nope'"), "{err}");
    }
}
