//! Writing on a full disk or into a read-only folder: saving a model or a
//! prompt, the trainer's checkpoints and result files each fail with one
//! error naming the path, and leave the last good checkpoint and every
//! finished result as they were.
//!
//! A full disk is made with a file-size limit (RLIMIT_FSIZE) on the `promot`
//! process: a write past the limit fails with EFBIG, as one past the free space
//! fails with ENOSPC, and it needs neither root nor a mount. A read-only
//! folder is one without write permission; root ignores permissions, so when
//! the tests run as root the `promot` process runs as the unprivileged user
//! `nobody` (65534) instead.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::hostile::{scratch_dir, TINY_MT5};

/// The fixture model, as the scripts name it: copied into each test's folder
/// (where an unprivileged process can read it).
const MODEL: &str = "tiny-mt5";
use common::subprocess::{error_lines, files_under, promot, stderr, stdout};

/// The limit on any one file's size: the fixture mT5's checkpoint (its
/// weights and optimiser state, ~0.5 MB) does not fit; small JSON files do.
const FILE_LIMIT: u64 = 64 * 1024;

/// Train the fixture mT5 to `steps` steps with checkpoints in `ck`, saving a
/// checkpoint every step, and print how many losses its history has.
fn train_script(steps: usize) -> String {
    format!(
        "let m = load_model(\"{MODEL}\");\n\
         let h = m.train([#{{input: \"a b\", target: \"True\"}}, #{{input: \"c d\", target: \"False\"}}],\n\
         \x20   #{{steps: {steps}, batch_size: 2, save_every: 1, checkpoint_dir: \"ck\", quiet: true}});\n\
         print(`trained ${{h.losses.len()}} steps`);\n"
    )
}

/// Everything the first run writes: a checkpoint at step 2, a saved model,
/// a saved prompt, a results table and a JSON file.
fn first_run_script() -> String {
    format!(
        "{}let p = m.soft_prompt(2, \"uniform\");\n\
         p.save(\"results/prompt.safetensors\");\n\
         m.save(\"model\");\n\
         let r = m.evaluate([#{{name: \"t\", metric: \"accuracy\", kind: \"classification\", max_new_tokens: 2, \
         examples: [#{{input: \"a\", target: \"True\"}}]}}], #{{shots: [0], beams: 1, quiet: true}});\n\
         r.save(\"results/table\");\n\
         write_json(\"results/summary.json\", #{{ done: true }});\n",
        train_script(2)
    )
}

/// A value whose JSON is larger than FILE_LIMIT.
const BIG_JSON: &str = "let big = []; for i in 0..20000 { big.push(i); } write_json(\"results/summary.json\", big);";

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}

/// Run `promot run SCRIPT` in `dir` with a limit on the size of any file it writes.
fn run_limited(dir: &Path, script: &str, limit: Option<u64>) -> Output {
    let mut cmd = promot(dir, &["run", script]);
    if let Some(bytes) = limit {
        // SAFETY: between fork and exec only async-signal-safe calls (setrlimit,
        // signal). SIGXFSZ ignored, so a write past the limit fails with EFBIG
        // instead of killing the process; the limit and the ignored signal
        // carry over exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    cmd.output().unwrap()
}

/// Copy every file of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The first run, unlimited: it must succeed.
fn first_run(dir: &Path) {
    copy_dir(Path::new(TINY_MT5), &dir.join(MODEL));
    let script = write_script(dir, "first.rhai", &first_run_script());
    let o = run_limited(dir, &script, None);
    assert!(o.status.success(), "the first run failed:\n{}", stderr(&o));
    assert!(stdout(&o).contains("trained 2 steps"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("ck/latest")).unwrap().trim(),
        "step-000002"
    );
}

/// What must survive: the checkpoint folder's checkpoint files, the model, the results.
fn kept(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = files_under(&dir.join("ck"));
    files.retain(|(p, _)| !p.ends_with("metrics.jsonl") && !p.ends_with("run.json") && !p.ends_with(".promot.lock"));
    files.extend(files_under(&dir.join("model")));
    files.extend(files_under(&dir.join("results")));
    files
}

/// One error, naming `path`, and the process ended with a failure status.
fn assert_one_error_naming(o: &Output, path: &str, what: &str) {
    assert!(!o.status.success(), "{what}: the run succeeded");
    let errors = error_lines(o);
    assert_eq!(errors.len(), 1, "{what}: expected one error, got:\n{}", stderr(o));
    assert!(
        errors[0].contains(path),
        "{what}: the error does not name {path}:\n{}",
        stderr(o)
    );
}

/// No temporary files (`.NAME.tmpPID`) or partial checkpoints left under `dir`.
fn assert_no_leftovers(dir: &Path) {
    for (p, _) in files_under(dir) {
        let name = p.to_string_lossy();
        assert!(
            !name.contains(".tmp") && !name.contains(".partial"),
            "left behind: {name}"
        );
    }
}

#[test]
fn on_a_full_disk_every_writer_fails_naming_its_path_and_keeps_what_was_saved() {
    let dir = scratch_dir("disk-full");
    first_run(&dir);
    let before = kept(&dir);

    // Checkpointing: step 3's checkpoint does not fit.
    let more = write_script(&dir, "more.rhai", &train_script(4));
    let o = run_limited(&dir, &more, Some(FILE_LIMIT));
    assert_one_error_naming(
        &o,
        "ck/.step-000003.partial/state.safetensors",
        "a checkpoint on a full disk",
    );
    assert!(stderr(&o).contains("File too large"), "{}", stderr(&o));

    // Saving a model, a prompt, results.
    let load = format!("let m = load_model(\"{MODEL}\");\n");
    for (name, code, path) in [
        (
            "save_model.rhai",
            format!("{load}m.save(\"model\");"),
            "model/model.safetensors",
        ),
        (
            "save_prompt.rhai",
            format!("{load}let p = m.soft_prompt(600, \"uniform\"); p.save(\"results/prompt.safetensors\");"),
            "results/prompt.safetensors",
        ),
        ("write_json.rhai", BIG_JSON.to_string(), "results/summary.json"),
    ] {
        let script = write_script(&dir, name, &code);
        let o = run_limited(&dir, &script, Some(FILE_LIMIT));
        assert_one_error_naming(&o, path, name);
    }

    assert!(kept(&dir) == before, "a failed write changed a saved file");
    assert_no_leftovers(&dir.join("ck"));
    assert_no_leftovers(&dir.join("model"));
    assert_no_leftovers(&dir.join("results"));

    // The checkpoint kept is good: with room again, the run resumes from it and finishes.
    let o = run_limited(&dir, &more, None);
    assert!(
        o.status.success(),
        "resuming after the full disk failed:\n{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("trained 4 steps"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Make `path` (and everything under it) read-only, or writable again.
fn set_writable(path: &Path, writable: bool) {
    for (p, _) in files_under(path) {
        let mode = if writable { 0o666 } else { 0o444 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let mode = if writable { 0o777 } else { 0o555 };
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            }
        }
    }
}

/// Run as `nobody` when the tests run as root (root ignores permissions),
/// from copies of the binary and the stdlib in `dir`: a checkout under a
/// private home folder (/root) is out of `nobody`'s reach.
fn run_unprivileged(dir: &Path, script: &str) -> Output {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return promot(dir, &["run", script]).output().unwrap();
    }
    let bin = dir.join("bin/promot");
    if !bin.exists() {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_promot"), &bin).unwrap();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib"),
            &dir.join("home/stdlib"),
        );
        set_writable(&dir.join("home"), true);
    }
    let mut cmd = Command::new(&bin);
    cmd.args(["run", script])
        .current_dir(dir)
        .env("PROMOT_HOME", dir.join("home"))
        .env("HF_HUB_OFFLINE", "1")
        .env("PROMOT_CACHE", dir.join("cache"))
        .uid(65534)
        .gid(65534);
    cmd.output().unwrap()
}

#[test]
fn in_a_read_only_folder_every_writer_fails_naming_its_path_and_keeps_what_was_saved() {
    let dir = scratch_dir("read-only");
    first_run(&dir);
    let before = kept(&dir);
    // The scripts and the evaluation cache stay writable; the run's outputs do not.
    set_writable(&dir, true);
    for sub in ["ck", "model", "results"] {
        set_writable(&dir.join(sub), false);
    }
    let load = format!("let m = load_model(\"{MODEL}\");\n");
    for (name, code, path) in [
        ("more.rhai", train_script(4), "ck"),
        ("save_model.rhai", format!("{load}m.save(\"model\");"), "model/"),
        (
            "save_prompt.rhai",
            format!("{load}let p = m.soft_prompt(2, \"uniform\"); p.save(\"results/prompt.safetensors\");"),
            "results/prompt.safetensors",
        ),
        (
            "write_json.rhai",
            "write_json(\"results/summary.json\", #{ again: true });".into(),
            "results/summary.json",
        ),
    ] {
        let script = write_script(&dir, name, &code);
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = run_unprivileged(&dir, &script);
        assert_one_error_naming(&o, path, name);
    }
    for sub in ["ck", "model", "results"] {
        set_writable(&dir.join(sub), true);
    }
    assert!(kept(&dir) == before, "a failed write changed a saved file");
    assert_no_leftovers(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}
