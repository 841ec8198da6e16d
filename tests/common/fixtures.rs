//! Reading the reference fixtures (tests/fixtures/*-ref.json and
//! *-ref.safetensors, made by the scripts there) and comparing against them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use promot::model::{loading, Model};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's recorded values: JSON (ids, texts, scalars) and tensors.
pub struct Reference {
    pub json: serde_json::Value,
    pub tensors: HashMap<String, Tensor>,
}

/// A fixture's recorded JSON (`{name}-ref.json`).
pub fn reference_json(name: &str) -> serde_json::Value {
    let path = fixtures().join(format!("{name}-ref.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn reference(name: &str) -> Reference {
    let json = reference_json(name);
    let tensors =
        candle_core::safetensors::load(fixtures().join(format!("{name}-ref.safetensors")), &Device::Cpu).unwrap();
    Reference { json, tensors }
}

/// A fixture model, in f32 on the CPU.
pub fn model(name: &str) -> Model {
    loading::load(fixtures().join(name).to_str().unwrap(), &Device::Cpu, DType::F32, 0)
        .unwrap()
        .0
}

/// max |a - b| / max |b|: a relative error that ignores tiny entries' noise.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let max = |t: Tensor| {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    max((a - b).unwrap()) / max(b.clone()).max(1e-12)
}

/// Rows of token ids from a JSON array of arrays.
pub fn ids(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}
