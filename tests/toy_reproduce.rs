//! The quickstart end to end: the paper's experiment in miniature at the quick
//! size, with its fixed seed. Asserts only the qualitative claims that held in
//! the full run (docs/results-toy.md); claims that did not hold are reported
//! there, not asserted here.

use std::process::Command;

mod common;

fn cell(summary: &serde_json::Value, target: &str, method: &str, task: &str, shots: u64) -> f64 {
    common::summary_cell(summary, target, method, task, shots)["value"]
        .as_f64()
        .unwrap()
}

#[test]
fn quick_reproduction_runs_and_shows_format_specialization() {
    let work = std::env::temp_dir().join(format!("promot-quick-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/reproduce_toy.rhai");
    let out = Command::new(env!("CARGO_BIN_EXE_promot"))
        .current_dir(&work)
        .env("PROMOT_CACHE", work.join("cache"))
        .args(["run", script, "quick"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for header in [
        "Fine-tuned on toy rte",
        "Fine-tuned on toy en_fr",
        "ProMoT+1-shot",
        "random prompt",
    ] {
        assert!(stdout.contains(header), "output lacks {header}:\n{stdout}");
    }
    let dir = work.join("runs/toy-quick");
    for f in [
        "fig2.svg",
        "fig2.png",
        "fig3.svg",
        "fig3.png",
        "table-rte.md",
        "table-en_fr.md",
        "summary.json",
        "figures.json",
    ] {
        assert!(dir.join(f).exists(), "missing {f}");
    }
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("figures.json")).unwrap()).unwrap();
    let share: Vec<f64> = figures["share"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Fig. 2: standard fine-tuning on RTE pushes True/False answers into QA prompts.
    assert!(
        share.last().unwrap() > share.first().unwrap(),
        "True/False share on QA did not rise: {share:?}"
    );

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    // Prompt tuning leaves the model untouched, so in-context scores equal the pretrained ones.
    for (task, k) in [("triviaqa", 1), ("en_fr", 1), ("xsum", 4)] {
        assert_eq!(
            cell(&summary, "rte", "prompt tuning", task, k),
            cell(&summary, "rte", "pretrained", task, k),
            "{task}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
