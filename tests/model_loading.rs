//! Loading every checkpoint layout the hub uses (safetensors, pytorch_model.bin,
//! sharded safetensors with an index), hub ids from the local HF cache with no
//! network, and saving in a form that loads back identically.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use promot::model::{loading, Model};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn load(spec: &str) -> Model {
    loading::load(spec, &Device::Cpu, DType::F32, 0)
        .unwrap_or_else(|e| panic!("{spec}: {e}"))
        .0
}

fn logits(m: &Model) -> Tensor {
    let ids = Tensor::new(&[[5u32, 17, 42, 1], [9, 3, 1, 0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1f32, 1., 1., 1.], [1., 1., 1., 0.]], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[[7u32, 8, 1], [11, 1, 0]], &Device::Cpu).unwrap();
    m.forward(&m.embed(&ids).unwrap(), &mask, &targets, false).unwrap()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.flatten_all().unwrap().to_vec1::<f32>().unwrap() == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn pytorch_bin_and_sharded_checkpoints_load_the_same_weights() {
    let reference = logits(&load(fixture("tiny-mt5").to_str().unwrap()));
    for layout in ["tiny-mt5-bin", "tiny-mt5-sharded"] {
        let m = load(fixture(layout).to_str().unwrap());
        assert!(same(&logits(&m), &reference), "{layout} gives different logits");
    }
}

#[test]
fn hub_ids_resolve_from_the_local_hf_cache_without_network() {
    let home = std::env::temp_dir().join(format!("promot-hf-home-{}", std::process::id()));
    let repo = home.join("hub").join("models--promot--tiny-mt5");
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd").unwrap();
    for f in ["config.json", "model.safetensors", "spiece.model"] {
        std::fs::copy(fixture("tiny-mt5").join(f), snapshot.join(f)).unwrap();
    }
    std::env::set_var("HF_HOME", &home);
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let m = load("promot/tiny-mt5");
    assert!(same(&logits(&m), &logits(&load(fixture("tiny-mt5").to_str().unwrap()))));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn saved_models_reload_bit_identically_with_an_hf_config() {
    let m = load(fixture("tiny-mt5").to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("promot-save-{}", std::process::id()));
    loading::save(m.as_ref(), &dir).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "mt5");
    assert_eq!(config["feed_forward_proj"], "gated-gelu");
    assert_eq!(config["tie_word_embeddings"], false);
    let back = load(dir.to_str().unwrap());
    assert!(same(&logits(&back), &logits(&m)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broken_checkpoints_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("promot-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("tiny-mt5").join("config.json"), dir.join("config.json")).unwrap();
    let err = |d: &Path| {
        loading::load(d.to_str().unwrap(), &Device::Cpu, DType::F32, 0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err(&dir).contains("no weights found"), "{}", err(&dir));
    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    assert!(err(&dir).contains("model.safetensors"), "{}", err(&dir));
    std::fs::write(dir.join("config.json"), b"{ \"model_type\": \"t5\", ").unwrap();
    assert!(err(&dir).contains("config.json:1"), "{}", err(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}
