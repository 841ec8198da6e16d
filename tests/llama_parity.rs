//! Our Llama / Qwen2 and GGUF reader against Hugging Face transformers, through
//! the fixtures tests/fixtures/make_llama_fixtures.py recorded: teacher-forced
//! logits and loss for a padded batch behind a 4-row prompt of embeddings,
//! gradients of named parameters and of the input embeddings, greedy and
//! beam-4 generations (batched and one row at a time), and for a tiny GGUF:
//! dequantized weights, logits, generations and the tokenizer from metadata.

mod common;

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use common::fixtures::{fixtures, ids, model, reference, rel_err};
use common::llama_checks::{check_forward_and_grads, check_generation, f32_of};
use promot::model::gguf::Gguf;
use promot::model::{loading, loss::cross_entropy, GenerateOptions};

#[test]
fn llama_gqa_tied_llama3_rope_forward_loss_and_gradients_match_transformers() {
    check_forward_and_grads("tiny-llama", "llama");
}

#[test]
fn qwen2_biases_untied_linear_rope_forward_loss_and_gradients_match_transformers() {
    check_forward_and_grads("tiny-qwen2", "qwen2");
}

#[test]
fn llama_greedy_and_beam_generation_match_transformers() {
    check_generation("tiny-llama");
}

#[test]
fn qwen2_greedy_and_beam_generation_match_transformers() {
    check_generation("tiny-qwen2");
}

#[test]
fn frozen_weights_pass_the_reference_gradient_to_the_prompt_only() {
    let r = reference("tiny-llama");
    let m = model("tiny-llama");
    m.params().set_trainable("*", false).unwrap();
    let x = Var::from_tensor(&r.tensors["inputs_embeds"]).unwrap();
    let tgt = r.tensors["targets"].to_dtype(DType::U32).unwrap();
    let logits = m
        .forward(x.as_tensor(), &f32_of(&r.tensors["inputs_mask"]), &tgt, false)
        .unwrap();
    assert!(rel_err(&logits, &r.tensors["logits"]) < 1e-4);
    let grads = cross_entropy(&logits, &tgt, &f32_of(&r.tensors["target_mask"]), 0.0)
        .unwrap()
        .backward()
        .unwrap();
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

#[test]
fn saved_decoder_models_reload_identically_with_their_hf_class() {
    let m = model("tiny-qwen2");
    let dir = std::env::temp_dir().join(format!("promot-save-qwen2-{}", std::process::id()));
    loading::save(m.as_ref(), &dir).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Qwen2ForCausalLM");
    assert_eq!(config["model_type"], "qwen2");
    let back = loading::load(dir.to_str().unwrap(), &Device::Cpu, DType::F32, 0)
        .unwrap()
        .0;
    let r = reference("tiny-qwen2");
    let (x, mask) = (&r.tensors["inputs_embeds"], f32_of(&r.tensors["inputs_mask"]));
    let tgt = r.tensors["targets"].to_dtype(DType::U32).unwrap();
    let a = m
        .forward(x, &mask, &tgt, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = back
        .forward(x, &mask, &tgt, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
    let _ = std::fs::remove_dir_all(&dir);
}

fn gguf_path() -> PathBuf {
    fixtures().join("tiny-llama-gguf/model.gguf")
}

#[test]
fn gguf_weights_dequantize_and_unpermute_to_transformers_layout() {
    let r = reference("tiny-llama-gguf");
    let m = loading::load_gguf(&gguf_path(), &Device::Cpu, DType::F32, 0).unwrap();
    for name in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.embed_tokens.weight",
    ] {
        let got = m.params.get(name).unwrap().var().as_tensor().clone();
        let diff = (got - &r.tensors[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            diff < 1e-6,
            "{name}: max |diff| {diff} from transformers' dequantized weight"
        );
    }
    let cfg = &r.json["config"];
    assert_eq!(
        m.cfg.num_key_value_heads,
        Some(cfg["num_key_value_heads"].as_u64().unwrap() as usize)
    );
    assert_eq!(m.cfg.tie_word_embeddings, cfg["tie_word_embeddings"].as_bool().unwrap());
}

#[test]
fn gguf_model_logits_and_greedy_generation_match_transformers() {
    let r = reference("tiny-llama-gguf");
    let (m, _) = loading::load(gguf_path().to_str().unwrap(), &Device::Cpu, DType::F32, 0).unwrap();
    assert!(
        !gguf_path().with_file_name("tokenizer.json").exists(),
        "loading wrote into the fixtures"
    );
    let ids = r.tensors["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = f32_of(&r.tensors["attention_mask"]); // left-padded, as transformers pads for generation
    let embeds = m.embed(&ids).unwrap();
    let one = Tensor::zeros((ids.dim(0).unwrap(), 1), DType::U32, &Device::Cpu).unwrap();
    let last = m.forward(&embeds, &mask, &one, false).unwrap().squeeze(1).unwrap();
    let e = rel_err(&last, &r.tensors["last_logits"]);
    eprintln!("tiny-llama-gguf: last-position logits relative error {e:.2e}");
    assert!(e < 1e-4, "last-position logits relative error {e}");
    let opts = GenerateOptions {
        max_new_tokens: 10,
        num_beams: 1,
        length_penalty: 1.0,
        early_stopping: false,
        ..GenerateOptions::default()
    };
    assert_eq!(
        m.generate(&embeds, &mask, &opts).unwrap(),
        ids_of(&r.json["greedy_ids"])
    );
}

fn ids_of(v: &serde_json::Value) -> Vec<Vec<u32>> {
    ids(v)
}

#[test]
fn gguf_tokenizer_from_metadata_matches_transformers() {
    let r = reference("tiny-llama-gguf");
    let m = loading::load_gguf(&gguf_path(), &Device::Cpu, DType::F32, 0).unwrap();
    let tok = loading::load_tokenizer(&gguf_path(), &m).unwrap();
    assert_eq!(tok.eos_id(), r.json["eos_id"].as_u64().map(|i| i as u32));
    assert_eq!(tok.pad_id() as u64, r.json["pad_id"].as_u64().unwrap());
    for case in r.json["tokenizer_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text, false).unwrap(), want, "ids of {text:?}");
        assert_eq!(
            tok.decode(&want, true).unwrap(),
            case["decoded_skip_special"].as_str().unwrap(),
            "decoding {text:?}"
        );
    }
    let texts: Vec<String> = r.json["greedy_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| tok.decode(&ids(&serde_json::json!([s]))[0], true).unwrap())
        .collect();
    let want: Vec<String> = r.json["greedy_text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, want);
}

#[test]
fn every_gguf_quantization_type_dequantizes_like_the_gguf_package() {
    let reference =
        candle_core::safetensors::load(fixtures().join("gguf-quants-ref.safetensors"), &Device::Cpu).unwrap();
    let mut g = Gguf::open(&fixtures().join("gguf-quants.gguf")).unwrap();
    assert_eq!(reference.len(), 11);
    for (name, want) in &reference {
        let got = g.tensor(name, &Device::Cpu).unwrap();
        assert_eq!(got.dims(), want.dims(), "{name}: shape");
        let diff = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(
            diff <= 1e-6 * scale.max(1.0),
            "{name}: max |diff| {diff} (values up to {scale})"
        );
    }
}
