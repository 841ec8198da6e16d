//! Our T5/mT5 against Hugging Face transformers, through the fixtures that
//! tests/fixtures/make_t5_fixtures.py recorded: encoder states, logits, loss
//! (plain and label-smoothed), gradients of named parameters and of the input
//! embeddings, and greedy / beam-4 generations (single and batched).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use promot::model::{loading, loss::cross_entropy, GenerateOptions, Model};

struct Reference {
    json: serde_json::Value,
    tensors: HashMap<String, Tensor>,
}

fn reference(name: &str) -> Reference {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}-ref.json"))).unwrap()).unwrap();
    let tensors = candle_core::safetensors::load(dir.join(format!("{name}-ref.safetensors")), &Device::Cpu).unwrap();
    Reference { json, tensors }
}

fn model(name: &str) -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    loading::load(dir.to_str().unwrap(), &Device::Cpu, DType::F32, 0)
        .unwrap()
        .0
}

/// max |a - b| / max |b|: a relative error that ignores tiny entries' noise.
fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = b
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .max(1e-12);
    diff / scale
}

/// labels with -100 -> (targets with pad 0, mask).
fn targets(r: &Reference) -> (Tensor, Tensor) {
    let labels = r.tensors["labels"].to_dtype(DType::I64).unwrap();
    let mask = labels.ge(0i64).unwrap().to_dtype(DType::F32).unwrap();
    let tgt = labels.maximum(0i64).unwrap().to_dtype(DType::U32).unwrap();
    (tgt, mask)
}

fn check_forward_and_grads(name: &str) {
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

fn expected_ids(v: &serde_json::Value, eos: u32) -> Vec<Vec<u32>> {
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

fn check_generation(name: &str) {
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

#[test]
fn mt5_forward_loss_and_gradients_match_transformers() {
    check_forward_and_grads("tiny-mt5");
}

#[test]
fn t5_v1_0_forward_loss_and_gradients_match_transformers() {
    check_forward_and_grads("tiny-t5");
}

#[test]
fn mt5_greedy_and_beam_generation_match_transformers() {
    check_generation("tiny-mt5");
}

#[test]
fn t5_v1_0_greedy_and_beam_generation_match_transformers() {
    check_generation("tiny-t5");
}

#[test]
fn encoder_states_match_transformers() {
    for name in ["tiny-mt5", "tiny-t5"] {
        let r = reference(name);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let cfg: promot::model::T5Config = serde_json::from_value(raw).unwrap();
        let weights = loading::read_weights(&dir, &Device::Cpu, DType::F32).unwrap();
        let mut ps = promot::params::ParamStore::new();
        for (n, _) in promot::model::T5::param_shapes(&cfg) {
            ps.insert(promot::params::Param::new(&n, weights[&n].clone()).unwrap());
        }
        let t5 = promot::model::T5::load(ps, cfg, 0).unwrap();
        let ids = r.tensors["input_ids"].to_dtype(DType::U32).unwrap();
        let mask = r.tensors["attention_mask"].to_dtype(DType::F32).unwrap();
        let enc = t5.encode(&t5.embed(&ids).unwrap(), &mask, false).unwrap();
        // Padding rows differ by design (masked queries); compare real positions only.
        let m3 = mask.unsqueeze(2).unwrap();
        let e = rel_err(
            &enc.broadcast_mul(&m3).unwrap(),
            &r.tensors["encoder_last_hidden_state"].broadcast_mul(&m3).unwrap(),
        );
        assert!(e < 1e-4, "{name}: encoder states relative error {e}");
    }
}

#[test]
fn frozen_weights_still_pass_the_reference_gradient_to_the_input() {
    // Stage 1 of ProMoT: every weight frozen, only the input (a prompt) learns.
    let r = reference("tiny-mt5");
    let m = model("tiny-mt5");
    m.params().set_trainable("*", false).unwrap();
    let ids = r.tensors["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r.tensors["attention_mask"].to_dtype(DType::F32).unwrap();
    let x = Var::from_tensor(&m.embed(&ids).unwrap().detach()).unwrap();
    let (tgt, tmask) = targets(&r);
    let logits = m.forward(x.as_tensor(), &mask, &tgt, false).unwrap();
    assert!(rel_err(&logits, &r.tensors["logits"]) < 1e-4);
    let grads = cross_entropy(&logits, &tgt, &tmask, 0.0).unwrap().backward().unwrap();
    let e = rel_err(grads.get(x.as_tensor()).unwrap(), &r.tensors["grad.inputs_embeds"]);
    assert!(
        e < 1e-3,
        "input-embedding gradient through frozen weights: relative error {e}"
    );
    for p in m.params().iter() {
        assert!(
            grads.get(p.var().as_tensor()).is_none(),
            "frozen {} received a gradient",
            p.name()
        );
    }
}
