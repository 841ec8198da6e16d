//! The T5/mT5 parity checks against transformers' fixtures, shared by
//! tests/t5_parity.rs (the default kernels) and tests/generic_kernels.rs
//! (the device-generic path forced on the CPU).

use candle_core::{DType, Device, Tensor, Var};
use promot::model::{loss::cross_entropy, GenerateOptions};

use super::fixtures::{model, reference, rel_err, Reference};

/// labels with -100 -> (targets with pad 0, mask).
pub fn targets(r: &Reference) -> (Tensor, Tensor) {
    let labels = r.tensors["labels"].to_dtype(DType::I64).unwrap();
    let mask = labels.ge(0i64).unwrap().to_dtype(DType::F32).unwrap();
    let tgt = labels.maximum(0i64).unwrap().to_dtype(DType::U32).unwrap();
    (tgt, mask)
}

pub fn check_forward_and_grads(name: &str) {
    let r = reference(name);
    let m = model(name);
    let ids = r.tensors["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r.tensors["attention_mask"].to_dtype(DType::F32).unwrap();
    let embeds = m.embed(&ids).unwrap();
    assert!(
        rel_err(&embeds, &r.tensors["inputs_embeds"]) < 1e-6,
        "{name}: embeddings differ"
    );

    // The input embeddings as a leaf, as the reference took its gradient.
    let x = Var::from_tensor(&embeds.detach()).unwrap();
    let (tgt, tmask) = targets(&r);
    let logits = m.forward(x.as_tensor(), &mask, &tgt, false).unwrap();
    let e = rel_err(&logits, &r.tensors["logits"]);
    assert!(e < 1e-4, "{name}: logits relative error {e}");

    let loss = cross_entropy(&logits, &tgt, &tmask, 0.0).unwrap();
    let want = r.json["loss"].as_f64().unwrap() as f32;
    let got = loss.to_scalar::<f32>().unwrap();
    assert!(((got - want) / want).abs() < 1e-4, "{name}: loss {got} vs {want}");
    let smoothed = cross_entropy(&logits, &tgt, &tmask, 0.1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let want_s = r.json["loss_label_smoothing_0.1"].as_f64().unwrap() as f32;
    assert!(
        ((smoothed - want_s) / want_s).abs() < 1e-4,
        "{name}: smoothed loss {smoothed} vs {want_s}"
    );

    // Parameter gradients: the reference embedded input ids inside the model.
    let logits_ids = m.forward(&m.embed(&ids).unwrap(), &mask, &tgt, false).unwrap();
    let grads = cross_entropy(&logits_ids, &tgt, &tmask, 0.0)
        .unwrap()
        .backward()
        .unwrap();
    for pname in r.json["grad_names"].as_array().unwrap() {
        let pname = pname.as_str().unwrap();
        let p = m.params().get(pname).unwrap();
        let g = grads
            .get(p.var().as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
        let e = rel_err(g, &r.tensors[&format!("grad.{pname}")]);
        assert!(e < 1e-3, "{name}: gradient of {pname} relative error {e}");
    }
    let grads = loss.backward().unwrap();
    let gx = grads.get(x.as_tensor()).expect("gradient of the input embeddings");
    let e = rel_err(gx, &r.tensors["grad.inputs_embeds"]);
    assert!(e < 1e-3, "{name}: input-embedding gradient relative error {e}");
}

pub fn expected_ids(v: &serde_json::Value, eos: u32) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let ids: Vec<u32> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            // Drop the decoder start token; keep up to and including EOS.
            let mut out = Vec::new();
            for &t in &ids[1..] {
                out.push(t);
                if t == eos {
                    break;
                }
            }
            out
        })
        .collect()
}

pub fn check_generation(name: &str) {
    let r = reference(name);
    let m = model(name);
    let ids = r.tensors["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r.tensors["attention_mask"].to_dtype(DType::F32).unwrap();
    let max_new = r.json["generation_max_new_tokens"].as_u64().unwrap() as usize;
    for (beams, key) in [(1usize, "greedy"), (4, "beam4")] {
        let opts = GenerateOptions {
            max_new_tokens: max_new,
            num_beams: beams,
            length_penalty: 1.0,
            early_stopping: false,
            ..GenerateOptions::default()
        };
        // Batched, with padding.
        let got = m.generate(&m.embed(&ids).unwrap(), &mask, &opts).unwrap();
        let want = expected_ids(&r.json[format!("{key}_batched_ids")], m.eos_id());
        assert_eq!(got, want, "{name}: {key} batched generation differs");
        // One input at a time, unpadded.
        let single = expected_ids(&r.json[format!("{key}_single_ids")], m.eos_id());
        for i in 0..ids.dim(0).unwrap() {
            let n = mask.get(i).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as usize;
            let row = ids.get(i).unwrap().narrow(0, 0, n).unwrap().unsqueeze(0).unwrap();
            let got = m
                .generate(
                    &m.embed(&row).unwrap(),
                    &Tensor::ones((1, n), DType::F32, &Device::Cpu).unwrap(),
                    &opts,
                )
                .unwrap();
            assert_eq!(got[0], single[i], "{name}: {key} single generation {i} differs");
        }
    }
}
