//! The real SmolLM2-135M-Instruct (GGUF, Q4_1) against transformers' own GGUF
//! loading, through tests/fixtures/smollm2-ref.json (made by
//! make_smollm2_fixtures.py): our dequantized weights, last-position logits,
//! the tokenizer from GGUF metadata and greedy continuations; then ProMoT's two
//! stages at the library level keep what they freeze bit-identical.
//!
//! Ignored unless asked for (`cargo test --test smollm2 -- --ignored`), since
//! the model is fetched, not shipped: run `bash scripts/get-smollm2.sh` first
//! (CI does). Run without the model, they fail and say so.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use promot::model::{loading, GenerateOptions, Model};
use promot::prompt::{Init, SoftPrompt};
use promot::tokenizer::Tokenizer;
use promot::train::{self, Example, Hooks, TaskData, TrainOptions};

/// The model and its tokenizer; a missing model fails the test with the fetch command.
fn smollm2() -> (Model, Tokenizer) {
    let target = loading::resolve("smollm2").unwrap_or_else(|e| panic!("{e}"));
    let (m, dir) = loading::load("smollm2", &Device::Cpu, DType::F32, 0).unwrap();
    let tok = loading::load_tokenizer(if target.is_file() { &target } else { &dir }, m.as_ref()).unwrap();
    (m, tok)
}

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2-ref.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
#[ignore = "needs SmolLM2: run bash scripts/get-smollm2.sh"]
fn smollm2_matches_transformers_weights_logits_tokens_and_greedy_text() {
    let (m, tok) = smollm2();
    let r = reference();
    assert_eq!((m.arch(), m.eos_id(), m.pad_id()), ("llama", 2, 2));
    assert_eq!(tok.eos_id(), Some(r["eos_id"].as_u64().unwrap() as u32));

    // Every dequantized tensor: sums and fixed samples against transformers'.
    let (mut max_sample, mut max_sum_rel) = (0f64, 0f64);
    let weights = r["weights"].as_object().unwrap();
    assert_eq!(weights.len(), m.params().len(), "parameter count");
    for (name, w) in weights {
        let t = m
            .params()
            .get(name)
            .unwrap()
            .var()
            .as_tensor()
            .to_dtype(DType::F64)
            .unwrap();
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.dims(), shape.as_slice(), "{name}: shape");
        let flat = t.flatten_all().unwrap();
        let n = flat.elem_count() as u64;
        for (k, want) in f64s(&w["samples"]).into_iter().enumerate() {
            let i = ((k as u64 * 2654435761 + 12345) % n) as usize;
            max_sample = max_sample.max((flat.get(i).unwrap().to_scalar::<f64>().unwrap() - want).abs());
        }
        let abs_sum = flat.abs().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let sum = flat.sum_all().unwrap().to_scalar::<f64>().unwrap();
        let (want_abs, want_sum) = (w["abs_sum"].as_f64().unwrap(), w["sum"].as_f64().unwrap());
        max_sum_rel = max_sum_rel.max((abs_sum - want_abs).abs() / want_abs.max(1e-12));
        assert!(
            (sum - want_sum).abs() <= 1e-6 * want_abs.max(1.0),
            "{name}: sum {sum} vs {want_sum}"
        );
    }
    eprintln!("dequantized weights: max |Δ| at sampled entries {max_sample:.2e}, max rel. Δ of Σ|w| {max_sum_rel:.2e}");
    assert!(max_sample < 1e-6 && max_sum_rel < 1e-6);

    let opts = GenerateOptions {
        max_new_tokens: r["max_new_tokens"].as_u64().unwrap() as usize,
        num_beams: 1,
        length_penalty: 1.0,
        early_stopping: false,
        ..GenerateOptions::default()
    };
    for p in r["prompts"].as_array().unwrap() {
        let text = p["text"].as_str().unwrap();
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids, u32s(&p["ids"]), "token ids of {text:?}");
        let n = ids.len();
        let ids = Tensor::from_vec(ids, (1, n), &Device::Cpu).unwrap();
        let mask = Tensor::ones((1, n), DType::F32, &Device::Cpu).unwrap();
        let embeds = m.embed(&ids).unwrap();
        let dummy = Tensor::zeros((1, 1), DType::U32, &Device::Cpu).unwrap();
        let logits = m
            .forward(&embeds, &mask, &dummy, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let scale = p["logits_max_abs"].as_f64().unwrap();
        let top = u32s(&p["top_ids"]);
        let err = top
            .iter()
            .zip(f64s(&p["top_values"]))
            .map(|(&i, v)| (logits[i as usize] as f64 - v).abs())
            .fold(0.0, f64::max)
            / scale;
        let sum: f64 = logits.iter().map(|&x| x as f64).sum();
        let sum_err = (sum - p["logits_sum"].as_f64().unwrap()).abs() / (scale * logits.len() as f64);
        eprintln!("{text:?}: top-20 logits rel. error {err:.2e}, rel. error of the logit sum {sum_err:.2e}");
        assert!(err < 1e-4, "{text:?}: logits relative error {err}");
        assert!(sum_err < 1e-5, "{text:?}: logit sum differs");
        let argmax = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        assert_eq!(argmax, top[0], "{text:?}: top token");

        let got = m.generate(&embeds, &mask, &opts).unwrap().remove(0);
        assert_eq!(got, u32s(&p["greedy_ids"]), "{text:?}: greedy continuation");
        assert_eq!(tok.decode(&got, true).unwrap(), p["greedy_text"].as_str().unwrap());
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

fn never() -> bool {
    false
}

#[test]
#[ignore = "needs SmolLM2: run bash scripts/get-smollm2.sh"]
fn promot_stages_on_smollm2_keep_what_they_freeze_bit_identical() {
    let (m, tok) = smollm2();
    let pairs = [
        ("Is the sky blue?", "yes"),
        ("Is fire cold?", "no"),
        ("Is water wet?", "yes"),
        ("Do fish walk?", "no"),
    ];
    let examples = pairs
        .iter()
        .map(|(i, t)| Example {
            input: i.to_string(),
            target: t.to_string(),
            task: "yn".into(),
        })
        .collect();
    let data = || {
        vec![TaskData {
            name: "yn".into(),
            examples: Vec::clone(&examples),
            ratio: 1.0,
        }]
    };
    let opts = |steps: usize, prompt: &SoftPrompt| {
        let mut o = TrainOptions {
            steps,
            quiet: true,
            prompt: Some(prompt.clone()),
            ..TrainOptions::default()
        };
        (
            o.batch.batch_size,
            o.batch.max_input_len,
            o.batch.max_target_len,
            o.batch.seed,
        ) = (2, 12, 4, 3);
        o
    };
    let hooks = || Hooks {
        evaluate: None,
        should_stop: &never,
    };

    // Stage 1: every weight frozen, a 10-token prompt trains.
    let prompt = SoftPrompt::new("yn", m.as_ref(), 10, Init::Vocab { top: 5000 }, 0).unwrap();
    let prompt_start = bits(prompt.param().var().as_tensor());
    let before: Vec<(String, Vec<u32>)> = m
        .params()
        .iter()
        .map(|p| (p.name().to_string(), bits(p.var().as_tensor())))
        .collect();
    m.params().set_trainable("*", false).unwrap();
    train::train(m.as_ref(), &tok, data(), &opts(2, &prompt), hooks()).unwrap();
    for (name, b) in &before {
        assert!(
            &bits(m.params().get(name).unwrap().var().as_tensor()) == b,
            "frozen weight {name} changed in stage 1"
        );
    }
    let prompt_trained = bits(prompt.param().var().as_tensor());
    assert_ne!(prompt_trained, prompt_start, "the prompt did not train in stage 1");

    // Stage 2: the prompt frozen, two layers' weights train (kept to two for speed on CPU).
    prompt.freeze();
    for layer in ["model.layers.0.*", "model.layers.1.*"] {
        m.params().set_trainable(layer, true).unwrap();
    }
    let layer0 = bits(
        m.params()
            .get("model.layers.0.mlp.up_proj.weight")
            .unwrap()
            .var()
            .as_tensor(),
    );
    train::train(m.as_ref(), &tok, data(), &opts(1, &prompt), hooks()).unwrap();
    assert_eq!(
        bits(prompt.param().var().as_tensor()),
        prompt_trained,
        "the frozen prompt changed in stage 2"
    );
    assert_ne!(
        bits(
            m.params()
                .get("model.layers.0.mlp.up_proj.weight")
                .unwrap()
                .var()
                .as_tensor()
        ),
        layer0,
        "stage 2 trained nothing"
    );
    let untouched = bits(
        m.params()
            .get("model.layers.5.self_attn.q_proj.weight")
            .unwrap()
            .var()
            .as_tensor(),
    );
    let original = &before
        .iter()
        .find(|(n, _)| n == "model.layers.5.self_attn.q_proj.weight")
        .unwrap()
        .1;
    assert!(&untouched == original, "a frozen layer changed in stage 2");
}
