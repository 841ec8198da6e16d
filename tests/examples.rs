//! The guided tour runs: every examples/*.rhai, in order, through the built
//! binary, must succeed and end by saying what the reader saw. Where an
//! example's output is deterministic, `examples/NAME.out` holds it and the
//! output must equal it exactly.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_example_runs_in_order() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the tour lost examples");
    for file in files {
        let out = Command::new(env!("CARGO_BIN_EXE_promot"))
            .arg("run")
            .arg(&file)
            .current_dir(&root)
            .env("PROMOT_CACHE", std::env::temp_dir().join("promot-examples-cache"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{} failed:\n{stderr}\n{stdout}", file.display());
        assert!(
            stdout.lines().last().is_some_and(|l| l.starts_with("You just saw:")),
            "{} should end by saying what the reader saw; it printed:\n{stdout}",
            file.display()
        );
        let expected = file.with_extension("out");
        if expected.exists() {
            let want = std::fs::read_to_string(&expected).unwrap();
            assert_eq!(
                stdout,
                want,
                "{} printed something else than {}",
                file.display(),
                expected.display()
            );
        }
    }
}

/// Scripts that have their own end-to-end test, which runs them at their quick size.
const TESTED_ELSEWHERE: [(&str, &str); 2] = [
    ("reproduce_toy.rhai", "tests/toy_reproduce.rs"),
    ("reproduce_real.rhai", "tests/real_reproduce.rs"),
];

#[test]
fn every_script_runs_at_its_quick_size() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("promot-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if let Some((_, test)) = TESTED_ELSEWHERE.iter().find(|(n, _)| *n == name) {
            assert!(root.join(test).exists(), "{name} should be run by {test}");
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_promot"))
            .args(["run", &file.display().to_string(), "quick"])
            .current_dir(&work)
            .env("PROMOT_CACHE", work.join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} quick failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
