//! Atomic file writes: a crash, Ctrl-C or a full disk while saving never
//! leaves a half-written file behind; the old file stays until the new one is
//! complete on disk.
//!
//! Every writer goes the same way: write a temporary file beside the target
//! (`.NAME.tmpPID`), fsync it, rename it over the target, fsync the folder. A
//! write that fails (no space, a file-size limit, a read-only folder) removes
//! its temporary file and returns one error naming the path it could not
//! write; the target keeps its previous contents.

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

/// The folder `path` is in ("." for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Write the temporary file with `fill`, make it durable and move it into
/// place; on any failure remove it and name `path` (what the caller asked
/// to write) in the error.
fn replace_with(path: &Path, fill: impl FnOnce(&Path) -> std::result::Result<(), String>) -> Result<()> {
    ensure_dir(parent_of(path))?;
    let tmp = temp_path(path);
    let written = fill(&tmp).and_then(|()| {
        // Data on disk before the rename makes it visible (a crash must not leave an empty file).
        // (Opened for writing: some systems refuse to flush a read-only handle.)
        std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string())) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, format!("cannot write: {e}")));
    }
    // The rename itself durable (best effort: some file systems refuse to sync a folder).
    if let Ok(dir) = std::fs::File::open(parent_of(path)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create directory: {e}")))
}

/// Write bytes to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| e.to_string())?;
        f.write_all(bytes).map_err(|e| e.to_string())
    })
}

/// Save named tensors as safetensors atomically.
pub fn save_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    replace_with(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(|e| e.to_string())
    })
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
