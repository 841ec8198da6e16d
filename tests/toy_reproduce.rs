//! The quickstart end to end: the paper's experiment in miniature at the quick
//! size, with its three fixed seeds. Asserts the run's shape (preconditions,
//! intervals, the headline at the end), what holds by construction, Fig. 2's
//! rise, and the claims that held in the full run at 48316a0
//! (docs/results-toy.md): fine-tuning spreads fr_en's format to the other
//! tasks, ProMoT spreads less of it, and stage 1's prompt puts the format on
//! the target's outputs. What was undecided or did not hold there is reported
//! there with its intervals, not asserted here.

use std::process::Command;

/// One method's cells in a reproduction's summary.json: #{task, shots, mean, lo, hi, values}.
fn cells<'a>(summary: &'a serde_json::Value, target: &str, table: &str, method: &str) -> &'a Vec<serde_json::Value> {
    summary[target][table]["methods"][method]
        .as_array()
        .unwrap_or_else(|| panic!("{target}: no {table} of {method}"))
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
        "Fine-tuned on toy fr_en",
        "Toy fr_en, 3 seeds: preconditions",
        "ProMoT - fine-tuning",
        "joint",
        "random prompt",
    ] {
        assert!(stdout.contains(header), "output lacks {header}:\n{stdout}");
    }
    // The output ends with the preconditions and the headline of each target.
    let tail = &stdout[stdout.rfind("Fig. 2 and Fig. 3 written").expect("no figures line")..];
    assert!(
        tail.contains("Toy fr_en, 3 seeds: preconditions") && tail.contains("At a matched target score"),
        "{tail}"
    );
    let dir = work.join("runs/toy-quick");
    for f in [
        "fig2.svg",
        "fig2.png",
        "fig3.svg",
        "fig3.png",
        "table-fr_en.md",
        "tradeoff-fr_en.svg",
        "summary.json",
        "figures.json",
    ] {
        assert!(dir.join(f).exists(), "missing {f}");
    }
    // The markdown tables: the preconditions, the scores and the shares, as three tables.
    let tables = std::fs::read_to_string(dir.join("table-fr_en.md")).unwrap();
    assert!(!tables.contains("\\n"), "a literal \\n in table-fr_en.md:\n{tables}");
    let separators = tables.lines().filter(|l| l.starts_with("| ---")).count();
    assert_eq!(separators, 3, "expected three tables:\n{tables}");
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
    assert_eq!(summary["seeds"].as_array().unwrap().len(), 3);
    for target in ["fr_en"] {
        // Every cell is a mean over the three seeds with an interval around it.
        for c in cells(&summary, target, "scores", "ProMoT") {
            assert_eq!(c["values"].as_array().unwrap().len(), 3, "{c}");
            let (lo, mean, hi) = (
                c["lo"].as_f64().unwrap(),
                c["mean"].as_f64().unwrap(),
                c["hi"].as_f64().unwrap(),
            );
            assert!(lo <= mean + 1e-9 && mean <= hi + 1e-9, "{target}: {c}");
        }
        // Prompt tuning leaves the model untouched, so its in-context cells
        // are the pretrained model's, seed by seed.
        let pretrained = cells(&summary, target, "scores", "pretrained");
        for c in cells(&summary, target, "scores", "prompt tuning") {
            if c["task"].as_str().unwrap().ends_with("(target)") {
                continue;
            }
            let same = pretrained
                .iter()
                .find(|p| p["task"] == c["task"] && p["shots"] == c["shots"])
                .unwrap();
            assert_eq!(c["values"], same["values"], "{target}: {c}");
        }
    }
    // fr_en is new to the pretrained model at 0, 1 and 4 shots (it copies the
    // French): the headroom precondition holds by construction of the task.
    let checks = summary["fr_en"]["preconditions"].as_array().unwrap();
    let new_to_model = checks
        .iter()
        .find(|c| c["name"] == "the target is new to the model")
        .unwrap();
    assert_eq!(new_to_model["holds"], true, "{new_to_model}");

    // Claims that held in the full run (five seeds), here under the quick
    // size's three: intervals apart, not only means.
    let fr_en = &summary["fr_en"];
    let headline = |method: &str| {
        fr_en["headline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["method"] == method)
            .unwrap_or_else(|| panic!("no headline row for {method}"))["format_share"]
            .clone()
    };
    let (ft, pre) = (headline("fine-tuning"), headline("pretrained"));
    assert!(
        ft["lo"].as_f64().unwrap() > pre["hi"].as_f64().unwrap(),
        "format specialization: fine-tuning's share of answers in fr_en's format {ft} is not above the pretrained model's {pre}"
    );
    let less = &fr_en["promot_minus_fine_tuning"]["format_share"];
    assert!(
        less["hi"].as_f64().unwrap() < 0.0,
        "ProMoT's share of answers in fr_en's format is not below fine-tuning's: {less}"
    );
    let absorbed = checks
        .iter()
        .find(|c| c["name"] == "the prompt absorbed the format")
        .unwrap();
    assert_eq!(absorbed["holds"], true, "{absorbed}");
    let stage1 = fr_en["stage1"].as_array().unwrap();
    assert_eq!(stage1.len(), 3, "stage 1's ending is reported per seed");
    let _ = std::fs::remove_dir_all(&work);
}
