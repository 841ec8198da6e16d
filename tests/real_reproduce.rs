//! scripts/reproduce_real.rhai at the quick size on SmolLM2-135M, end to end,
//! with its fixed seed: the tables, Table 1 and both figures are written, a
//! second run of the same command redoes no work, and the claims that held
//! in the long run under three seeds (docs/results-real.md) hold here:
//! fine-tuning's True/False answers on QA prompts and its collapsed
//! translations, and ProMoT's QA answers no more True/False than
//! fine-tuning's. Claims that did not hold there, or were undecided, are
//! reported there, not asserted here.
//!
//! Ignored unless asked for: it needs SmolLM2 (`bash scripts/get-smollm2.sh`;
//! CI fetches it and runs the ignored tests) and takes about 10 minutes on 2
//! cores. Run without the model, it fails and says so.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::summary_cell as cell;

fn run(work: &Path) -> (bool, String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/reproduce_real.rhai");
    let out = Command::new(env!("CARGO_BIN_EXE_promot"))
        .current_dir(work)
        .env("PROMOT_CACHE", work.join("cache"))
        .args(["run", script, "quick"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs SmolLM2: run bash scripts/get-smollm2.sh (then about 10 minutes)"]
fn quick_real_reproduction_runs_resumes_and_shows_format_specialization() {
    if let Err(e) = promot::model::loading::resolve("smollm2") {
        panic!("{e}");
    }
    let work = std::env::temp_dir().join(format!("promot-real-quick-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let (ok, stdout, stderr) = run(&work);
    assert!(ok, "reproduce_real quick failed:\n{stdout}\n{stderr}");
    for header in [
        "Fine-tuned on rte",
        "Share of outputs in rte's format",
        "Table 1",
        "ProMoT+1-shot",
        "preconditions",
        "Headline",
        "At a matched target score",
    ] {
        assert!(stdout.contains(header), "output lacks {header}:\n{stdout}");
    }
    let dir = work.join("runs/real-quick-smollm2");
    for f in [
        "fig2.svg",
        "fig2.png",
        "fig3.svg",
        "fig3.png",
        "table-rte.md",
        "table1.md",
        "tradeoff-rte.svg",
        "summary.json",
        "figures.json",
    ] {
        assert!(dir.join(f).exists(), "missing {f}");
    }
    let read = |f: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap() };
    let summary = read("summary.json");

    // Prompt tuning leaves the model as it was: every in-context cell equals the pretrained one.
    for task in [
        "cb",
        "wic",
        "triviaqa",
        "web_questions",
        "wmt16_en_de",
        "wmt16_en_ro",
        "wmt14_en_fr",
        "xsum",
    ] {
        let (pt, pre) = (
            cell(&summary, "rte", "prompt tuning", task, 1),
            cell(&summary, "rte", "pretrained", task, 1),
        );
        assert_eq!(
            pt["value"], pre["value"],
            "{task}: prompt tuning changed the in-context score"
        );
        assert_eq!(
            pt["label_share"], pre["label_share"],
            "{task}: prompt tuning changed the share"
        );
    }

    // Claims that held in the long run (docs/results-real.md, "The paper's claims on this model (long size)"):
    let value = |m: &str, task: &str| cell(&summary, "rte", m, task, 1)["value"].as_f64().unwrap();
    let share = |m: &str, task: &str| cell(&summary, "rte", m, task, 1)["label_share"].as_f64().unwrap();
    let qa_share = |m: &str| share(m, "triviaqa") + share(m, "web_questions");
    // (a) Fine-tuning on RTE puts its True/False format into other tasks'
    // answers, where the pretrained model gives none...
    assert_eq!(
        qa_share("pretrained"),
        0.0,
        "the pretrained model answered QA with True/False"
    );
    assert!(
        qa_share("fine-tuning") > 0.0,
        "fine-tuning left no True/False answers on 1-shot TriviaQA/web_questions"
    );
    // ... and its translations collapse (it ends at once, as an RTE answer does).
    let bleu = |m: &str| {
        ["wmt16_en_de", "wmt16_en_ro", "wmt14_en_fr"]
            .iter()
            .map(|t| value(m, t))
            .sum::<f64>()
    };
    assert!(
        bleu("fine-tuning") < bleu("pretrained"),
        "fine-tuning's translation BLEU {} is not below the pretrained model's {}",
        bleu("fine-tuning"),
        bleu("pretrained")
    );
    // (c), in part: with its prompt attached in stage 2, ProMoT leaks the
    // format into QA answers no more than fine-tuning does.
    assert!(
        qa_share("ProMoT") <= qa_share("fine-tuning"),
        "ProMoT's True/False share on QA ({}) is above fine-tuning's ({})",
        qa_share("ProMoT"),
        qa_share("fine-tuning")
    );

    // Resumable: the same command again loads every finished result and probe.
    let (ok, stdout2, stderr2) = run(&work);
    assert!(ok, "second run failed:\n{stdout2}\n{stderr2}");
    assert!(!stderr2.contains(" it/s"), "the second run trained again:\n{stderr2}");
    assert_eq!(read("summary.json"), summary, "the second run changed the results");
    let _ = std::fs::remove_dir_all(&work);
}
