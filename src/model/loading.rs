//! Loading models from HF-style directories, the local HF cache or GGUF files,
//! and saving them back in a form Python transformers loads unchanged.
//!
//! A model directory holds config.json plus weights as model.safetensors,
//! pytorch_model.bin, or a sharded `*.index.json` with its shards; its
//! `model_type` picks the architecture (t5 / mt5, or llama / mistral / qwen2).
//! A `.gguf` file (or a directory holding one and no config.json) is read by
//! `gguf`: config, dequantized weights and tokenizer all come from the file.
//! The name "toy" is the built-in toy model (`home::builtin_model`); the name
//! "smollm2" is SmolLM2-135M-Instruct, found in `$PROMOT_MODELS`, the HF
//! cache, or the models cache `scripts/get-smollm2.sh` fills. This module is
//! the one place that turns a model's name into its files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::gguf::Gguf;
use super::llama::{Llama, LlamaConfig, TokenIds};
use super::{LanguageModel, Model, T5Config, T5};
use crate::error::{Error, Result};
use crate::fsio;
use crate::params::{Param, ParamStore};
use crate::tokenizer::Tokenizer;

/// The hub id of the built-in "smollm2" model.
pub const SMOLLM2_ID: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
/// The command that fetches it into the models cache.
pub const SMOLLM2_FETCH: &str = "scripts/get-smollm2.sh";

/// Files we look for in a hub repository, weights in order of preference.
const WEIGHT_FILES: [&str; 4] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "spiece.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// promot's cache of fetched models (`home::cache_dir`).
pub fn models_cache_dir() -> PathBuf {
    crate::home::cache_dir()
}

fn is_gguf(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// The one .gguf file in a directory without a config.json, if that is what it holds.
fn gguf_in(dir: &Path) -> Option<PathBuf> {
    if dir.join("config.json").exists() {
        return None;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_gguf(p))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Where "smollm2" lives: `$PROMOT_MODELS/smollm2` (a GGUF or an HF directory),
/// the HF cache, then the models cache. Missing: an error naming the fetch command.
pub fn find_smollm2() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(root) = std::env::var_os("PROMOT_MODELS").filter(|r| !r.is_empty()) {
        let root = PathBuf::from(root);
        candidates.extend([root.join("smollm2"), root.join("SmolLM2-135M-Instruct")]);
    }
    for dir in &candidates {
        if dir.join("config.json").is_file() {
            return Ok(dir.clone());
        }
        if let Some(f) = dir.is_dir().then(|| gguf_in(dir)).flatten() {
            return Ok(f);
        }
    }
    if let Some(dir) = from_cache(SMOLLM2_ID) {
        return Ok(dir);
    }
    let cache = models_cache_dir().join("smollm2");
    if let Some(f) = cache.is_dir().then(|| gguf_in(&cache)).flatten() {
        return Ok(f);
    }
    Err(Error::msg(format!(
        "model 'smollm2' ({SMOLLM2_ID}) is not fetched: run {SMOLLM2_FETCH} (looked in $PROMOT_MODELS, the HF cache and {})",
        cache.display()
    )))
}

/// Turn a spec into a local directory or GGUF file: "path/to/dir", a `.gguf`
/// file, a built-in name ("toy", "smollm2"), "org/name" (a hub id) or "org/name/FILE.gguf" (one file of
/// a GGUF repository; "org/name" alone takes its only .gguf). Hub ids are
/// served from the local HF cache (`$HF_HOME/hub`, default
/// ~/.cache/huggingface/hub) and downloaded from `$HF_ENDPOINT` (default
/// huggingface.co, with the token in `HF_TOKEN` or `$HF_HOME/token`) unless
/// `HF_HUB_OFFLINE` is set.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if spec == "toy" && !path.exists() {
        return Ok(crate::home::builtin_model("toy"));
    }
    if spec == "smollm2" && !path.exists() {
        return find_smollm2();
    }
    if path.is_dir() {
        return Ok(gguf_in(path).unwrap_or_else(|| path.to_path_buf()));
    }
    if is_gguf(path) {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        return Err(Error::file(
            path,
            "expected a model directory (with config.json) or a .gguf file, found another file",
        ));
    }
    // "org/name", or "org/name/FILE.gguf" for one file of a GGUF repository.
    let parts = spec.split('/').count();
    let looks_like_id = (parts <= 2 || parts == 3 && spec.to_ascii_lowercase().ends_with(".gguf"))
        && !spec.starts_with('.')
        && !spec.contains('\\')
        && !spec.is_empty();
    if !looks_like_id {
        return Err(Error::file(path, "no such model directory"));
    }
    if let Some(found) = from_cache(spec) {
        return Ok(found);
    }
    let cache = hf_hub::Cache::from_env();
    if hub_offline() {
        return Err(Error::msg(format!(
            "model '{spec}' is not a local directory and not in the local Hugging Face cache ({}), and \
             HF_HUB_OFFLINE is set: nothing is downloaded",
            cache.path().display()
        )));
    }
    download(spec).map_err(|e| {
        Error::msg(format!(
            "model '{spec}' is not a local directory and not in the local Hugging Face cache ({}); downloading failed: {e}",
            cache.path().display()
        ))
    })
}

/// `HF_HUB_OFFLINE` set to a true value (1, true, yes, on), as huggingface_hub reads it.
fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// "org/name" -> ("org/name", None); "org/name/FILE.gguf" -> ("org/name", Some("FILE.gguf")).
fn split_id(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once('/') {
        Some((repo, file)) if repo.contains('/') => (repo, Some(file)),
        _ => (spec, None),
    }
}

/// A cached model: an HF directory (config.json and weights), or a GGUF file.
fn from_cache(spec: &str) -> Option<PathBuf> {
    let (id, file) = split_id(spec);
    let repo = hf_hub::Cache::from_env().model(id.to_string());
    if let Some(file) = file {
        return repo.get(file);
    }
    if let Some(config) = repo.get("config.json") {
        let dir = config.parent()?.to_path_buf();
        return WEIGHT_FILES.iter().any(|f| repo.get(f).is_some()).then_some(dir);
    }
    // A GGUF repository: the one .gguf file of the cached snapshot.
    let hub_repo = hf_hub::Repo::model(id.to_string());
    let root = hf_hub::Cache::from_env().path().join(hub_repo.folder_name());
    let commit = std::fs::read_to_string(root.join("refs").join(hub_repo.revision())).ok()?;
    let snapshot = root.join("snapshots").join(commit.trim());
    snapshot.is_dir().then(|| gguf_in(&snapshot)).flatten()
}

/// A failed Hub request in one line: what the status means for the user.
fn hub_error(id: &str, e: hf_hub::api::sync::ApiError) -> String {
    use hf_hub::api::sync::ApiError;
    let ApiError::RequestError(req) = &e else {
        return e.to_string();
    };
    match req.as_ref() {
        ureq::Error::Status(404, r) => format!("no repository or file '{id}' on the Hub (404 at {})", r.get_url()),
        ureq::Error::Status(code @ (401 | 403), r) => format!(
            "the Hub refused access ({code} at {}): the repository is gated or private (or does not exist); \
             accept its terms on the Hub and put a token in HF_TOKEN (or $HF_HOME/token)",
            r.get_url()
        ),
        ureq::Error::Status(code, r) => format!("the Hub answered {code} at {}", r.get_url()),
        ureq::Error::Transport(t) => format!("could not reach the Hub: {t}"),
    }
}

fn is_not_found(e: &hf_hub::api::sync::ApiError) -> bool {
    matches!(e, hf_hub::api::sync::ApiError::RequestError(r) if matches!(r.as_ref(), ureq::Error::Status(404, _)))
}

fn download(spec: &str) -> std::result::Result<PathBuf, String> {
    let (id, file) = split_id(spec);
    // hf-hub reads a token only from $HF_HOME/token; HF_TOKEN is the usual way to pass one.
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty());
    let mut builder = hf_hub::api::sync::ApiBuilder::from_env();
    if token.is_some() {
        builder = builder.with_token(token);
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.model(id.to_string());
    if let Some(file) = file {
        return repo.get(file).map_err(|e| hub_error(spec, e));
    }
    let config = match repo.get("config.json") {
        Ok(config) => config,
        Err(e) if is_not_found(&e) => return download_gguf(&repo, id),
        Err(e) => return Err(hub_error(id, e)),
    };
    for f in TOKENIZER_FILES {
        // Optional: a repository may lack any of them, but a failed transfer is an error.
        match repo.get(f) {
            Err(e) if !is_not_found(&e) => return Err(hub_error(id, e)),
            _ => {}
        }
    }
    let mut got_weights = false;
    for f in WEIGHT_FILES {
        match repo.get(f) {
            Ok(p) => {
                if f.ends_with(".index.json") {
                    for shard in shard_files(&p).map_err(|e| e.to_string())? {
                        repo.get(&shard).map_err(|e| hub_error(id, e))?;
                    }
                }
                got_weights = true;
                break;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(hub_error(id, e)),
        }
    }
    if !got_weights {
        return Err("the repository has no model.safetensors or pytorch_model.bin".into());
    }
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "bad cache path".to_string())
}

/// A repository without config.json: its one GGUF file.
fn download_gguf(repo: &hf_hub::api::sync::ApiRepo, id: &str) -> std::result::Result<PathBuf, String> {
    let info = repo.info().map_err(|e| hub_error(id, e))?;
    let ggufs: Vec<&str> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    match ggufs.as_slice() {
        [] => Err("the repository has no config.json and no .gguf file".into()),
        [one] => repo.get(one).map_err(|e| hub_error(id, e)),
        many => Err(format!(
            "the repository holds {} GGUF files ({}): name one, as in load_model(\"{id}/{}\")",
            many.len(),
            many.join(", "),
            many[0]
        )),
    }
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
        .ok_or_else(|| {
            Error::file(
                dir,
                "no weights found (model.safetensors, pytorch_model.bin or an *.index.json)",
            )
        })?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
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

/// Load a model from a directory, GGUF file, "smollm2" or hub id. Weights
/// are kept in `dtype` (f32 for training on CPU). Returns the model and where
/// it was found (the directory, or the GGUF file): pass that to
/// [`load_tokenizer`].
pub fn load(spec: &str, device: &Device, dtype: DType, seed: u64) -> Result<(Model, PathBuf)> {
    let target = resolve(spec)?;
    if is_gguf(&target) {
        let model = load_gguf(&target, device, dtype, seed)?;
        return Ok((Arc::new(model), target));
    }
    let dir = target;
    let config_path = dir.join("config.json");
    let raw = fsio::read_json(&config_path)?;
    let model: Model = match model_family(&raw).as_str() {
        "t5" => {
            let cfg: T5Config =
                serde_json::from_value(raw).map_err(|e| Error::file(&config_path, format!("not a T5 config: {e}")))?;
            let mut weights = read_weights(&dir, device, dtype)?;
            // Older checkpoints may store the shared embedding only under the stacks' names.
            if !weights.contains_key("shared.weight") {
                if let Some(t) = weights.remove("encoder.embed_tokens.weight") {
                    weights.insert("shared.weight".into(), t);
                }
            }
            let ps = take_params(&mut weights, T5::param_shapes(&cfg), &dir)?;
            Arc::new(T5::load(ps, cfg, seed)?)
        }
        "llama" => {
            let cfg: LlamaConfig = serde_json::from_value(raw)
                .map_err(|e| Error::file(&config_path, format!("not a Llama/Mistral/Qwen2 config: {e}")))?;
            let mut weights = read_weights(&dir, device, dtype)?;
            let ps = take_params(&mut weights, Llama::param_shapes(&cfg), &dir)?;
            let mut m = Llama::load(ps, cfg, seed)?;
            m.set_eos(generation_eos(&dir)?);
            Arc::new(m)
        }
        other => {
            return Err(Error::file(
                &config_path,
                format!("unsupported model_type '{other}' (supported: t5, mt5, llama, mistral, qwen2)"),
            ))
        }
    };
    Ok((model, dir))
}

/// "t5" or "llama" (the family of llama / mistral / qwen2), from `model_type`
/// or, when that is absent, from `architectures`; anything else as named.
fn model_family(raw: &serde_json::Value) -> String {
    let arch = raw
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .unwrap_or("");
    let model_type = raw
        .get("model_type")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            match arch {
                "LlamaForCausalLM" => "llama",
                "MistralForCausalLM" => "mistral",
                "Qwen2ForCausalLM" => "qwen2",
                _ => "t5",
            }
            .to_string()
        });
    match model_type.as_str() {
        "t5" | "mt5" => "t5".into(),
        "llama" | "mistral" | "qwen2" => "llama".into(),
        other => other.into(),
    }
}

/// The named parameters out of a checkpoint's tensors, each required.
fn take_params(
    weights: &mut HashMap<String, Tensor>,
    shapes: Vec<(String, Vec<usize>)>,
    dir: &Path,
) -> Result<ParamStore> {
    let mut ps = ParamStore::new();
    for (name, _) in shapes {
        let t = weights
            .remove(&name)
            .ok_or_else(|| Error::file(dir, format!("checkpoint is missing parameter '{name}'")))?;
        ps.insert(Param::new(&name, t)?);
    }
    Ok(ps)
}

/// `eos_token_id` of generation_config.json (what transformers' generate stops on), if any.
fn generation_eos(dir: &Path) -> Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let raw = fsio::read_json(&path)?;
    Ok(raw
        .get("eos_token_id")
        .and_then(|v| serde_json::from_value::<TokenIds>(v.clone()).ok())
        .map(|t| t.ids())
        .unwrap_or_default())
}

/// A Llama-family model from a GGUF file.
pub fn load_gguf(path: &Path, device: &Device, dtype: DType, seed: u64) -> Result<Llama> {
    let mut g = Gguf::open(path)?;
    let cfg = g.config()?;
    let mut weights = g.weights(&cfg, device, dtype)?;
    let ps = take_params(&mut weights, Llama::param_shapes(&cfg), path)?;
    Llama::load(ps, cfg, seed)
}

/// The tokenizer for a model directory or GGUF file: a tokenizer.json there
/// (or a spiece.model), else the GGUF's own metadata. Its pad and eos ids are
/// the model's, which for decoder-only vocabularies (several end-of-text
/// tokens) a lookup by name would not find.
pub fn load_tokenizer(path: &Path, model: &dyn LanguageModel) -> Result<Tokenizer> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let gguf = if is_gguf(path) {
        Some(path.to_path_buf())
    } else {
        gguf_in(&dir)
    };
    let tok = match gguf {
        Some(f) if !dir.join("tokenizer.json").is_file() => {
            Tokenizer::from_tokenizers(super::gguf::tokenizer(&Gguf::open(&f)?)?)
        }
        _ => Tokenizer::from_dir(&dir)?,
    };
    Ok(if model.arch() == "t5" {
        tok
    } else {
        tok.with_special_ids(model.pad_id(), Some(model.eos_id()))
    })
}

/// Save config.json and model.safetensors (HF names, tied weights stored once).
pub fn save(model: &dyn LanguageModel, dir: &Path) -> Result<()> {
    fsio::ensure_dir(dir)?;
    let mut config = model.config_json();
    if let Some(obj) = config.as_object_mut() {
        obj.entry("model_type").or_insert_with(|| model.arch().into());
        if model.arch() == "t5" || model.arch() == "mt5" {
            obj.entry("architectures")
                .or_insert_with(|| serde_json::json!(["T5ForConditionalGeneration"]));
        }
    }
    let mut tensors = HashMap::new();
    for p in model.params().iter() {
        tensors.insert(p.name().to_string(), p.var().as_tensor().contiguous()?);
    }
    fsio::save_safetensors(&dir.join("model.safetensors"), &tensors)?;
    fsio::write_json(&dir.join("config.json"), &config)
}
