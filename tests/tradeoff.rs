//! The trade-off curves of stdlib/methods.rhai (`curve_recorder`,
//! `matched_points`, `plot_tradeoff`) on the built-in toy model: a point per
//! keep-best evaluation, scored on the model as it is at that step; prompt
//! tuning's curve is flat (the model is frozen); the matched point is the
//! first within the tolerance of the reference's best; `stage1_until` ends a
//! prompt-only stage at its goal; `plot_tradeoff_over_seeds` averages each
//! step over seeds and bands it.

use rhai::{Dynamic, Map};

fn eval(script: &str) -> Dynamic {
    let engine = promot::script::new_engine();
    let script = format!(
        r#"let m = load_model("toy");
let data = toy_examples("rte", "train", 64, 3);
let val = toy_task("rte", 8, 3, [0]);
val.examples = toy_examples("rte", "dev", 8, 3);
val.episodes = #{{}};
let others = [toy_task("en_fr", 4, 3, [1]), toy_task("triviaqa", 4, 3, [1])];
let rec = curve_recorder(m, others, #{{ shots: [1], beams: 1, seed: 3 }});
let o = #{{ prompt_length: 4, prompt_steps: 4, model_steps: 4, batch_size: 8, evaluations: 2,
           validation: val, curve: rec, quiet: true, seed: 3, task: "rte",
           weights_optimizer: #{{ optimizer: "adafactor", lr: 3e-2 }}, prompt_optimizer: #{{ optimizer: "adafactor", lr: 0.2 }} }};
{script}"#
    );
    engine
        .eval::<Dynamic>(&script)
        .unwrap_or_else(|e| panic!("script failed: {e}"))
}

fn points(d: Dynamic) -> Vec<Map> {
    d.into_array()
        .unwrap()
        .into_iter()
        .map(|p| p.try_cast::<Map>().unwrap())
        .collect()
}

fn f(p: &Map, key: &str) -> f64 {
    p[key].as_float().unwrap()
}

#[test]
fn a_point_per_evaluation_scored_at_that_step() {
    let out = eval(
        r#"rec.record.call("pretrained", 0, 0.0);
let r = fine_tuning(m, data, o);
[rec.points.call(), r.history[0].evals]"#,
    )
    .into_array()
    .unwrap();
    let (mut pts, evals) = (points(out[0].clone()), out[1].clone().into_array().unwrap());
    let start = pts.remove(0);
    assert_eq!(pts.len(), 2, "2 evaluations, 2 points");
    for (p, e) in pts.iter().zip(&evals) {
        let e = e.clone().into_array().unwrap();
        assert_eq!(p["stage"].clone().into_string().unwrap(), "fine-tuning");
        assert_eq!(p["step"].as_int().unwrap(), e[0].as_int().unwrap());
        // The recorded target score is the keep-best evaluation's own.
        assert_eq!(f(p, "target"), e[1].as_float().unwrap());
        let scores = p["scores"].clone().try_cast::<Map>().unwrap();
        let keys: Vec<String> = scores.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["en_fr 1-shot", "triviaqa 1-shot"]);
        let mean = scores.values().map(|v| v.as_float().unwrap()).sum::<f64>() / 2.0;
        assert!((f(p, "mean") - mean).abs() < 1e-12);
    }
    // At lr 3e-2 the model moves at once: the in-context scores are those of
    // the model at each step, not of the pretrained one.
    assert_ne!(
        start["scores"].to_string(),
        pts[0]["scores"].to_string(),
        "fine-tuning left the in-context scores unchanged: {start:?} {pts:?}"
    );
}

#[test]
fn a_curve_without_a_validation_task_is_an_error() {
    let engine = promot::script::new_engine();
    let err = engine
        .eval::<Dynamic>(
            r#"let m = load_model("toy");
let rec = curve_recorder(m, [], #{ shots: [1] });
fine_tuning(m, toy_examples("rte", "train", 8, 3), #{ model_steps: 1, batch_size: 8, quiet: true, curve: rec })"#,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a validation task"), "{err}");
}

#[test]
fn prompt_tuning_curve_is_flat_and_promot_records_both_stages() {
    let pt = points(eval("prompt_tuning(m, data, o); rec.points.call()"));
    assert_eq!(pt.len(), 2);
    assert_eq!(
        pt[0]["scores"].to_string(),
        pt[1]["scores"].to_string(),
        "the model is frozen in prompt tuning, so its in-context scores cannot change"
    );
    let pm = points(eval("promot(m, data, o); rec.points.call()"));
    let stages: Vec<String> = pm.iter().map(|p| p["stage"].clone().into_string().unwrap()).collect();
    assert_eq!(
        stages,
        ["ProMoT stage 1", "ProMoT stage 1", "ProMoT stage 2", "ProMoT stage 2"]
    );
}

#[test]
fn matched_points_picks_the_first_within_tolerance_and_the_plot_is_written() {
    let dir = std::env::temp_dir().join(format!("promot-tradeoff-{}", std::process::id()));
    let path = dir.join("t.svg");
    let out = eval(&format!(
        r#"let pt = |step, target, mean| #{{ stage: "s", step: step, target: target, scores: #{{}}, mean: mean }};
let curves = #{{
    ft: [pt.call(1, 40.0, 30.0), pt.call(2, 60.0, 20.0), pt.call(3, 55.0, 10.0)],
    pm: [pt.call(1, 50.0, 30.0), pt.call(2, 58.5, 29.0), pt.call(3, 61.0, 28.0)],
    never: [pt.call(1, 10.0, 30.0)],
}};
plot_tradeoff("{}", "t", curves);
matched_points(curves, "ft", 2.0)"#,
        path.display()
    ))
    .try_cast::<Map>()
    .unwrap();
    let step = |k: &str| out[k].clone().try_cast::<Map>().map(|p| p["step"].as_int().unwrap());
    assert_eq!(step("ft"), Some(2));
    assert_eq!(step("pm"), Some(2), "58.5 is within 2 of 60");
    assert!(out["never"].is_unit());
    let empty = eval(r#"matched_points(#{ ft: [], pm: [#{ target: 1.0 }] }, "ft", 2.0)"#)
        .try_cast::<Map>()
        .unwrap();
    assert!(empty["pm"].is_unit(), "an empty reference curve matches nothing");
    assert!(path.exists() && dir.join("t.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stage1_until_ends_prompt_tuning_at_the_first_evaluation_where_the_format_holds() {
    // Any share is >= 0: the goal holds at the first evaluation (step 2 of 4).
    let h = eval(r#"let r = prompt_tuning(m, data, o + #{ stage1_until: 0.0 }); r.history[0]"#)
        .try_cast::<Map>()
        .unwrap();
    assert_eq!(h["goal_step"].as_int().unwrap(), 2);
    assert_eq!(
        h["losses"].clone().into_array().unwrap().len(),
        2,
        "no step after the goal"
    );
    // No share exceeds 1: the stage runs its whole budget.
    let h = eval(r#"let r = promot(m, data, o + #{ stage1_until: 1.01 }); r.history[0]"#)
        .try_cast::<Map>()
        .unwrap();
    assert!(h["goal_step"].is_unit());
    assert_eq!(h["losses"].clone().into_array().unwrap().len(), 4);
    // The goal is read at keep-best evaluations, so it needs a validation task.
    let engine = promot::script::new_engine();
    let err = engine
        .eval::<Dynamic>(
            r#"let m = load_model("toy");
prompt_tuning(m, toy_examples("rte", "train", 8, 3), #{ prompt_steps: 1, batch_size: 8, quiet: true, stage1_until: 0.95 })"#,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a validation task"), "{err}");
}

#[test]
fn the_tradeoff_over_seeds_averages_each_step_and_bands_it() {
    let dir = std::env::temp_dir().join(format!("promot-tradeoff-seeds-{}", std::process::id()));
    let path = dir.join("t.svg");
    let out = eval(&format!(
        r#"let curves = [];
for seed in [3, 4] {{
    let mm = load_model("toy");
    let rr = curve_recorder(mm, others, #{{ shots: [1], beams: 1, seed: seed }});
    fine_tuning(mm, data, o + #{{ seed: seed, curve: rr }});
    curves.push(rr.points.call());
}}
[curves, plot_tradeoff_over_seeds("{}", "t", #{{ ft: curves }}, ["en_fr", "triviaqa"])]"#,
        path.display()
    ))
    .into_array()
    .unwrap();
    let curves: Vec<Vec<Map>> = out[0].clone().into_array().unwrap().into_iter().map(points).collect();
    let rows = points(out[1].clone().try_cast::<Map>().unwrap()["ft"].clone());
    assert_eq!(rows.len(), 2, "one row per evaluation step");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["seeds"].as_int().unwrap(), 2);
        assert_eq!(row["step"].as_int().unwrap(), curves[0][i]["step"].as_int().unwrap());
        let target = (f(&curves[0][i], "target") + f(&curves[1][i], "target")) / 2.0;
        assert!((f(row, "target") - target).abs() < 1e-9);
        // The mean over seeds of each seed's in-context mean, inside its interval.
        let e = row["in_context"].clone().try_cast::<Map>().unwrap();
        let mean = (f(&curves[0][i], "mean") + f(&curves[1][i], "mean")) / 2.0;
        assert!((f(&e, "mean") - mean).abs() < 1e-9, "{e:?} vs {mean}");
        assert!(f(&e, "lo") <= f(&e, "mean") && f(&e, "mean") <= f(&e, "hi"), "{e:?}");
    }
    assert!(path.exists() && dir.join("t.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
