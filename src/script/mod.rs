//! The Rhai layer: every library feature a script can reach is registered here,
//! one file per area. Functions are registered with a signature and a one-line
//! doc so that `help()` and tab completion can show them.

use rhai::{Engine, EvalAltResult, Position};

pub mod diagnostics;
pub mod eval;
pub mod help;
pub mod interrupt;
pub mod model;
pub mod options;
pub mod paths;
pub mod plot;
pub mod progress;
pub mod record;
pub mod repl;
pub mod tensor;
pub mod toy;
pub mod train;

/// Errors crossing into Rhai become runtime errors at the call site.
pub fn to_rhai<E: std::fmt::Display>(e: E) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(e.to_string().into(), Position::NONE))
}

pub type RResult<T> = std::result::Result<T, Box<EvalAltResult>>;

/// The library's errors cross with `?` as `to_rhai` makes them.
impl From<crate::Error> for Box<EvalAltResult> {
    fn from(e: crate::Error) -> Self {
        to_rhai(e)
    }
}

/// Build the engine with every promot function registered and the Rhai
/// standard library (stdlib/*.rhai) loaded as global functions.
pub fn new_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_max_expr_depths(256, 256);
    tensor::register(&mut engine);
    model::register(&mut engine);
    train::register(&mut engine);
    toy::register(&mut engine);
    eval::register(&mut engine);
    plot::register(&mut engine);
    progress::register(&mut engine);
    record::register(&mut engine);
    help::register(&mut engine);
    if let Err(e) = load_stdlib(&mut engine) {
        eprintln!("warning: promot's stdlib did not load: {e}");
    }
    engine
}

/// Compile every stdlib/*.rhai file (in name order) into a module of its own
/// whose functions every script can call directly, e.g. `promot(model, data,
/// #{})`. One module per file, so an error inside a stdlib function names the
/// file it is in (a merged AST carries one source for all of them).
pub fn load_stdlib(engine: &mut Engine) -> Result<(), String> {
    let dir = paths::stdlib_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let mut ast = engine
            .compile(&text)
            .map_err(|e| format!("{}:{}: {e}", f.display(), e.1))?;
        ast.set_source(f.display().to_string());
        let module = rhai::Module::eval_ast_as_new(rhai::Scope::new(), &ast, engine)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        engine.register_global_module(module.into());
    }
    Ok(())
}
