//! The Llama / Qwen2 parity checks against transformers' fixtures, shared by
//! tests/llama_parity.rs (the default kernels) and tests/generic_kernels.rs
//! (the device-generic path forced on the CPU).

use candle_core::{DType, Device, Tensor, Var};
use promot::model::{loss::cross_entropy, GenerateOptions};

use super::fixtures::{ids, model, reference, rel_err};

pub fn f32_of(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F32).unwrap()
}

pub fn check_forward_and_grads(name: &str, arch: &str) {
    let r = reference(name);
    let m = model(name);
    assert_eq!(m.arch(), arch);
    assert_eq!((m.eos_id(), m.pad_id()), (2, 2));
    assert!(
        !m.input_ends_with_eos(),
        "{name}: a decoder-only input must not end with eos"
    );
    let mask = f32_of(&r.tensors["inputs_mask"]);
    let tgt = r.tensors["targets"].to_dtype(DType::U32).unwrap();
    let tmask = f32_of(&r.tensors["target_mask"]);
    // Twice: in evaluation mode, and in training mode (the fused one-op
    // attention and rotation, the cache-less path); no dropout in either.
    for train in [false, true] {
        // The prompt + input embeddings as a leaf, as the reference took its gradient.
        let x = Var::from_tensor(&r.tensors["inputs_embeds"]).unwrap();
        let logits = m.forward(x.as_tensor(), &mask, &tgt, train).unwrap();
        let e = rel_err(&logits, &r.tensors["logits"]);
        eprintln!("{name}: logits relative error {e:.2e}");
        assert!(e < 1e-4, "{name} (train {train}): logits relative error {e}");

        let loss = cross_entropy(&logits, &tgt, &tmask, 0.0).unwrap();
        let (got, want) = (
            loss.to_scalar::<f32>().unwrap(),
            r.json["loss"].as_f64().unwrap() as f32,
        );
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

        let grads = loss.backward().unwrap();
        for pname in r.json["grad_names"].as_array().unwrap() {
            let pname = pname.as_str().unwrap();
            let p = m.params().get(pname).unwrap();
            let g = grads
                .get(p.var().as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            let e = rel_err(g, &r.tensors[&format!("grad.{pname}")]);
            eprintln!("{name}: gradient of {pname} relative error {e:.2e}");
            assert!(
                e < 1e-3,
                "{name} (train {train}): gradient of {pname} relative error {e}"
            );
        }
        let gx = grads.get(x.as_tensor()).expect("gradient of the input embeddings");
        let e = rel_err(gx, &r.tensors["grad.inputs_embeds"]);
        assert!(
            e < 1e-3,
            "{name} (train {train}): input-embedding gradient relative error {e}"
        );
    }
}

pub fn check_generation(name: &str) {
    let r = reference(name);
    let m = model(name);
    let x = &r.tensors["inputs_embeds"];
    let mask = f32_of(&r.tensors["inputs_mask"]);
    let max_new = r.json["generation_max_new_tokens"].as_u64().unwrap() as usize;
    let early_stopping = r.json["generation_early_stopping"].as_bool().unwrap();
    let length_penalty = r.json["generation_length_penalty"].as_f64().unwrap();
    for (beams, key) in [(1usize, "greedy"), (4, "beam4")] {
        let opts = GenerateOptions {
            max_new_tokens: max_new,
            num_beams: beams,
            length_penalty,
            early_stopping,
            ..GenerateOptions::default()
        };
        let got = m.generate(x, &mask, &opts).unwrap();
        assert_eq!(
            got,
            ids(&r.json[format!("{key}_batched_ids")]),
            "{name}: {key} batched generation differs"
        );
        let single = ids(&r.json[format!("{key}_single_ids")]);
        for (i, want) in single.iter().enumerate() {
            let n = mask.get(i).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as usize;
            let row = x.get(i).unwrap().narrow(0, 0, n).unwrap().unsqueeze(0).unwrap();
            let got = m
                .generate(&row, &Tensor::ones((1, n), DType::F32, &Device::Cpu).unwrap(), &opts)
                .unwrap();
            assert_eq!(&got[0], want, "{name}: {key} single generation {i} differs");
        }
    }
}
