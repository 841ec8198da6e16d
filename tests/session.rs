//! The library's `Session` (a model with its tokenizer, separator and
//! prompts) does what a script does: the same toy model evaluated from Rust
//! alone and from a script builds the same prompts, with the model's own
//! separator, and gets the same scores.

use promot::eval::EvalOptions;
use promot::session::{LoadOptions, Session};
use promot::toy::evaluation::eval_task;
use promot::toy::{TaskKind, DEMO_SEPARATOR};
use serde_json::Value;

/// Toy RTE and En-Fr at 1 shot, their demonstrations drawn from the pool and
/// joined by the evaluation (no ready-made episodes), so the separator shows.
fn tasks() -> Vec<promot::eval::EvalTask> {
    [TaskKind::Rte, TaskKind::EnFr]
        .into_iter()
        .map(|kind| {
            let mut t = eval_task(kind, 6, 11, &[1]).unwrap();
            t.episodes.clear();
            t
        })
        .collect()
}

fn options() -> EvalOptions {
    EvalOptions {
        shots: vec![1],
        beams: 1,
        quiet: true,
        use_cache: false,
        seed: 5,
        ..EvalOptions::default()
    }
}

#[test]
fn the_library_alone_evaluates_as_a_script_does() {
    let session = Session::load("toy", &LoadOptions::default()).unwrap();
    assert_eq!(session.separator, DEMO_SEPARATOR);
    let ours = session.evaluate(&tasks(), &options()).unwrap();
    let ours: Vec<Value> = ours.cells.iter().map(|c| c.to_json()).collect();

    let engine = promot::script::new_engine();
    let theirs: rhai::Array = engine
        .eval(
            r#"let m = load_model("toy");
               let tasks = [];
               for name in ["rte", "en_fr"] {
                   let t = toy_task(name, 6, 11, [1]);
                   t.episodes = #{};
                   tasks.push(t);
               }
               cells(evaluate(m, tasks, #{ shots: [1], beams: 1, quiet: true, cache: false, seed: 5 }))"#,
        )
        .unwrap();
    let theirs: Vec<Value> = theirs
        .iter()
        .map(|c| rhai::serde::from_dynamic::<Value>(c).unwrap())
        .collect();

    assert_eq!(ours.len(), 2);
    assert_eq!(
        ours, theirs,
        "a Rust caller and a script built other prompts or got other scores"
    );
    for cell in &ours {
        let prompt = cell["samples"][0]["prompt"].as_str().unwrap();
        assert!(
            prompt.contains(DEMO_SEPARATOR),
            "not joined with the model's separator: {prompt}"
        );
    }
}

#[test]
fn few_shot_prompts_use_the_model_separator_in_rust_and_in_scripts() {
    let session = Session::load("toy", &LoadOptions::default()).unwrap();
    let demos = vec![("a b".to_string(), "c".to_string())];
    let ours = session.few_shot_prompt("d e", &demos);
    assert!(ours.contains(DEMO_SEPARATOR), "{ours}");
    let engine = promot::script::new_engine();
    let theirs: String = engine
        .eval(r#"let m = load_model("toy"); m.few_shot_prompt("d e", [#{ input: "a b", target: "c" }])"#)
        .unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn training_options_take_the_model_separator_unless_given() {
    let session = Session::load("toy", &LoadOptions::default()).unwrap();
    let opts = session.train_options(&Default::default()).unwrap();
    assert_eq!(opts.batch.separator, DEMO_SEPARATOR);
    let config = promot::train::TrainConfig {
        separator: Some(" | ".into()),
        ..Default::default()
    };
    assert_eq!(session.train_options(&config).unwrap().batch.separator, " | ");
}
