//! Kill anywhere: a reproduction in miniature (tests/fixtures/reproduce_tiny.rhai:
//! four methods of stdlib/methods.rhai on the fixture mT5, checkpointed every
//! step) is SIGKILLed at points drawn from a fixed seed and rerun with the
//! same command each time, as a user would after a crash. The final table and
//! JSON (scores, generated samples and every step's loss) must equal those of
//! an uninterrupted run, and a stage that had finished must never be trained
//! again: its last checkpoint folder and its metrics.jsonl stay as they were.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::hostile::{scratch_dir, Lcg};
use common::subprocess::{fixture, promot, stderr};

const SEED: u64 = 20261207;
const KILLS: usize = 10;
/// At least this many must land while the run is going (not after it finished).
const MIN_LANDED: usize = 3;
/// Steps per stage, as the script sets them: the prompt stage, every other.
const PROMPT_STEPS: usize = 4;
const MODEL_STEPS: usize = 2;

fn reproduce(cwd: &Path) -> std::process::Command {
    let script = fixture("reproduce_tiny.rhai");
    let model = fixture("tiny-mt5");
    promot(cwd, &["run", script.to_str().unwrap(), "out", model.to_str().unwrap()])
}

/// A stage that finished: its folder, with what must never change again
/// (the inode of its last step folder, its metrics log).
#[derive(Debug, PartialEq)]
struct Finished {
    step_dir_inode: u64,
    metrics: Vec<u8>,
}

/// Every stage folder under out/checkpoints whose `latest` names its last step.
fn finished_stages(out: &Path) -> BTreeMap<PathBuf, Finished> {
    let mut found = BTreeMap::new();
    let Ok(methods) = std::fs::read_dir(out.join("checkpoints")) else {
        return found;
    };
    for method in methods.flatten() {
        let Ok(stages) = std::fs::read_dir(method.path()) else {
            continue;
        };
        for stage in stages.flatten() {
            let dir = stage.path();
            let steps = if dir.ends_with("prompt") {
                PROMPT_STEPS
            } else {
                MODEL_STEPS
            };
            let last = format!("step-{steps:06}");
            let Ok(latest) = std::fs::read_to_string(dir.join("latest")) else {
                continue;
            };
            if latest.trim() != last {
                continue;
            }
            let inode = std::fs::metadata(dir.join(&last))
                .unwrap_or_else(|e| panic!("{}: latest names {last}, which cannot be read: {e}", dir.display()))
                .ino();
            let metrics = std::fs::read(dir.join("metrics.jsonl")).unwrap_or_default();
            found.insert(
                dir,
                Finished {
                    step_dir_inode: inode,
                    metrics,
                },
            );
        }
    }
    found
}

/// Stages finished before must be exactly as they were (never trained again).
fn check_not_retrained(before: &BTreeMap<PathBuf, Finished>, out: &Path, run: &str) {
    let now = finished_stages(out);
    for (dir, was) in before {
        assert_eq!(
            now.get(dir),
            Some(was),
            "{run}: {} had finished and was trained again (its last checkpoint or metrics.jsonl changed)",
            dir.display()
        );
    }
}

#[test]
fn a_reproduction_killed_anywhere_and_rerun_ends_as_an_uninterrupted_run() {
    let scratch = scratch_dir("kill-anywhere");
    let clean = scratch.join("clean");
    let killed = scratch.join("killed");
    std::fs::create_dir_all(&clean).unwrap();
    std::fs::create_dir_all(&killed).unwrap();

    let started = Instant::now();
    let o = reproduce(&clean).output().unwrap();
    let full = started.elapsed();
    assert!(o.status.success(), "the uninterrupted run failed:\n{}", stderr(&o));

    let mut rng = Lcg(SEED);
    let mut kills = 0;
    let mut finished = BTreeMap::new();
    let mut points = Vec::new();
    for i in 0..KILLS {
        // A point in the first 45% of an uninterrupted run's time (a rerun
        // resumes, so later points would often find it done).
        let at = full.mul_f64(0.02 + 0.43 * rng.next(1000) as f64 / 1000.0);
        points.push(at);
        let mut child = reproduce(&killed)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + at;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
        }
        let o = child.wait_with_output().unwrap();
        if o.status.signal() == Some(libc::SIGKILL) {
            kills += 1;
        } else {
            assert!(
                o.status.success(),
                "run {i} failed on its own ({}):\n{}",
                o.status,
                stderr(&o)
            );
        }
        check_not_retrained(&finished, &killed.join("out"), &format!("run {i} (killed at {at:?})"));
        finished = finished_stages(&killed.join("out"));
    }
    let o = reproduce(&killed).output().unwrap();
    assert!(o.status.success(), "the final rerun failed:\n{}", stderr(&o));
    check_not_retrained(&finished, &killed.join("out"), "the final rerun");
    assert!(
        kills >= MIN_LANDED,
        "only {kills} of {KILLS} kills landed while the run was going (points {points:?} of a {full:?} run)"
    );
    assert_eq!(
        finished_stages(&killed.join("out")).len(),
        5,
        "every stage (prompt tuning, fine-tuning, ProMoT's two, joint) ends finished"
    );

    for file in ["table.md", "summary.json"] {
        let a = std::fs::read_to_string(clean.join("out").join(file)).unwrap();
        let b = std::fs::read_to_string(killed.join("out").join(file)).unwrap();
        assert_eq!(
            a, b,
            "{file} differs from the uninterrupted run's after {kills} kills at {points:?}"
        );
    }
    eprintln!("kill_anywhere: {kills} kills in a {full:?} run, at {points:?}; results equal");
    let _ = std::fs::remove_dir_all(&scratch);
}
