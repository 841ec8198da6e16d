//! The Rhai standard library end to end on the fixture mT5: every method of
//! the paper runs and trains what it should; the paper's tasks load from the
//! vendored data with the Table 5 templates; evaluation prints a table and a
//! repeated call is answered from the cache.

use rhai::{Dynamic, Map};

fn eval(script: &str) -> Dynamic {
    let engine = promot::script::new_engine();
    let script = format!(
        "let m = load_model(\"{}/tests/fixtures/tiny-mt5\");\n{script}",
        env!("CARGO_MANIFEST_DIR")
    );
    engine
        .eval::<Dynamic>(&script)
        .unwrap_or_else(|e| panic!("script failed: {e}"))
}

const DATA: &str = r#"let data = [#{input: "Hello world", target: "True"}, #{input: "The house is wonderful.", target: "False"}];
let o = #{prompt_length: 4, prompt_steps: 2, model_steps: 2, batch_size: 2, quiet: true};"#;

#[test]
fn every_method_runs_and_returns_model_prompt_and_history() {
    for method in [
        "prompt_tuning",
        "fine_tuning",
        "promot",
        "promot_one_shot",
        "fine_tuning_one_shot",
        "joint_tuning",
        "random_prompt_tuning",
    ] {
        let r = eval(&format!(
            "{DATA}\nlet r = {method}(m, data, o); [r.history.len(), type_of(r.prompt), r.history[-1].losses.len()]"
        ));
        let r = r.into_array().unwrap();
        assert!(r[0].as_int().unwrap() >= 1, "{method}: no history");
        assert_eq!(
            r[2].as_int().unwrap(),
            2,
            "{method}: expected 2 steps in the last stage"
        );
        let prompt_type = r[1].clone().into_string().unwrap();
        let wants_prompt = !method.starts_with("fine_tuning");
        assert_eq!(
            prompt_type == "Prompt",
            wants_prompt,
            "{method}: prompt is {prompt_type}"
        );
    }
}

#[test]
fn every_method_returns_the_same_shape_and_the_inference_rule_picks_the_prompt() {
    let methods = [
        "prompt_tuning",
        "fine_tuning",
        "promot",
        "promot_one_shot",
        "fine_tuning_one_shot",
        "joint_tuning",
        "fine_tuning_fixed_random_prompt",
        "random_prompt_tuning",
    ];
    for method in methods {
        let r = eval(&format!(
            "{DATA}\nlet r = {method}(m, data, o + #{{ task: \"rte\" }});
            [\"prompts\" in r, \"prompt\" in r, r.prompts.len(), type_of(prompt_for(r, \"rte\")), type_of(prompt_for(r, \"cb\"))]"
        ))
        .into_array()
        .unwrap();
        assert!(
            r[0].as_bool().unwrap() && r[1].as_bool().unwrap(),
            "{method}: missing prompts or prompt"
        );
        let wants_prompt = !matches!(method, "fine_tuning" | "fine_tuning_one_shot");
        assert_eq!(r[2].as_int().unwrap(), i64::from(wants_prompt), "{method}: prompts map");
        assert_eq!(
            r[3].clone().into_string().unwrap() == "Prompt",
            wants_prompt,
            "{method}: prompt for its task"
        );
        assert_eq!(
            r[4].clone().into_string().unwrap(),
            "()",
            "{method}: another task must get no prompt"
        );
    }
}

#[test]
fn prompt_init_depends_on_seed_and_name_only() {
    let r = eval(
        "let a = m.soft_prompt(3, \"vocab\", \"rte\", 5).values();
         m.soft_prompt(3, \"uniform\", \"other\", 1);
         let b = m.soft_prompt(3, \"vocab\", \"rte\", 5).values();
         let c = m.soft_prompt(3, \"vocab\", \"rte\", 6).values();
         [(a - b).abs().sum().item(), (a - c).abs().sum().item()]",
    )
    .into_array()
    .unwrap();
    assert_eq!(
        r[0].as_float().unwrap(),
        0.0,
        "same seed and name must give the same prompt"
    );
    assert!(
        r[1].as_float().unwrap() > 0.0,
        "another seed should give another prompt"
    );
}

#[test]
fn promot_freezes_the_model_in_stage_one_and_the_prompt_in_stage_two() {
    let r = eval(&format!(
        "{DATA}
        let before = m.snapshot();
        let r = promot(m, data, o);
        let after = m.snapshot();
        let changed = 0;
        for k in before.keys() {{ if (after[k] - before[k]).abs().sum().item() > 0.0 {{ changed += 1; }} }}
        [changed, before.len(), r.prompt.is_trainable()]"
    ))
    .into_array()
    .unwrap();
    assert_eq!(
        r[0].as_int().unwrap(),
        r[1].as_int().unwrap(),
        "stage 2 should train every weight"
    );
    assert!(!r[2].as_bool().unwrap(), "the prompt must be frozen after stage 2");
}

#[test]
fn multitask_and_sequential_promot_keep_a_prompt_per_task() {
    let r = eval(&format!(
        "{DATA}
        let a = multitask_promot(m, #{{ rte: data, other: data }}, o);
        let s = sequential_promot(m, [#{{ name: \"a\", data: data }}, #{{ name: \"b\", data: data }}], o);
        [a.prompts.len(), s.prompts.len(), s.history.len()]"
    ))
    .into_array()
    .unwrap();
    assert_eq!(r[0].as_int().unwrap(), 2);
    assert_eq!(r[1].as_int().unwrap(), 2);
    assert_eq!(r[2].as_int().unwrap(), 4);
}

#[test]
fn tasks_use_the_paper_templates_on_real_examples() {
    let r = eval(
        "#{ rte: rte().examples[0], cb: cb().examples[0], wic: wic().examples[0], tqa: triviaqa().examples[0],
                    wq: web_questions().examples[0], de: wmt16_en_de().examples[0], ro: wmt16_en_ro().examples[0],
                    fr: wmt14_en_fr().examples[0], xsum: xsum().examples.len() }",
    );
    let m = r.cast::<Map>();
    let input = |k: &str| m[k].clone().cast::<Map>()["input"].clone().into_string().unwrap();
    let target = |k: &str| m[k].clone().cast::<Map>()["target"].to_string();
    assert_eq!(input("rte"), "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the Christopher Reeve Foundation. question: Christopher Reeve had an accident. Is it true or false? answer:");
    assert_eq!(target("rte"), "False");
    assert!(
        input("cb").ends_with("question: Valence was helping Is it true or false or neither? answer:"),
        "{}",
        input("cb")
    );
    assert_eq!(target("cb"), "False");
    assert_eq!(input("wic"), "An emerging professional class. Apologizing for losing your temper, even though you were badly provoked, showed real class. question: The word class is used in the same way in the two sentences. Is it true or False? answer:");
    assert_eq!(
        input("tqa"),
        "Q: Brunswick, Lancastrian and Pearl Pickler are types of which vegetable? A:"
    );
    assert_eq!(input("wq"), "Q: what does jamaican people speak? A:");
    assert_eq!(input("de"), "Translate English to German: Obama receives Netanyahu");
    assert!(input("ro").starts_with("Translate English to Romanian: "));
    assert!(input("fr").starts_with("Translate English to French: "));
    assert_eq!(m["xsum"].as_int().unwrap(), 321);
}

#[test]
fn evaluate_prints_a_table_and_repeats_from_the_cache() {
    let cache = std::env::temp_dir().join(format!("promot-eval-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    std::env::set_var("PROMOT_CACHE", &cache);
    let script = "let r = m.evaluate([rte(), cb(), triviaqa(), wmt16_en_de(), xsum()], #{shots: [1], limit: 5, quiet: true}); [r.to_string(), r.cells()]";
    let first = eval(script).into_array().unwrap();
    let table = first[0].clone().into_string().unwrap();
    for task in ["rte", "cb", "triviaqa", "wmt16_en_de", "xsum"] {
        assert!(table.contains(task), "table lacks {task}:\n{table}");
    }
    let files = || std::fs::read_dir(cache.join("eval")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files(), 5, "one cached cell per task");
    let second = eval(script).into_array().unwrap();
    assert_eq!(first[0].to_string(), second[0].to_string());
    assert_eq!(files(), 5, "the repeat must be answered from the cache");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn options_come_from_the_structs_unknown_keys_name_the_known_ones() {
    let engine = promot::script::new_engine();
    for (function, wants) in [
        (
            "train",
            &[
                "steps: 100",
                "\"lr\":0.001",
                "weights_optimizer: ",
                "multiply_by_parameter_scale: none",
                "evaluate: ",
            ][..],
        ),
        ("evaluate", &["shots: [1,4]", "beams: 4", "cache: true", "prompt: "][..]),
        ("generate", &["beams: 4", "max_new_tokens: 32", "max_input_len: "][..]),
        ("new_toy_model", &["d_model: 128", "num_heads: 4"][..]),
    ] {
        let text = promot::script::help::help_text(&engine, Some(function));
        for want in wants {
            assert!(text.contains(want), "help(\"{function}\") lacks '{want}':\n{text}");
        }
    }
    let script = format!(
        "let m = load_model(\"{}/tests/fixtures/tiny-mt5\"); m.train([#{{input: \"a\", target: \"b\"}}], #{{ stepz: 1 }})",
        env!("CARGO_MANIFEST_DIR")
    );
    let err = engine.eval::<rhai::Dynamic>(&script).unwrap_err().to_string();
    assert!(
        err.contains("unknown option 'stepz'") && err.contains("steps") && err.contains("max_input_len"),
        "{err}"
    );
    assert!(err.contains("line 1"), "the error should say where: {err}");
}

#[test]
fn paper_defaults_use_t5x_adafactor_for_weights_and_unscaled_for_prompts() {
    use promot::optim::{AdafactorConfig, GroupSettings, OptimizerConfig};
    // The flat keys are shorthand for the groups' settings.
    let opts: promot::train::TrainConfig = serde_json::from_value(serde_json::json!({
        "multiply_by_parameter_scale": true, "min_dim_size_to_factor": 128, "prompt_multiply_by_parameter_scale": false
    }))
    .unwrap();
    let o = opts.build().unwrap();
    let OptimizerConfig::Adafactor(w) = &o.weights.optimizer else {
        panic!("{:?}", o.weights)
    };
    assert!(w.multiply_by_parameter_scale);
    assert_eq!(w.min_dim_size_to_factor, Some(128));
    let OptimizerConfig::Adafactor(p) = &o.prompts.optimizer else {
        panic!("{:?}", o.prompts)
    };
    assert!(!p.multiply_by_parameter_scale);
    // paper_defaults() writes each group as one literal.
    let d = eval("paper_defaults()").cast::<Map>();
    let weights: GroupSettings = rhai::serde::from_dynamic(&d["weights_optimizer"]).unwrap();
    assert_eq!(
        weights.optimizer,
        OptimizerConfig::Adafactor(AdafactorConfig::t5x(1e-3))
    );
    let prompts: GroupSettings = rhai::serde::from_dynamic(&d["prompt_optimizer"]).unwrap();
    let OptimizerConfig::Adafactor(p) = prompts.optimizer else {
        panic!("{prompts:?}")
    };
    assert!(!p.multiply_by_parameter_scale && !p.factored && p.lr == 0.2);
}

#[test]
fn an_error_inside_a_stdlib_method_names_its_file_line_and_the_bad_option() {
    let engine = promot::script::new_engine();
    let script = format!(
        "let m = load_model(\"{}/tests/fixtures/tiny-mt5\");\nfine_tuning(m, [#{{input: \"a\", target: \"b\"}}], #{{ batch_size: -1 }})",
        env!("CARGO_MANIFEST_DIR")
    );
    let err = engine.eval::<Dynamic>(&script).unwrap_err();
    let shown = promot::script::diagnostics::eval_error(&err, "<test>", &promot::script::diagnostics::Sources::new());
    let first = shown.lines().next().unwrap();
    // The line in methods.rhai that calls train inside fine_tuning.
    let methods = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/stdlib/methods.rhai")).unwrap();
    let body = methods.find("fn fine_tuning(").unwrap();
    let line =
        methods[..body].lines().count() + methods[body..].lines().position(|l| l.contains(".train(")).unwrap() + 1;
    assert!(first.contains(&format!("stdlib/methods.rhai:{line}:")), "{shown}");
    assert!(first.contains("option 'batch_size'"), "{shown}");
    assert!(
        shown.contains("note: in call to function 'fine_tuning' at <test>:2:1"),
        "{shown}"
    );
}

/// A reproduction's SEEDS argument: parsed with spaces allowed, written back
/// as the argument that names them, and a part that is no integer is an
/// error naming it.
#[test]
fn seeds_arguments_round_trip_and_a_bad_seed_is_named() {
    let engine = promot::script::new_engine();
    let seeds = engine.eval::<rhai::Array>(r#"parse_seeds(" 21, 22,23 ")"#).unwrap();
    let seeds: Vec<i64> = seeds.into_iter().map(|d| d.as_int().unwrap()).collect();
    assert_eq!(seeds, [21, 22, 23]);
    let text = engine.eval::<String>(r#"seeds_text(parse_seeds("5,6,7"))"#).unwrap();
    assert_eq!(text, "5,6,7");
    let err = engine
        .eval::<Dynamic>(r#"parse_seeds("7,x8")"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'x8' is not an integer seed"), "{err}");
}
