//! Soft prompts interoperate with Hugging Face PEFT prompt-tuning adapters,
//! through the fixtures tests/fixtures/make_peft_fixture.py recorded: a PEFT
//! adapter loads as a `SoftPrompt` and, attached to tiny-mt5's input
//! embeddings, gives the PeftModel's logits; `export_peft` writes what PEFT
//! itself saves and reads back bit-identically.
//!
//! `PROMOT_PEFT_EXPORT_DIR=DIR cargo test --test peft_adapter` also leaves an
//! export of the fixture prompt in DIR, for tests/fixtures/check_peft_export.py.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::fixtures::{fixtures, rel_err};
use promot::model::Model;
use promot::prompt::SoftPrompt;

/// The tiny mT5 fixture the adapter was made for.
fn model() -> Model {
    common::fixtures::model("tiny-mt5")
}

fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("peft-prompt-ref.safetensors"), &Device::Cpu).unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// The prompt attached to the recorded batch, run through the model (eval mode).
fn prompted_logits(m: &Model, prompt: &SoftPrompt, r: &HashMap<String, Tensor>) -> Tensor {
    let ids = r["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r["attention_mask"].to_dtype(DType::F32).unwrap();
    // PEFT's labels are padded with -100; the decoder input uses pad (0) there.
    let targets = r["labels"].maximum(0i64).unwrap().to_dtype(DType::U32).unwrap();
    let embeds = m.embed(&ids).unwrap();
    let (embeds, mask) = prompt.attach(&embeds, &mask).unwrap();
    assert_eq!(embeds.dims()[1], ids.dims()[1] + prompt.len());
    m.forward(&embeds, &mask, &targets, false).unwrap()
}

/// A fresh directory under the system temp dir (no tempfile crate here).
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promot-peft-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn peft_adapter_gives_peft_logits() {
    let m = model();
    let r = reference();
    let prompt = SoftPrompt::load("p", &fixtures().join("peft-prompt"), &*m).unwrap();
    assert_eq!((prompt.len(), prompt.width()), (5, 32));
    assert_eq!(
        values(&prompt.tensor()),
        values(&r["prompt_embeddings"]),
        "prompt values changed on load"
    );

    let logits = prompted_logits(&m, &prompt, &r);
    let e = rel_err(&logits, &r["logits"]);
    assert!(e < 1e-4, "logits relative error {e} against PEFT");

    // The adapter file itself (not its directory) loads the same prompt.
    let from_file = SoftPrompt::load("q", &fixtures().join("peft-prompt/adapter_model.safetensors"), &*m).unwrap();
    assert_eq!(values(&from_file.tensor()), values(&prompt.tensor()));
}

#[test]
fn prompt_without_its_peft_prompt_changes_logits() {
    // Guards the test above against a prompt that does nothing: the bare batch differs.
    let m = model();
    let r = reference();
    let ids = r["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r["attention_mask"].to_dtype(DType::F32).unwrap();
    let targets = r["labels"].maximum(0i64).unwrap().to_dtype(DType::U32).unwrap();
    let logits = m.forward(&m.embed(&ids).unwrap(), &mask, &targets, false).unwrap();
    assert!(rel_err(&logits, &r["logits"]) > 1e-2);
}

#[test]
fn export_peft_matches_peft_and_round_trips() {
    let m = model();
    let prompt = SoftPrompt::load("p", &fixtures().join("peft-prompt"), &*m).unwrap();
    let dir = temp_dir("export");
    prompt
        .export_peft(&dir, "tests/fixtures/tiny-mt5", "SEQ_2_SEQ_LM")
        .unwrap();
    if let Ok(keep) = std::env::var("PROMOT_PEFT_EXPORT_DIR") {
        prompt
            .export_peft(Path::new(&keep), "tests/fixtures/tiny-mt5", "SEQ_2_SEQ_LM")
            .unwrap();
    }

    // The fields PEFT builds a prompt-tuning model from, valued as PEFT itself saved them.
    let ours = read_json(&dir.join("adapter_config.json"));
    let peft = read_json(&fixtures().join("peft-prompt/adapter_config.json"));
    for key in [
        "peft_type",
        "task_type",
        "num_virtual_tokens",
        "token_dim",
        "num_transformer_submodules",
        "inference_mode",
    ] {
        assert!(!ours[key].is_null(), "export lacks {key}");
        assert_eq!(ours[key], peft[key], "adapter_config.json field {key}");
    }
    assert_eq!(ours["base_model_name_or_path"], "tests/fixtures/tiny-mt5");
    // Values PEFT checks against its enums when it parses the config.
    assert_eq!(ours["prompt_tuning_init"], "RANDOM");

    let saved = candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(saved.keys().collect::<Vec<_>>(), ["prompt_embeddings"]);
    let t = &saved["prompt_embeddings"];
    assert_eq!((t.dims(), t.dtype()), (&[5usize, 32][..], DType::F32));

    let back = SoftPrompt::load("p2", &dir, &*m).unwrap();
    let bits = |p: &SoftPrompt| values(&p.tensor()).iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&back), bits(&prompt), "export did not round-trip bit-identically");
    assert_eq!(
        bits(&back),
        values(&reference()["prompt_embeddings"])
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decoder_side_peft_prompt_is_refused() {
    // PEFT's default for SEQ_2_SEQ_LM (num_transformer_submodules 2) stores an
    // encoder prompt and a decoder prompt, 2 x 5 rows; a soft prompt here is
    // encoder-side only, so taking all 10 rows as one prompt would be wrong.
    let m = model();
    let dir = fixtures().join("peft-prompt-2sub");
    let err = SoftPrompt::load("p", &dir, &*m).expect_err("a two-submodule adapter must not load as one prompt");
    assert!(err.to_string().contains("num_transformer_submodules"), "{err}");
}
