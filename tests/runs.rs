//! Self-describing runs on the fixture mT5: `train` leaves one `metrics.jsonl`
//! line per step in its folder (also across an interruption and a resume),
//! and saved results say what made them and read back in `compare`.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use promot::model::{loading, Model};
use promot::tokenizer::Tokenizer;
use promot::train::metrics_log::{self, StepRecord};
use promot::train::{self, Example, Hooks, TaskData, TrainOptions};
use rhai::Dynamic;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-mt5")
}

fn fixture() -> (Model, Tokenizer) {
    let (m, dir) = loading::load(fixture_dir().to_str().unwrap(), &Device::Cpu, DType::F32, 0).unwrap();
    (m, Tokenizer::from_dir(&dir).unwrap())
}

fn data() -> Vec<TaskData> {
    let examples = [("Hello world", "True"), ("The cat sat on the mat.", "False")]
        .iter()
        .map(|(i, t)| Example {
            input: i.to_string(),
            target: t.to_string(),
            task: "default".into(),
        })
        .collect();
    vec![TaskData {
        name: "default".into(),
        examples,
        ratio: 1.0,
    }]
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promot-runs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn opts(steps: usize, dir: &Path) -> TrainOptions {
    let mut o = TrainOptions {
        steps,
        quiet: true,
        checkpoint_dir: Some(dir.to_path_buf()),
        label: "test run".into(),
        ..TrainOptions::default()
    };
    o.batch.batch_size = 2;
    o
}

fn never() -> bool {
    false
}

/// Equal up to JSON's float round trip (serde_json's default parser may be one ulp off).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn steps_of(log: &[StepRecord]) -> Vec<usize> {
    log.iter().map(|r| r.step).collect()
}

#[test]
fn train_writes_one_metrics_line_per_step_with_its_evaluations() {
    let dir = temp("fresh");
    let (m, tok) = fixture();
    let mut o = opts(4, &dir);
    o.eval_every = 2;
    o.weights.optimizer.set_lr(2e-3);
    let mut evaluate = |step: usize| -> promot::Result<train::Evaluation> { Ok((step as f64 / 10.0).into()) };
    let h = train::train(
        m.as_ref(),
        &tok,
        data(),
        &o,
        Hooks {
            evaluate: Some(&mut evaluate),
            should_stop: &never,
        },
    )
    .unwrap();
    let log = metrics_log::read(&dir.join(metrics_log::FILE)).unwrap();
    assert_eq!(steps_of(&log), vec![1, 2, 3, 4]);
    for (r, loss) in log.iter().zip(&h.losses) {
        assert!(
            close(r.loss, *loss),
            "the logged loss is the step's loss: {} vs {loss}",
            r.loss
        );
        assert_eq!(r.lr.get("model"), Some(&2e-3), "{:?}", r.lr);
        assert!(r.grad_norm.is_finite() && r.grad_norm > 0.0, "{r:?}");
        assert!(r.steps_per_sec > 0.0, "{r:?}");
        assert_eq!(r.label, "test run");
    }
    let evals: Vec<Option<f64>> = log.iter().map(|r| r.eval).collect();
    assert_eq!(evals, vec![None, Some(0.2), None, Some(0.4)]);

    // A fresh run in the same folder (no resume) starts the log anew.
    let (m, tok) = fixture();
    let mut o = opts(2, &dir);
    o.resume = false;
    let hooks = Hooks {
        evaluate: None,
        should_stop: &never,
    };
    train::train(m.as_ref(), &tok, data(), &o, hooks).unwrap();
    let log = metrics_log::read(&dir.join(metrics_log::FILE)).unwrap();
    assert_eq!(steps_of(&log), vec![1, 2]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resumed_run_continues_the_log_without_duplicate_steps() {
    let dir = temp("resume");
    let (m, tok) = fixture();
    let o = opts(6, &dir);
    let seen = Cell::new(0);
    let stop_after_three = || {
        seen.set(seen.get() + 1);
        seen.get() > 3
    };
    let first = train::train(
        m.as_ref(),
        &tok,
        data(),
        &o,
        Hooks {
            evaluate: None,
            should_stop: &stop_after_three,
        },
    )
    .unwrap();
    assert!(first.stopped_early.is_some());
    let path = dir.join(metrics_log::FILE);
    assert_eq!(steps_of(&metrics_log::read(&path).unwrap()), vec![1, 2, 3]);

    // As if the process died after logging steps 4-5 but before checkpointing
    // them (the last line cut off midway): resuming from step 3 redoes them.
    let mut text = std::fs::read_to_string(&path).unwrap();
    let line3 = text.lines().last().unwrap().to_string();
    text.push_str(&line3.replace("\"step\":3", "\"step\":4"));
    text.push('\n');
    text.push_str("{\"step\":5,\"loss\":1.");
    std::fs::write(&path, text).unwrap();

    let (m, tok) = fixture();
    let resumed = train::train(
        m.as_ref(),
        &tok,
        data(),
        &o,
        Hooks {
            evaluate: None,
            should_stop: &never,
        },
    )
    .unwrap();
    let log = metrics_log::read(&path).unwrap();
    assert_eq!(
        steps_of(&log),
        vec![1, 2, 3, 4, 5, 6],
        "one line per step after the resume"
    );
    assert_eq!(log.len(), resumed.losses.len());
    for (r, loss) in log.iter().zip(&resumed.losses) {
        // (The history's first steps come from the checkpoint, kept as f32.)
        assert!(
            (r.loss - loss).abs() < 1e-5,
            "step {}: logged {} but the history has {loss}",
            r.step,
            r.loss
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_dir_takes_the_log_and_no_folder_writes_none() {
    let run = temp("rundir");
    let (m, tok) = fixture();
    let mut o = opts(2, &run.join("ck"));
    o.run_dir = Some(run.join("run"));
    let hooks = Hooks {
        evaluate: None,
        should_stop: &never,
    };
    train::train(m.as_ref(), &tok, data(), &o, hooks).unwrap();
    assert_eq!(
        metrics_log::read(&run.join("run").join(metrics_log::FILE))
            .unwrap()
            .len(),
        2
    );
    assert!(!run.join("ck").join(metrics_log::FILE).exists());
    let _ = std::fs::remove_dir_all(&run);
}

fn eval_script(script: &str) -> Dynamic {
    let engine = promot::script::new_engine();
    let script = format!("let m = load_model(\"{}\");\n{script}", fixture_dir().display());
    engine
        .eval::<Dynamic>(&script)
        .unwrap_or_else(|e| panic!("script failed: {e}"))
}

#[test]
fn saved_results_carry_their_provenance_and_compare_reads_them_back() {
    let dir = temp("results");
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var("PROMOT_CACHE", dir.join("cache"));
    let base = dir.join("tiny").display().to_string();
    let script = format!(
        r#"
        let task = #{{ name: "tiny", metric: "accuracy", kind: "classification", max_new_tokens: 3,
                      examples: [#{{input: "Hello world", target: "True"}}, #{{input: "The cat", target: "False"}}],
                      pool: [#{{input: "A house", target: "True"}}] }};
        let r = m.evaluate([task], #{{ shots: [0, 1], beams: 2, seed: 5, quiet: true }});
        r.save("{base}");
        [compare(["{base}.json", r], ["saved", "live"]), r.provenance()]
        "#
    );
    let out = eval_script(&script).into_array().unwrap();
    let table = out[0].clone().into_string().unwrap();
    assert!(
        table.contains("saved") && table.contains("live") && table.contains("tiny"),
        "{table}"
    );
    // Both columns hold the same numbers: the file read back is the table saved.
    for line in table.lines().filter(|l| l.starts_with("tiny")) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[2], cols[3], "{line}");
    }

    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tiny.json")).unwrap()).unwrap();
    assert_eq!(saved["format"], "promot-results/1");
    let records = saved["provenance"].as_array().unwrap();
    assert_eq!(records.len(), 1, "one evaluate call, one record");
    let p = &records[0];
    assert_eq!(p["promot"]["version"], env!("CARGO_PKG_VERSION"));
    let commit = p["promot"]["commit"].as_str().unwrap();
    assert!(
        commit == "unknown" || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert_eq!(p["model"]["source"], fixture_dir().display().to_string());
    let files = p["model"]["files"].as_object().unwrap();
    let weights = files
        .iter()
        .find(|(name, _)| name.ends_with(".safetensors") || name.ends_with(".bin"))
        .unwrap_or_else(|| panic!("no weights file hashed: {files:?}"));
    let expected = promot::provenance::sha256_file(&fixture_dir().join(weights.0)).unwrap();
    assert_eq!(weights.1, &expected);
    assert_eq!(p["model"]["weights_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(p["prompt"], serde_json::Value::Null);
    assert_eq!(p["tasks"][0]["name"], "tiny");
    assert_eq!(p["tasks"][0]["examples"], 2);
    assert_eq!(p["tasks"][0]["data_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(p["shots"], serde_json::json!([0, 1]));
    assert_eq!(p["decoding"]["beams"], 2);
    assert_eq!(p["seed"], 5);
    for cell in saved["cells"].as_array().unwrap() {
        assert_eq!(cell["provenance"], 0, "{cell}");
    }
    // The script sees the same record.
    let seen = out[1].clone().into_array().unwrap();
    assert_eq!(seen.len(), 1);

    // A file from before records (a bare array of cells) still loads.
    let cells = saved["cells"].clone();
    std::fs::write(dir.join("old.json"), cells.to_string()).unwrap();
    let old = eval_script(&format!(r#"compare(["{}"], ["old"])"#, dir.join("old.json").display()));
    assert!(old.into_string().unwrap().contains("tiny"));
    // Not a results file: one clear error naming it.
    std::fs::write(dir.join("other.json"), "{\"a\": 1}").unwrap();
    let engine = promot::script::new_engine();
    let err = engine
        .eval::<Dynamic>(&format!(r#"compare(["{}"], ["x"])"#, dir.join("other.json").display()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other.json") && err.contains("not a saved results file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_script_run_folder_describes_the_run_beside_its_log() {
    let dir = temp("script");
    let out = eval_script(&format!(
        r#"let data = [#{{input: "Hello world", target: "True"}}, #{{input: "The cat", target: "False"}}];
        let h = m.train(data, #{{ steps: 3, batch_size: 2, quiet: true, checkpoint_dir: "{}", label: "tiny" }});
        h.losses.len()"#,
        dir.display()
    ));
    assert_eq!(out.as_int().unwrap(), 3);
    assert_eq!(metrics_log::read(&dir.join(metrics_log::FILE)).unwrap().len(), 3);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(metrics_log::RUN_FILE)).unwrap()).unwrap();
    assert_eq!(run["format"], "promot-run/1");
    assert_eq!(run["promot"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(run["model"]["source"], fixture_dir().display().to_string());
    assert_eq!(run["model"]["weights_sha256_at_start"].as_str().unwrap().len(), 64);
    assert_eq!(run["options"]["steps"], 3);
    assert_eq!(run["options"]["label"], "tiny");
    assert_eq!(run["data"][0]["examples"], 2);
    assert_eq!(run["data"][0]["sha256"].as_str().unwrap().len(), 64);
    let _ = std::fs::remove_dir_all(&dir);
}
