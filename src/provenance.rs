//! What made a file: promot's version and the git commit it was built from
//! (embedded by `build.rs`; "unknown" when built without git), and SHA-256
//! content hashes of the files a result depends on (model weights, data).
//!
//! File hashes are cached per process by (path, size, modification time), so
//! a script that evaluates the same model many times reads its weights once.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// promot's version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit promot was built from, or "unknown".
pub const COMMIT: &str = env!("PROMOT_GIT_COMMIT");

/// The build that wrote a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    pub commit: String,
}

impl Build {
    pub fn current() -> Self {
        Build {
            version: VERSION.to_string(),
            commit: COMMIT.to_string(),
        }
    }
}

/// The hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

type Stamp = (u64, Option<SystemTime>);
static FILE_HASHES: Mutex<Option<HashMap<PathBuf, (Stamp, String)>>> = Mutex::new(None);

/// The hex SHA-256 of a file's content, read in chunks (weights can be GBs).
pub fn sha256_file(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, e.to_string()))?;
    let stamp: Stamp = (meta.len(), meta.modified().ok());
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Some((s, hash)) = FILE_HASHES
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).cloned()))
    {
        if s == stamp {
            return Ok(hash);
        }
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::file(path, e.to_string()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::file(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hash = format!("{:x}", hasher.finalize());
    if let Ok(mut m) = FILE_HASHES.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, (stamp, hash.clone()));
    }
    Ok(hash)
}

/// Is this file part of a model's definition: weights (safetensors, PyTorch,
/// GGUF, their shard index) or its config and tokenizer?
fn is_model_file(name: &str) -> bool {
    let weights = [
        ".safetensors",
        ".bin",
        ".pth",
        ".pt",
        ".gguf",
        ".safetensors.index.json",
        ".bin.index.json",
    ];
    let defining = [
        "config.json",
        "tokenizer.json",
        "tokenizer.model",
        "spiece.model",
        "generation_config.json",
    ];
    weights.iter().any(|ext| name.ends_with(ext)) || defining.contains(&name)
}

/// SHA-256 of each file that defines the model at `location` (a model
/// directory, or a single weights file such as a `.gguf`), by file name.
pub fn model_file_hashes(location: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if location.is_file() {
        let name = location
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        out.insert(name, sha256_file(location)?);
        return Ok(out);
    }
    let entries = std::fs::read_dir(location).map_err(|e| Error::file(location, e.to_string()))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::file(location, e.to_string()))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_file() && is_model_file(&name) {
            out.insert(name, sha256_file(&path)?);
        }
    }
    Ok(out)
}

/// Seconds since the Unix epoch, for "when" fields.
pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
