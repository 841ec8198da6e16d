//! Two runs, one folder: while a run trains with a checkpoint folder, a second
//! run on that folder (training, or clearing its checkpoints) stops at once
//! with an error naming the folder and the process using it, and touches
//! nothing. The lock is the operating system's, so a run killed with SIGKILL
//! leaves none behind: a third run proceeds.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

mod common;
use common::hostile::{scratch_dir, TINY_MT5};
use common::subprocess::{error_lines, files_under, promot, stderr, stdout};

/// Train the fixture mT5 for `steps` steps with checkpoints in `ck` (saved
/// only at the end, so the folder holds the same files while it trains).
fn train(dir: &Path, steps: usize) -> std::process::Command {
    let code = format!(
        "let m = load_model(\"{TINY_MT5}\");\n\
         m.train([#{{input: \"a b\", target: \"True\"}}], #{{steps: {steps}, batch_size: 1, checkpoint_dir: \"ck\", quiet: true}});\n\
         print(\"trained\");"
    )
    ;
    promot(dir, &["-e", &code])
}

/// The first run, killed when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until the first run is training: its metrics log has a line past
/// step 2 (the lines of steps 1-2 are the earlier run's).
fn wait_until_training(dir: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let log = dir.join("ck/metrics.jsonl");
    while std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0) < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended before training"
        );
        assert!(
            Instant::now() < deadline,
            "the first run did not start training within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The checkpoint files under ck (not the log the running run appends to).
fn checkpoints(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = files_under(&dir.join("ck"));
    files.retain(|(p, _)| {
        p.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("step-"))
            || p.ends_with("latest")
    });
    files
}

#[test]
fn a_second_run_on_a_folder_in_use_fails_clearly_and_a_killed_run_leaves_no_lock() {
    let dir = scratch_dir("two-runs");
    // A finished run leaves a checkpoint at step 2; the first run resumes from it.
    let o = train(&dir, 2).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = checkpoints(&dir);
    assert!(!saved.is_empty(), "no checkpoint saved");

    let mut first = Running(train(&dir, 1_000_000).spawn().unwrap());
    wait_until_training(&dir, &mut first.0);
    let run_json = std::fs::read(dir.join("ck/run.json")).unwrap();

    let o = train(&dir, 4).output().unwrap();
    assert!(!o.status.success(), "the second run trained on a folder in use");
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{}", stderr(&o));
    assert!(
        errors[0].contains("ck: in use by another run") && errors[0].contains(&format!("process {}", first.0.id())),
        "the error should name the folder and the first run's process:\n{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(dir.join("ck/run.json")).unwrap(),
        run_json,
        "the second run rewrote the first's run.json"
    );

    // Clearing its checkpoints is refused too, and removes nothing.
    let o = promot(&dir, &["-e", "clear_checkpoints(\"ck\")"]).output().unwrap();
    assert!(
        !o.status.success(),
        "clear_checkpoints ran on the folder of a run in progress"
    );
    assert!(stderr(&o).contains("in use by another run"), "{}", stderr(&o));
    assert!(
        checkpoints(&dir) == saved,
        "clear_checkpoints removed checkpoints of a run in progress"
    );

    drop(first); // SIGKILL: no chance to clean up
    let o = train(&dir, 4).output().unwrap();
    assert!(
        o.status.success(),
        "a run after the first was killed failed:\n{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("trained"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("ck/latest")).unwrap().trim(),
        "step-000004"
    );
    let o = promot(&dir, &["-e", "clear_checkpoints(\"ck\")"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(checkpoints(&dir).is_empty(), "clear_checkpoints left checkpoints");
    let _ = std::fs::remove_dir_all(&dir);
}
