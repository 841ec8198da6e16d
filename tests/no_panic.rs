//! Every native function registered in the engine, called with malformed
//! arguments, must return (Ok or Err) and never panic or hang. The function
//! list comes from the engine's metadata, so functions registered later are
//! covered automatically. To cover a new custom type, add an expression that
//! builds one to FIXTURES (tests/common/hostile.rs, shared with tests/fuzz.rs).

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use promot::script::help::{functions, FnDoc};
use promot::script::{interrupt, new_engine};
use rhai::{Dynamic, Engine, Scope};

mod common;
use common::hostile::{base_type, call_text, exprs_for, scratch_dir, Lcg};

/// Malformed values for a parameter type (the shared pools, evaluated).
fn pool_for(engine: &Engine, ty: &str) -> Vec<Dynamic> {
    exprs_for(ty)
        .into_iter()
        .filter_map(|src| engine.eval::<Dynamic>(src).ok())
        .collect()
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

#[test]
fn no_registered_function_panics_on_malformed_arguments() {
    // Anything a function writes for a bogus path lands in a scratch directory,
    // out of the source tree; nothing may reach the network.
    let scratch = scratch_dir("no-panic");
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
        let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
        let Some(text) = call_text(f, &names) else { continue };
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
