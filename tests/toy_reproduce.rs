//! The quickstart end to end: the paper's experiment in miniature at the quick
//! size, with its fixed seed. Asserts only what the full run showed
//! (docs/results-toy.md) and the quick size repeats on both matmul backends;
//! the rest is reported there, not asserted here.

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
        "ProMoT",
        "joint",
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
    for (target, task, k) in [
        ("rte", "triviaqa", 1),
        ("rte", "en_fr", 1),
        ("rte", "xsum", 4),
        ("en_fr", "xsum", 1),
        ("en_fr", "cb", 4),
    ] {
        assert_eq!(
            cell(&summary, target, "prompt tuning", task, k),
            cell(&summary, target, "pretrained", task, k),
            "{target}: {task}"
        );
    }
    // Fine-tuning costs the other tasks in context on both targets: the mean
    // in-context score of the other tasks falls below the pretrained model's
    // (docs/results-toy.md, full run: 83.3 -> 28.5 on RTE, 80.3 -> 34.0 on
    // En-Fr; quick run: 81.3 -> 17.7 / 37.8 and 78.3 -> 31.6 / 28.9 with
    // OpenBLAS / candle's matmul). It fits RTE (full 54 -> 70, quick 50 -> 56.2
    // / 62.5) but lowers En-Fr, which the pretrained model already translates
    // (full 95.1 -> 48.6, quick 100 -> 55.5 / 62.5). On En-Fr ProMoT keeps more
    // in context than fine-tuning (full 56.7 against 34.0, quick 45.8 / 41.0
    // against 31.6 / 28.9); on RTE it did not in the full run (23.5 against
    // 28.5), so that is not asserted.
    let target_score = |target: &str, method: &str| cell(&summary, target, method, &format!("{target} (target)"), 0);
    let in_context_mean = |target: &str, method: &str| {
        let own = format!("{target} (target)");
        let cells: Vec<f64> = common::summary_cells(&summary, target, method)
            .iter()
            .filter(|c| c["task"].as_str() != Some(own.as_str()))
            .map(|c| c["value"].as_f64().unwrap())
            .collect();
        cells.iter().sum::<f64>() / cells.len() as f64
    };
    for target in ["rte", "en_fr"] {
        assert!(
            in_context_mean(target, "fine-tuning") + 5.0 < in_context_mean(target, "pretrained"),
            "{target}: fine-tuning kept the in-context mean: {} against {} pretrained",
            in_context_mean(target, "fine-tuning"),
            in_context_mean(target, "pretrained")
        );
    }
    assert!(
        target_score("rte", "fine-tuning") > target_score("rte", "pretrained") + 5.0,
        "fine-tuning did not fit rte"
    );
    assert!(
        target_score("en_fr", "fine-tuning") < target_score("en_fr", "pretrained"),
        "fine-tuning raised en_fr, which it lowered in the full run"
    );
    assert!(
        in_context_mean("en_fr", "ProMoT") > in_context_mean("en_fr", "fine-tuning") + 5.0,
        "en_fr: ProMoT kept no more in context than fine-tuning: {} against {}",
        in_context_mean("en_fr", "ProMoT"),
        in_context_mean("en_fr", "fine-tuning")
    );
    let _ = std::fs::remove_dir_all(&work);
}
