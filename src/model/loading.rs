//! Loading models from HF-style directories or the local HF cache, and saving
//! them back in a form Python transformers loads unchanged.
//!
//! A model directory holds config.json plus weights as model.safetensors,
//! pytorch_model.bin, or a sharded `*.index.json` with its shards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::{LanguageModel, Model, T5Config, T5};
use crate::error::{Error, Result};
use crate::fsio;
use crate::params::{Param, ParamStore};

/// Files we look for in a hub repository, weights in order of preference.
const WEIGHT_FILES: [&str; 4] =
    ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];
const TOKENIZER_FILES: [&str; 4] = ["tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"];

/// Turn "path/to/dir" or "org/name" (a hub id) into a local directory.
/// Hub ids are served from the local HF cache (HF_HOME / HF_HUB_CACHE) and
/// downloaded only when the network allows.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        return Err(Error::file(path, "expected a model directory (with config.json), found a file"));
    }
    let looks_like_id = spec.split('/').count() <= 2 && !spec.starts_with('.') && !spec.contains('\\') && !spec.is_empty();
    if !looks_like_id {
        return Err(Error::file(path, "no such model directory"));
    }
    if let Some(dir) = from_cache(spec) {
        return Ok(dir);
    }
    download(spec).map_err(|e| {
        Error::msg(format!(
            "model '{spec}' is not a local directory and not in the local Hugging Face cache ({}); downloading failed: {e}",
            hf_hub::Cache::from_env().path().display()
        ))
    })
}

fn from_cache(id: &str) -> Option<PathBuf> {
    let repo = hf_hub::Cache::from_env().model(id.to_string());
    let config = repo.get("config.json")?;
    let dir = config.parent()?.to_path_buf();
    WEIGHT_FILES.iter().any(|f| repo.get(f).is_some()).then_some(dir)
}

fn download(id: &str) -> std::result::Result<PathBuf, String> {
    let api = hf_hub::api::sync::ApiBuilder::from_env().build().map_err(|e| e.to_string())?;
    let repo = api.model(id.to_string());
    let config = repo.get("config.json").map_err(|e| e.to_string())?;
    for f in TOKENIZER_FILES {
        let _ = repo.get(f); // optional
    }
    let mut got_weights = false;
    for f in WEIGHT_FILES {
        if let Ok(p) = repo.get(f) {
            if f.ends_with(".index.json") {
                for shard in shard_files(&p).map_err(|e| e.to_string())? {
                    repo.get(&shard).map_err(|e| e.to_string())?;
                }
            }
            got_weights = true;
            break;
        }
    }
    if !got_weights {
        return Err("the repository has no model.safetensors or pytorch_model.bin".into());
    }
    config.parent().map(Path::to_path_buf).ok_or_else(|| "bad cache path".to_string())
}

fn shard_files(index: &Path) -> Result<Vec<String>> {
    let json = fsio::read_json(index)?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::file(index, "no weight_map in index"))?;
    let mut files: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Every tensor in the directory's weights, converted to `dtype`.
pub fn read_weights(dir: &Path, device: &Device, dtype: DType) -> Result<HashMap<String, Tensor>> {
    let file = WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| Error::file(dir, "no weights found (model.safetensors, pytorch_model.bin or an *.index.json)"))?;
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let files: Vec<PathBuf> = if name.ends_with(".index.json") {
        shard_files(&file)?.into_iter().map(|s| dir.join(s)).collect()
    } else {
        vec![file]
    };
    let mut out = HashMap::new();
    for f in files {
        let tensors = if f.extension().is_some_and(|e| e == "safetensors") {
            fsio::load_safetensors(&f, device)?
        } else {
            candle_core::pickle::read_all(&f)
                .map_err(|e| Error::file(&f, format!("not a readable PyTorch checkpoint: {e}")))?
                .into_iter()
                .map(|(k, v)| Ok((k, v.to_device(device)?)))
                .collect::<Result<HashMap<_, _>>>()?
        };
        for (k, v) in tensors {
            out.insert(k, v.to_dtype(dtype)?);
        }
    }
    Ok(out)
}

/// Load a model from a directory or hub id. Weights are kept in `dtype`
/// (f32 for training on CPU).
pub fn load(spec: &str, device: &Device, dtype: DType, seed: u64) -> Result<(Model, PathBuf)> {
    let dir = resolve(spec)?;
    let config_path = dir.join("config.json");
    let raw = fsio::read_json(&config_path)?;
    let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("t5").to_string();
    let model: Model = match model_type.as_str() {
        "t5" | "mt5" => {
            let cfg: T5Config = serde_json::from_value(raw).map_err(|e| Error::file(&config_path, format!("not a T5 config: {e}")))?;
            let mut weights = read_weights(&dir, device, dtype)?;
            // Older checkpoints may store the shared embedding only under the stacks' names.
            if !weights.contains_key("shared.weight") {
                if let Some(t) = weights.remove("encoder.embed_tokens.weight") {
                    weights.insert("shared.weight".into(), t);
                }
            }
            let mut ps = ParamStore::new();
            for (name, _) in T5::param_shapes(&cfg) {
                let t = weights
                    .remove(&name)
                    .ok_or_else(|| Error::file(&dir, format!("checkpoint is missing parameter '{name}'")))?;
                ps.insert(Param::new(&name, t)?);
            }
            Arc::new(T5::load(ps, cfg, seed)?)
        }
        other => return Err(Error::file(&config_path, format!("unsupported model_type '{other}' (supported: t5, mt5)"))),
    };
    Ok((model, dir))
}

/// Save config.json and model.safetensors (HF names, tied weights stored once).
pub fn save(model: &dyn LanguageModel, dir: &Path) -> Result<()> {
    fsio::ensure_dir(dir)?;
    let mut config = model.config_json();
    if let Some(obj) = config.as_object_mut() {
        obj.entry("model_type").or_insert_with(|| model.arch().into());
        obj.entry("architectures").or_insert_with(|| serde_json::json!(["T5ForConditionalGeneration"]));
    }
    let mut tensors = HashMap::new();
    for p in model.params().iter() {
        tensors.insert(p.name().to_string(), p.var().as_tensor().contiguous()?);
    }
    fsio::save_safetensors(&dir.join("model.safetensors"), &tensors)?;
    fsio::write_json(&dir.join("config.json"), &config)
}
