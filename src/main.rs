//! The `promot` command: a REPL, a script runner and a one-line evaluator,
//! all on the same Rhai engine (`promot::script`).
//!
//!   promot                      start the REPL
//!   promot run FILE [ARGS...]   run a script; ARGS is a global array of strings
//!   promot FILE.rhai [ARGS...]  the same (for `#!/usr/bin/env promot` scripts)
//!   promot -e 'EXPR'            evaluate, print the value (if not unit), exit
//!
//! `--device cuda|cpu|metal` puts models and the tensors scripts make on that
//! device (as a script's `device(NAME)` does); a device this binary or this
//! machine lacks is an error before anything runs.
//!
//! Any error exits non-zero after printing `error: FILE:LINE:COL: message`,
//! the source line and a caret. Ctrl-C stops a script with exit code 130.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Scope};

use promot::script::diagnostics::{eval_error, parse_error, Sources};
use promot::script::repl::{exit_code, full_engine, run_terminal, show_value, Repl};
use promot::script::{help, interrupt};

#[derive(Parser)]
#[command(
    name = "promot",
    version,
    about = "ProMoT research environment: a Rhai REPL and script runner for prompt tuning + model tuning"
)]
struct Cli {
    /// Evaluate EXPR (a Rhai expression or statements), print the value and exit.
    #[arg(short = 'e', long = "eval", value_name = "EXPR")]
    eval: Option<String>,

    /// CPU threads for tensor work (default: the cores idle at start-up,
    /// one per core on a quiet machine; sets
    /// RAYON_NUM_THREADS, and the BLAS matmul splits its products into as
    /// many tasks). candle's elementwise pool stays at 1 unless
    /// CANDLE_NUM_THREADS is set: its spin-waits cost more than they gain
    /// on a busy machine.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,

    /// The default device: where load_model and new_toy_model put models and
    /// where the tensors a script makes live ("cpu", "cuda" or "metal"; a
    /// script's device(NAME) changes it). CUDA needs a binary built with it
    /// (scripts/build-cuda.sh) and an NVIDIA GPU.
    #[arg(long, global = true, value_name = "NAME", default_value = "cpu")]
    device: String,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Rhai script. Its arguments are visible to it as the array ARGS.
    Run {
        /// The script file.
        file: PathBuf,
        /// Arguments passed to the script (as strings in ARGS).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Start the interactive REPL (the default with no arguments).
    Repl,
    #[command(external_subcommand)]
    Script(Vec<String>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any tensor work: the pools read their sizes once, when they start.
    if let Some(note) = promot::device::init_cpu(cli.threads) {
        eprintln!("{note}");
    }
    if let Err(e) = promot::device::set_default(&cli.device) {
        eprintln!("error: --device {}: {e}", cli.device);
        return ExitCode::from(2);
    }
    if let Some(expr) = cli.eval {
        return eval_expr(&expr);
    }
    match cli.command {
        None | Some(Command::Repl) => repl(),
        Some(Command::Run { file, args }) => run_script(&file, args),
        Some(Command::Script(words)) => match words.split_first() {
            Some((file, args)) if Path::new(file).is_file() => run_script(Path::new(file), args.to_vec()),
            Some((word, _)) => {
                eprintln!("error: unknown command or missing script '{word}' (see promot --help)");
                ExitCode::from(2)
            }
            None => repl(),
        },
    }
}

fn repl() -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut repl = Repl::new(full_engine(&cwd, false));
    repl.scope_mut().push_constant("ARGS", Array::new());
    match run_terminal(repl) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code for an error that ended a script: `exit(n)` gives n,
/// Ctrl-C 130, anything else 1 (after printing it).
fn report(engine: &Engine, err: &EvalAltResult, file: &str, sources: &Sources) -> ExitCode {
    if let Some(code) = exit_code(err) {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    match err {
        EvalAltResult::ErrorTerminated(..) => {
            eprintln!("{}", eval_error(err, file, sources));
            ExitCode::from(130)
        }
        _ => {
            eprintln!("{}", eval_error(err, file, sources));
            if let Some(h) = help::hint(engine, err) {
                eprintln!("{h}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run_script(path: &Path, args: Vec<String>) -> ExitCode {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {file}: cannot read script: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    interrupt::install_handler();
    let engine = full_engine(&base, true);
    let mut ast = match engine.compile(without_shebang(&text)) {
        Ok(ast) => ast,
        Err(e) => {
            eprintln!("{}", parse_error(&e, &file, &text));
            return ExitCode::FAILURE;
        }
    };
    ast.set_source(file.clone());
    let mut sources = Sources::new();
    sources.add(&file, &text);
    sources.add_functions(&file, &ast);
    let mut scope = Scope::new();
    let args: Array = args.into_iter().map(Dynamic::from).collect();
    scope.push_constant("ARGS", args);
    match engine.run_ast_with_scope(&mut scope, &ast) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&engine, &e, &file, &sources),
    }
}

/// A `#!` first line is for the OS, not Rhai: blank it, keeping line numbers.
fn without_shebang(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with("#!") {
        let rest = text.find('\n').map_or("", |i| &text[i..]);
        std::borrow::Cow::Owned(rest.to_string())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn eval_expr(expr: &str) -> ExitCode {
    let file = "<expr>";
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    interrupt::install_handler();
    let engine = full_engine(&cwd, true);
    let ast = match engine.compile(expr) {
        Ok(ast) => ast,
        Err(e) => {
            eprintln!("{}", parse_error(&e, file, expr));
            return ExitCode::FAILURE;
        }
    };
    let mut sources = Sources::new();
    sources.add(file, expr);
    sources.add_functions(file, &ast);
    let mut scope = Scope::new();
    scope.push_constant("ARGS", Array::new());
    match engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast) {
        Ok(v) => {
            if !v.is_unit() {
                println!("{}", show_value(&engine, v));
            }
            ExitCode::SUCCESS
        }
        Err(e) => report(&engine, &e, file, &sources),
    }
}
