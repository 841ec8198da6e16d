//! Embeds the git commit promot is built from (`PROMOT_GIT_COMMIT`, read by
//! `provenance::COMMIT`), so saved results can name it. Without git, or
//! outside a checkout, the commit is "unknown": the build never fails on it.
//!
//! Built with `--features cuda`, it also compiles the fused ops' CUDA kernels
//! (src/kernels/cuda/*.cu) to PTX with nvcc (found as candle's kernels find
//! it: CUDA_ROOT, CUDA_HOME or PATH; CUDA_COMPUTE_CAP picks the GPU
//! generation), as OUT_DIR/ptx.rs, read by src/kernels/cuda.rs.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

#[cfg(feature = "cuda")]
fn cuda_kernels() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ptx = cudaforge::KernelBuilder::new()
        .source_dir("src/kernels/cuda")
        .arg("-O3")
        .arg("-std=c++17")
        .build_ptx()
        .unwrap_or_else(|e| panic!("compiling src/kernels/cuda to PTX: {e}"));
    ptx.write(out.join("ptx.rs"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", out.join("ptx.rs").display()));
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    cuda_kernels();
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PROMOT_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the branch's ref
    // (a commit), loose or packed. A worktree keeps HEAD in its own git dir and
    // refs in the common one.
    // (Only files that exist: cargo reruns a script on every build for a missing one.)
    let mut watch = Vec::new();
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        watch.push(format!("{git_dir}/HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        if let Some(head_ref) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|r| r.starts_with("refs/")) {
            watch.push(format!("{common}/{head_ref}"));
        }
        watch.push(format!("{common}/packed-refs"));
    }
    for path in watch.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}
