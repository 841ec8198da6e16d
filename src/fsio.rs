//! Atomic file writes: a crash or Ctrl-C while saving never leaves a
//! half-written checkpoint behind; the old file stays until the new one is
//! complete on disk.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::error::{Error, Result};

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| Error::file(path, e))
}

pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create directory: {e}")))
}

/// Write bytes to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dir(parent)?;
    }
    let tmp = temp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::file(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::file(&tmp, e))?;
    f.sync_all().map_err(|e| Error::file(&tmp, e))?;
    commit(&tmp, path)
}

/// Save named tensors as safetensors atomically.
pub fn save_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dir(parent)?;
    }
    let tmp = temp_path(path);
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| Error::file(&tmp, e))?;
    commit(&tmp, path)
}

/// Load every tensor of a safetensors file onto `device`.
pub fn load_safetensors(path: &Path, device: &candle_core::Device) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(Error::file(path, "no such file"));
    }
    candle_core::safetensors::load(path, device)
        .map_err(|e| Error::file(path, format!("not a readable safetensors file: {e}")))
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes())
}

/// JSON files read with `file:line` errors (one reader for the whole crate).
pub use crate::data::readers::read_json;
