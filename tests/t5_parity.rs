//! Our T5/mT5 against Hugging Face transformers, through the fixtures that
//! tests/fixtures/make_t5_fixtures.py recorded: encoder states, logits, loss
//! (plain and label-smoothed), gradients of named parameters and of the input
//! embeddings, and greedy / beam-4 generations (single and batched).

mod common;

use std::path::Path;

use candle_core::{DType, Device, Var};
use common::fixtures::{model, reference, rel_err};
use common::t5_checks::{check_forward_and_grads, check_generation, targets};
use promot::model::{loading, loss::cross_entropy};

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
