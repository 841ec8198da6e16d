//! The quickstart end to end: the paper's experiment in miniature at the quick
//! size, with its fixed seed. Asserts only claims that held in the full run
//! (docs/results-toy.md, "What held"); claims that did not hold are reported
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
    // Fine-tuning fits each target and costs the other tasks in context: the
    // mean in-context score of the other tasks falls below the pretrained
    // model's (docs/results-toy.md, full run: 48.0 -> 16.5 on RTE, 50.5 -> 31.9
    // on En-Fr; quick run: 49.4 -> 40.0 and 50.2 -> 39.0 on both matmul
    // backends). ProMoT's advantage over fine-tuning held in the full run but
    // is not asserted: at the quick size its keep-best picks a checkpoint from
    // 2 scores on 16 examples, and which one flips between matmul backends.
    for target in ["rte", "en_fr"] {
        let own = format!("{target} (target)");
        assert!(
            cell(&summary, target, "fine-tuning", &own, 0) > cell(&summary, target, "pretrained", &own, 0) + 5.0,
            "fine-tuning did not fit {target}"
        );
        let mean = |method: &str| {
            let cells: Vec<f64> = common::summary_cells(&summary, target, method)
                .iter()
                .filter(|c| c["task"].as_str() != Some(own.as_str()))
                .map(|c| c["value"].as_f64().unwrap())
                .collect();
            cells.iter().sum::<f64>() / cells.len() as f64
        };
        assert!(
            mean("fine-tuning") + 5.0 < mean("pretrained"),
            "{target}: fine-tuning kept the in-context mean: {} against {} pretrained",
            mean("fine-tuning"),
            mean("pretrained")
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
