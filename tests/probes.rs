//! The probe scripts under docs/ run on today's code: each at a tiny size (a
//! few steps, a few test episodes), so a change that breaks one shows here
//! rather than when someone reruns a probe. Probes written for code that is
//! gone live in dated notes under docs/lab/ instead, and are not run.
//!
//! The toy probes run in the default test run; the SmolLM2 probes (docs/real/)
//! need the fetched model and are ignored unless asked for.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh working directory for one probe (they write under target/ or OUT).
fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promot-probe-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `promot run SCRIPT ARGS` in `dir`; its stdout, after checking it succeeded.
fn run(script: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_promot"))
        .current_dir(dir)
        .env("PROMOT_CACHE", dir.join("cache"))
        .arg("run")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every .rhai file in `dir`, by name.
fn scripts_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    names.sort();
    names
}

/// (script, tiny arguments, a line its output must have). `OUT` becomes a
/// folder in the probe's working directory.
const TOY_PROBES: &[(&str, &[&str], &str)] = &[
    (
        "finetune_settings.rhai",
        &["toy", "rte", "0.1", "0", "2"],
        "after 2 (dropout 0.1",
    ),
    ("fresh_rule_scratch.rhai", &["2", "OUT"], "took "),
    ("fresh_rule_train.rhai", &["toy", "2", "1e-3", "OUT"], "took "),
    ("heads8_lr1e-3.rhai", &["2", "2"], "pretraining took "),
    ("k4_only.rhai", &["2", "2"], "pretraining took "),
    (
        "rte_prompt.rhai",
        &["2", "0.2", "OUT"],
        "prompt tuning, 2 steps at prompt lr 0.2: rte test ",
    ),
    ("stage4.rhai", &["2", "2"], "stage 4 took "),
];

#[test]
fn every_toy_probe_runs_at_a_tiny_size() {
    let dir = root().join("docs/toy-probes");
    let listed: Vec<String> = TOY_PROBES.iter().map(|(s, ..)| s.to_string()).collect();
    assert_eq!(
        scripts_in(&dir),
        listed,
        "a probe in docs/toy-probes has no tiny-size run here (or one here is gone)"
    );
    for (script, args, want) in TOY_PROBES {
        let work = work_dir(script.trim_end_matches(".rhai"));
        let out_dir = work.join("out");
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "OUT" { out_dir.to_str().unwrap() } else { a })
            .collect();
        let stdout = run(&dir.join(script), &args, &work);
        assert!(stdout.contains(want), "{script}: no '{want}' in\n{stdout}");
        let _ = std::fs::remove_dir_all(&work);
    }
}

#[test]
#[ignore = "needs SmolLM2: run bash scripts/get-smollm2.sh"]
fn every_smollm2_probe_runs_at_a_tiny_size() {
    promot::model::loading::resolve("smollm2").unwrap_or_else(|e| panic!("{e}"));
    let dir = root().join("docs/real");
    assert_eq!(
        scripts_in(&dir),
        [
            "decode_probe.rhai",
            "ft_share_probe.rhai",
            "memory_probe.rhai",
            "prompt_lr_probe.rhai"
        ],
        "a probe in docs/real has no run here (or one here is gone)"
    );
    let work = work_dir("real");
    let saved = work.join("decode");
    let stdout = run(&dir.join("decode_probe.rhai"), &[saved.to_str().unwrap()], &work);
    assert!(
        stdout.contains("decoding: ") && work.join("decode.json").exists(),
        "{stdout}"
    );
    let stdout = run(&dir.join("ft_share_probe.rhai"), &[], &work);
    assert!(stdout.contains("step 20: TriviaQA True/False share"), "{stdout}");
    let stdout = run(
        &dir.join("prompt_lr_probe.rhai"),
        &[
            "0.03",
            "scaled",
            "0.1",
            "adafactor",
            "2",
            "1",
            "4",
            "text:True or False?",
        ],
        &work,
    );
    assert!(
        stdout.contains("step 0: held-out accuracy")
            && stdout.contains("step 2: held-out accuracy")
            && stdout.contains("losses: "),
        "{stdout}"
    );
    for args in [
        &["eval", "tiny"][..],
        &["train", "tiny"],
        &["train", "wmt14_en_fr", "tiny"],
        &["repeat", "tiny"],
        &["figures", "all", "tiny"],
    ] {
        let stdout = run(&dir.join("memory_probe.rhai"), args, &work);
        assert!(stdout.contains("done in "), "memory_probe {args:?}: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&work);
}
