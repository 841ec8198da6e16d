//! One template table: a template changed at run time reaches the paper's
//! training data, its evaluation tasks and the toy world alike. (Its own test
//! binary: the change is process-wide.)

use rhai::Dynamic;

#[test]
fn a_changed_template_reaches_training_evaluation_and_the_toy_world() {
    let engine = promot::script::new_engine();
    let script = r#"
        let paper = template("rte");
        set_template("rte", "Premise: {premise} Hypothesis: {hypothesis} Answer:");
        let train = rte_train();
        let eval_task = rte();
        let toy = toy_examples("rte", "train", 1, 0);
        reset_template("rte");
        [train[0].input, eval_task.examples[0].input, eval_task.pool[0].input, toy[0].input,
         rte_train()[0].input, paper, template("rte")]
    "#;
    let out: Vec<String> = engine
        .eval::<Dynamic>(script)
        .unwrap_or_else(|e| panic!("script failed: {e}"))
        .into_array()
        .unwrap()
        .into_iter()
        .map(|v| v.into_string().unwrap())
        .collect();
    for (what, text) in [
        ("training data", &out[0]),
        ("evaluation examples", &out[1]),
        ("demonstrations", &out[2]),
        ("toy world", &out[3]),
    ] {
        assert!(
            text.starts_with("Premise: ") && text.ends_with(" Answer:"),
            "{what} did not use the new template: {text}"
        );
        assert!(text.contains(" Hypothesis: "), "{what}: {text}");
    }
    assert!(
        out[4].ends_with("Is it true or false? answer:"),
        "reset did not restore the paper's template: {}",
        out[4]
    );
    assert_eq!(out[5], out[6]);
    assert_eq!(out[5], promot::data::template::RTE_TEMPLATE);
}

#[test]
fn a_malformed_template_is_refused() {
    assert!(promot::data::set_template("rte", Some("{premise")).is_err());
    assert!(promot::data::set_template("nope", Some("{x}")).is_err());
}
