//! promot's home: the folder holding its own files (the Rhai standard
//! library `stdlib/`, the built-in models under `models/`, the fetched models
//! and BLAS library under `models/cache/`, the evaluation data `data/`).
//! `$PROMOT_HOME` when set, else the source tree promot was built from. Every
//! path to promot's own files is resolved here.

use std::path::{Path, PathBuf};

/// promot's home folder.
pub fn dir() -> PathBuf {
    match std::env::var_os("PROMOT_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    }
}

/// The Rhai standard library (`import "methods"`).
pub fn stdlib_dir() -> PathBuf {
    dir().join("stdlib")
}

/// A built-in model by name (`load_model("toy")`).
pub fn builtin_model(name: &str) -> PathBuf {
    dir().join("models").join(name)
}

/// promot's cache of fetched files: models (scripts/get-smollm2.sh) and the
/// BLAS library (scripts/get-blas.sh).
pub fn cache_dir() -> PathBuf {
    dir().join("models").join("cache")
}

/// A path as a script names it: itself when absolute or present here (the
/// current directory), else relative to promot's home (`data/...`).
pub fn resolve(rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() || p.exists() {
        return p.to_path_buf();
    }
    dir().join(rel)
}
