//! Every native function registered in the engine, called with malformed
//! arguments, must return (Ok or Err) and never panic or hang. The function
//! list comes from the engine's metadata, so functions registered later are
//! covered automatically. To cover a new custom type, add an expression that
//! builds one to FIXTURES.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use promot::script::help::{functions, FnDoc};
use promot::script::{interrupt, new_engine};
use rhai::{Dynamic, Engine, Scope};

/// Expressions that build a value of a custom type, by the type's script name.
const FIXTURES: &[(&str, &[&str])] = &[
    ("Tensor", &[
        "zeros([2, 3])",
        "ones([4])",
        "tensor(1.5)",
        "zeros([0])",
        "zeros([2, 0])",
        "ones([2, 3], \"f16\")",
        "ones([3], \"u8\")",
        "ones([3], \"i64\")",
        "tensor([[1, 2], [3, 4]]).argmax(1)",
        "randn([1, 2, 1, 3], 1)",
        "tensor([0.0, -1.0]).log()",
    ]),
    ("Model", &[concat!("load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-mt5\")")]),
    ("Prompt", &[concat!("soft_prompt(load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-mt5\"), 3, \"uniform\")")]),
    ("Results", &[concat!(
        "load_model(\"", env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-mt5\").evaluate(",
        "#{name: \"t\", metric: \"accuracy\", kind: \"classification\", max_new_tokens: 2, examples: [#{input: \"a\", target: \"True\"}]},",
        "#{shots: [0], quiet: true, cache: false})"
    )]),
];

/// Malformed values for a parameter type; "A|B" (a doc-only union) takes both.
fn pool_for(engine: &Engine, ty: &str) -> Vec<Dynamic> {
    ty.split('|')
        .flat_map(|t| pool_for_one(engine, &base_type(t)))
        .collect()
}

/// "&mut Model" -> "Model".
fn base_type(ty: &str) -> String {
    ty.trim()
        .trim_start_matches('&')
        .trim()
        .trim_start_matches("mut ")
        .trim()
        .to_string()
}

fn pool_for_one(engine: &Engine, ty: &str) -> Vec<Dynamic> {
    let e = |src: &str| engine.eval::<Dynamic>(src).ok();
    let exprs: &[&str] = match ty {
        "i64" | "int" | "INT" | "usize" | "i32" | "u64" => {
            &["0", "1", "-1", "2", "-7", "1 << 40", "9223372036854775807", "-9223372036854775807 - 1"]
        }
        "f64" | "float" | "FLOAT" | "f32" => &["0.5", "0.0", "-1.0", "1e300", "-1e300", "0.0 / 0.0", "1.0 / 0.0"],
        "number" => &["0", "-1", "9223372036854775807", "0.5", "-1e300", "0.0 / 0.0", "1.0 / 0.0"],
        "bool" => &["true", "false"],
        "Array" | "array" | "Vec<Dynamic>" => &[
            "[2, 3]",
            "[]",
            "[[1], [2, 3]]",
            "[\"x\"]",
            "[-1]",
            "[1 << 40, 1 << 40]",
            "[9223372036854775807]",
            "[0]",
            "[zeros([2])]",
            "[()]",
            "[1.5]",
            "[[]]",
            "[[1, 2], [3, 4]]",
        ],
        "String" | "str" | "ImmutableString" | "string" => {
            &["\"bogus\"", "\"\"", "\"f16\"", "\"cpu\"", "\"cuda\"", "\"/nonexistent_promot_dir/x\"", "\"*\"", "\"-1\""]
        }
        "Map" | "map" => &[
            "#{}",
            "#{a: 1}",
            "#{dtype: \"bogus\", device: \"tpu\", seed: -1, steps: -1, lr: -1.0, batch_size: 0, beams: 0, max_new_tokens: -1}",
            "#{steps: \"x\", lr: \"y\", prompt: 3, train: 5}",
        ],
        "FnPtr" | "Fn" => &["Fn(\"zeros\")", "|x| x"],
        _ => match FIXTURES.iter().find(|(name, _)| *name == ty) {
            Some((_, list)) => list,
            None => return Vec::new(),
        },
    };
    exprs.iter().filter_map(|s| e(s)).collect()
}

/// A few values of assorted types for parameters of unknown type.
fn mixed_pool(engine: &Engine) -> Vec<Dynamic> {
    let mut v = Vec::new();
    for ty in ["Tensor", "i64", "f64", "Array", "String", "Map", "Model"] {
        v.extend(pool_for(engine, ty).into_iter().take(4));
    }
    v.push(Dynamic::UNIT);
    v
}

/// The script text calling `f` with scope variables a0, a1, ...
fn call_text(f: &FnDoc, n: usize) -> Option<String> {
    let args: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let name = f.name.as_str();
    if let Some(prop) = name.strip_prefix("get$") {
        return (n == 1).then(|| format!("a0.{prop}"));
    }
    if let Some(prop) = name.strip_prefix("set$") {
        return (n == 2).then(|| format!("a0.{prop} = a1"));
    }
    if name == "index$get$" {
        return (n == 2).then(|| "a0[a1]".to_string());
    }
    if name == "index$set$" {
        return (n == 3).then(|| "a0[a1] = a2".to_string());
    }
    if f.is_plain_function() {
        return Some(format!("{name}({})", args.join(", ")));
    }
    match n {
        1 => Some(format!("{name} a0")),
        2 => Some(format!("a0 {name} a1")),
        _ => None,
    }
}

/// Outcome of one call: Ok(reached) when it returned (reached: the function
/// itself ran, rather than Rhai finding no overload for the argument types),
/// Err(description) when it panicked or hung.
fn call(engine: &Arc<Engine>, text: &str, args: &[Dynamic]) -> Result<bool, String> {
    let (tx, rx) = mpsc::channel();
    let engine = engine.clone();
    let text_owned = text.to_string();
    let args = args.to_vec();
    std::thread::spawn(move || {
        let mut scope = Scope::new();
        for (i, a) in args.into_iter().enumerate() {
            scope.push_dynamic(format!("a{i}"), a);
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            match engine.eval_with_scope::<Dynamic>(&mut scope, &text_owned) {
                Err(e) => !matches!(*e, rhai::EvalAltResult::ErrorFunctionNotFound(..)),
                Ok(_) => true,
            }
        }));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(reached)) => Ok(reached),
        Ok(Err(_)) => Err("panicked".into()),
        Err(_) => {
            // Ask Rust-side loops (training) to stop, as Ctrl-C would.
            interrupt::request_interrupt();
            std::thread::sleep(Duration::from_millis(500));
            interrupt::clear_interrupt();
            Err("did not return within 20 s".into())
        }
    }
}

fn describe(args: &[Dynamic]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|a| {
            let s = format!("{a:?}");
            if s.len() > 40 {
                format!("{}...", &s[..40])
            } else if s.contains("Tensor") || s.starts_with("candle") {
                a.type_name().to_string()
            } else {
                s
            }
        })
        .collect();
    parts.join(", ")
}

/// Small deterministic generator for argument combinations.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn no_registered_function_panics_on_malformed_arguments() {
    // Functions that write files get junk paths like "bogus": keep them out of the source tree.
    let scratch = std::env::temp_dir().join(format!("promot-no-panic-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    std::env::set_current_dir(&scratch).unwrap();
    // Anything a function writes for a bogus path lands in a scratch directory;
    // nothing may reach the network.
    let scratch = std::env::temp_dir().join(format!("promot-no-panic-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    std::env::set_current_dir(&scratch).unwrap();
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let quiet = std::env::var_os("PROMOT_TEST_SHOW_PANICS").is_none();
    if quiet {
        std::panic::set_hook(Box::new(|_| {}));
    }

    let mut engine = new_engine();
    promot::script::help::register(&mut engine);
    let engine = Arc::new(engine);
    let fns: Vec<FnDoc> = functions(&engine, false).into_iter().filter(|f| !f.is_script).collect();
    assert!(
        fns.len() > 50,
        "expected the tensor functions at least, found {}",
        fns.len()
    );

    let mixed = mixed_pool(&engine);
    let mut offenders = BTreeSet::new();
    let mut uncovered = BTreeSet::new();
    let mut calls = 0usize;
    let mut reached = 0usize;
    let mut rng = Lcg(12345);

    for f in &fns {
        let n = f.params.len();
        let Some(text) = call_text(f, n) else { continue };
        let pools: Vec<Vec<Dynamic>> = f
            .params
            .iter()
            .map(|(_, ty)| {
                let p = pool_for(&engine, ty);
                if p.is_empty() {
                    if !ty.is_empty() && ty != "?" && ty != "Dynamic" {
                        uncovered.insert(base_type(ty));
                    }
                    mixed.clone()
                } else {
                    p
                }
            })
            .collect();

        let mut arg_lists: Vec<Vec<Dynamic>> = Vec::new();
        let typical: Vec<Dynamic> = pools.iter().map(|p| p[0].clone()).collect();
        arg_lists.push(typical.clone());
        for (i, pool) in pools.iter().enumerate() {
            for v in pool.iter().chain(mixed.iter().take(6)).chain([Dynamic::UNIT].iter()) {
                let mut args = typical.clone();
                args[i] = v.clone();
                arg_lists.push(args);
            }
        }
        let longest = pools.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..longest {
            arg_lists.push(pools.iter().map(|p| p[k % p.len()].clone()).collect());
        }
        for _ in 0..30 {
            arg_lists.push(pools.iter().map(|p| p[rng.next(p.len())].clone()).collect());
        }

        for args in &arg_lists {
            calls += 1;
            match call(&engine, &text, args) {
                Ok(r) => reached += r as usize,
                Err(what) => {
                    offenders.insert(format!("{} [{text}] with ({}): {what}", f.signature, describe(args)));
                    if what.starts_with("did not return") {
                        break;
                    }
                }
            }
        }
    }
    if quiet {
        let _ = std::panic::take_hook();
    }
    eprintln!(
        "no_panic: {} functions, {calls} calls, {reached} reached the function",
        fns.len()
    );
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        reached * 3 > calls,
        "most calls never reached a function: check the value pools"
    );
    if !uncovered.is_empty() {
        eprintln!("no_panic: no fixture values for types {uncovered:?} (add them to FIXTURES); used mixed values");
    }
    assert!(
        offenders.is_empty(),
        "{} calls panicked or hung (rerun with PROMOT_TEST_SHOW_PANICS=1 for messages):\n{}",
        offenders.len(),
        offenders.into_iter().collect::<Vec<_>>().join("\n")
    );
}
