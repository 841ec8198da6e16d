//! A fuzz test of the script layer: programs generated from a fixed seed
//! compose the registered functions and promot's stdlib (stdlib/*.rhai) on the
//! tiny fixture models, feeding each call hostile values of every Rhai type
//! (NaN, ±inf, huge and negative ints, empty and non-ASCII strings, nested
//! arrays and maps, unit, zero-sized and misshapen tensors, prompts made for a
//! model of another width) and the results of earlier calls. `train`,
//! `evaluate`, `generate` and the methods get hostile but bounded options
//! (step counts, lengths and batch sizes small), so a program stays fast.
//!
//! Asserted for every call: it returns (no panic, no abort, no hang: each call
//! has a time limit and Rhai an operation limit), and an error it returns
//! carries a script position. A failing case is printed as a Rhai script that
//! reproduces it (also written under the target's tmp folder). An abort kills
//! the test process: the program that was running is then in
//! `target/tmp/fuzz-running.rhai`.
//!
//! Functions with process-wide state (the default device, templates, the
//! progress display) are left out so that each program reproduces alone, and
//! `data_path` (its paths point into the source tree, which the test checks
//! it leaves untouched); `no_panic.rs` covers them.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use promot::script::help::{functions, FnDoc};
use promot::script::{interrupt, new_engine};
use rhai::{Dynamic, Engine, EvalAltResult, Scope};

mod common;
use common::hostile::{base_type, call_text, exprs_for, scratch_dir, Lcg, TINY_LLAMA, TINY_MT5};

const SEED: u64 = 0x00c0_ffee_2026;
/// The test asserts at least this many calls ran...
const MIN_CALLS: usize = 10_000;
/// ...and stops generating at this many, or when the time budget is spent.
const MAX_CALLS: usize = 12_000;
const TIME_BUDGET: Duration = Duration::from_secs(160);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const STATEMENTS_PER_PROGRAM: usize = 40;
/// Rhai operations one statement may take (a script-level loop over a hostile value ends here).
const MAX_OPERATIONS: u64 = 2_000_000;

/// Functions whose effect outlives a program (process-wide settings), left out.
const GLOBAL_STATE: &[&str] = &[
    "device",
    "set_template",
    "reset_template",
    "progress_begin",
    "progress_end",
    "progress_advance",
    "progress_skip",
    "exit",
    // (not global, but it prints pages of text)
    "help",
    // (a path into promot's home, the source tree: a later save there would write into it)
    "data_path",
];

/// Calls that train, evaluate or generate: drawn more often than the rest.
const HEAVY: &[&str] = &[
    "train",
    "evaluate",
    "generate",
    "generate_scored",
    "gradients",
    "loss",
    "logits",
    "grad",
    "embed",
    "soft_prompt",
    "prompt_tuning",
    "fine_tuning",
    "promot",
    "promot_one_shot",
    "fine_tuning_one_shot",
    "joint_tuning",
    "fine_tuning_fixed_random_prompt",
    "random_prompt_tuning",
    "multitask_promot",
    "sequential_promot",
    "evaluate_method",
    "curve_recorder",
    "keep_best",
    "stage_opts",
    "new_prompt",
    "train_opts",
    "save",
    "load_prompt",
    "export_peft",
];

/// Every program starts with these: the tiny models, a model of another
/// width (its prompts are "made for another model"), prompts, data, a task.
fn preamble() -> Vec<(String, String)> {
    let toy = "#{d_model: 8, num_layers: 1, num_heads: 2, d_ff: 8, relative_attention_num_buckets: 4, relative_attention_max_distance: 8}";
    [
        ("m5", format!("load_model(\"{TINY_MT5}\")")),
        ("ml", format!("load_model(\"{TINY_LLAMA}\")")),
        ("mt", format!("new_toy_model({toy}, 1)")),
        ("p5", "soft_prompt(m5, 2, \"uniform\", \"target\", 1)".into()),
        ("pl", "soft_prompt(ml, 2, \"vocab\")".into()),
        ("pt", "soft_prompt(mt, 3, \"uniform\", \"target\")".into()),
        (
            "data",
            "[#{input: \"a b c\", target: \"True\"}, #{input: \"é 漢字 🙂\", target: \"False\"}, #{input: \"\", target: \"\"}]".into(),
        ),
        (
            "task",
            "#{name: \"target\", metric: \"accuracy\", kind: \"classification\", max_new_tokens: 2, examples: [#{input: \"x y\", target: \"True\"}, #{input: \"z\", target: \"False\"}]}".into(),
        ),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_string(), e))
    .collect()
}

/// Step counts, lengths, sizes: hostile, but never large enough to make a call slow.
const BOUNDED: &[&str] = &[
    "-1",
    "0",
    "1",
    "2",
    "3",
    "-9223372036854775807 - 1",
    "0.0 / 0.0",
    "1.0 / 0.0",
    "1.5",
    "\"2\"",
    "()",
    "[2]",
];
const BOUNDED_KEYS: &[&str] = &[
    "steps",
    "prompt_steps",
    "model_steps",
    "prompt_length",
    "max_new_tokens",
    "batch_size",
    "beams",
    "eval_every",
    "evaluations",
    "limit",
    "save_every",
    "max_input_len",
    "max_target_len",
];
/// Option keys of evaluate, generate, the methods and load_model (train's come from the engine).
const OTHER_KEYS: &[&str] = &[
    "shots",
    "prompt",
    "prompts",
    "length_penalty",
    "early_stopping",
    "seed",
    "probe",
    "separator",
    "cache",
    "task",
    "validation",
    "curve",
    "prompt_init",
    "dtype",
    "device",
    "train",
    "stop",
    "label",
];
/// More hostile values than the shared pools: non-ASCII and special-token
/// strings, deep and mixed containers, infinities, unit.
const EXTRA_STRINGS: &[&str] = &[
    "\"é 漢字 🙂 \u{202e}\"",
    "\"{input} {target}\"",
    "\"<extra_id_0> </s> <pad>\"",
    "\"\\n\\t\"",
    "\"ck\"",
    "\"ck/sub\"",
    "\"/proc/promot-cannot-write\"",
    "\"text:\"",
    "\"vocab\"",
    "\"uniform\"",
    "\"target\"",
];
const EXTRA_VALUES: &[&str] = &[
    "()",
    "-1.0 / 0.0",
    "-0.0",
    "5e-324",
    "[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
    "[(), #{}, \"x\", 1.5, -1, [0.0 / 0.0]]",
    "#{a: #{b: [#{c: ()}]}}",
    "#{\"\": (), \"é\": 1}",
    "[#{input: 1, target: ()}]",
    "[#{input: \"a\"}]",
    "#{target: [#{input: \"a\", target: \"b\"}], other: []}",
    "tensor(0.0 / 0.0)",
    "full([2, 2], 1.0 / 0.0)",
    "randn([3, 17], 2)",
    "zeros([0, 32])",
];

/// The kind of a parameter or value type, to match values to parameters.
fn kind(ty: &str) -> String {
    match base_type(ty).as_str() {
        "i64" | "int" | "INT" | "usize" | "i32" | "u64" => "int",
        "f64" | "float" | "FLOAT" | "f32" => "float",
        "Array" | "array" | "Vec<Dynamic>" => "array",
        "String" | "str" | "string" | "ImmutableString" => "string",
        "Map" | "map" => "map",
        "FnPtr" | "Fn" => "fn",
        "()" => "unit",
        other => return other.to_string(),
    }
    .to_string()
}

/// A variable made by an earlier statement, with its value's kind.
struct Var {
    name: String,
    kind: String,
}

/// One program's statements as generated, and what each did (for the repro).
struct Program {
    lines: Vec<String>,
}

impl Program {
    /// The program so far as a script: earlier statements that failed are
    /// wrapped in try/catch, so the script reaches the last one as the test did.
    fn script(&self, failed: &[bool]) -> String {
        let mut out =
            String::from("// Reproduces a tests/fuzz.rs failure; run in an empty folder: promot run repro.rhai\n");
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            if i < last && failed.get(i).copied().unwrap_or(false) {
                out.push_str(&format!("try {{ {} }} catch {{}}\n", strip_let(line)));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// "let v3 = f(x);" -> "f(x);" (the variable of a failed statement is never used).
fn strip_let(line: &str) -> String {
    match line.strip_prefix("let ").and_then(|l| l.split_once(" = ")) {
        Some((_, rest)) => rest.to_string(),
        None => line.to_string(),
    }
}

struct Gen<'a> {
    rng: Lcg,
    fns: &'a [FnDoc],
    heavy: Vec<usize>,
    train_keys: Vec<String>,
    vars: Vec<Var>,
}

impl Gen<'_> {
    fn var_of(&mut self, kind: &str) -> Option<String> {
        let names: Vec<&str> = self
            .vars
            .iter()
            .filter(|v| v.kind == kind)
            .map(|v| v.name.as_str())
            .collect();
        (!names.is_empty()).then(|| self.rng.pick(&names).to_string())
    }

    /// Anything at all: an earlier call's result, or a value of a random type.
    fn any(&mut self) -> String {
        if !self.vars.is_empty() && self.rng.chance(30) {
            let i = self.rng.next(self.vars.len());
            return self.vars[i].name.clone();
        }
        self.any_literal()
    }

    /// A hostile value of a random type, never a variable.
    fn any_literal(&mut self) -> String {
        let kinds = ["int", "float", "array", "string", "map", "Fn", "Tensor", "bool"];
        let k = self.rng.pick(&kinds).to_string();
        let mut pool = exprs_for(&k);
        pool.extend(EXTRA_VALUES);
        self.rng.pick(&pool).to_string()
    }

    fn bounded(&mut self) -> String {
        self.rng.pick(BOUNDED).to_string()
    }

    fn string(&mut self) -> String {
        let mut pool = exprs_for("String");
        pool.extend(EXTRA_STRINGS);
        self.rng.pick(&pool).to_string()
    }

    /// Training data: an array of #{input, target} (hostile strings, missing
    /// or mistyped fields), a task -> examples map, or the preamble's data.
    fn data(&mut self) -> String {
        match self.rng.next(6) {
            0 => "data".into(),
            1 => format!("#{{target: data, other: {}}}", self.data_array()),
            2 => self.any(),
            _ => self.data_array(),
        }
    }

    fn data_array(&mut self) -> String {
        let n = self.rng.next(4);
        let items: Vec<String> = (0..n)
            .map(|_| match self.rng.next(8) {
                0 => "()".into(),
                1 => format!("#{{input: {}}}", self.string()),
                2 => format!("#{{input: {}, target: {}}}", self.any(), self.any()),
                _ => format!("#{{input: {}, target: {}}}", self.string(), self.string()),
            })
            .collect();
        format!("[{}]", items.join(", "))
    }

    /// A task map for evaluate (few examples, bounded lengths), or a toy task.
    fn task(&mut self) -> String {
        match self.rng.next(5) {
            0 => "task".into(),
            1 => format!(
                "toy_task({}, {}, {})",
                self.rng
                    .pick(&["\"rte\"", "\"en_fr\"", "\"triviaqa\"", "\"bogus\"", "\"\""]),
                self.rng.pick(&["0", "1", "2", "-1"]),
                self.rng.pick(&["0", "-1", "9223372036854775807"])
            ),
            2 => self.any_literal(),
            _ => format!(
                "#{{name: {}, metric: {}, kind: {}, max_new_tokens: {}, examples: {}}}",
                self.string(),
                self.rng.pick(&[
                    "\"accuracy\"",
                    "\"bleu\"",
                    "\"rouge2\"",
                    "\"exact_match\"",
                    "\"bogus\"",
                    "3",
                    "()"
                ]),
                self.rng.pick(&["\"classification\"", "\"generation\"", "\"x\"", "()"]),
                self.bounded(),
                self.data_array()
            ),
        }
    }

    /// Tasks for evaluate: never a variable (an earlier call may have made
    /// the paper's real tasks, thousands of examples long).
    fn tasks(&mut self) -> String {
        if self.rng.chance(10) {
            return self
                .rng
                .pick(&["()", "[]", "[()]", "#{}", "\"rte\"", "[[]]", "[1]"])
                .to_string();
        }
        let n = self.rng.next(3);
        let items: Vec<String> = (0..n).map(|_| self.task()).collect();
        format!("[{}]", items.join(", "))
    }

    /// Options for train, evaluate, generate, the methods: every size key
    /// bounded, then a few keys with hostile values.
    fn options(&mut self) -> String {
        if self.rng.chance(5) {
            // Not a map at all (a map without the size keys could ask for long work).
            let not_maps = ["()", "5", "\"steps\"", "[#{steps: 1}]", "0.0 / 0.0", "zeros([0])"];
            return self.rng.pick(&not_maps).to_string();
        }
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for key in BOUNDED_KEYS {
            map.insert(key.to_string(), self.rng.pick(&["1", "1", "2"]).to_string());
        }
        map.insert("quiet".into(), "true".into());
        map.insert("cache".into(), "false".into());
        for _ in 0..self.rng.next(6) {
            let key = if self.rng.chance(50) {
                self.rng.pick(&self.train_keys).clone()
            } else {
                self.rng.pick(OTHER_KEYS).to_string()
            };
            let value = if BOUNDED_KEYS.contains(&key.as_str()) {
                self.bounded()
            } else {
                match key.as_str() {
                    "prompt" => self.var_of("Prompt").unwrap_or_else(|| self.any()),
                    "validation" => self.task(),
                    "checkpoint_dir" | "run_dir" | "separator" | "label" | "task" | "prompt_init" => self.string(),
                    "shots" => self
                        .rng
                        .pick(&["[0]", "[1]", "[0, 4]", "[-1]", "[1 << 40]", "[]", "[()]", "1"])
                        .to_string(),
                    "quiet" => "true".into(),
                    _ => self.any(),
                }
            };
            map.insert(key, value);
        }
        let body: Vec<String> = map.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("#{{{}}}", body.join(", "))
    }

    /// An argument for a parameter: by the parameter's name where it says
    /// what it is (data, options, tasks, a model), else by its type.
    fn arg(&mut self, fname: &str, pname: &str, ty: &str) -> String {
        let k = kind(ty);
        if matches!(pname, "opts" | "o" | "options" | "extra") && k != "Model" {
            return self.options();
        }
        if pname == "tasks" {
            return self.tasks();
        }
        // Sizes: small, or extreme enough to be refused at once; never an
        // earlier result (a parameter count as n makes a legitimately long call).
        if matches!(pname, "steps" | "n" | "k" | "length" | "units" | "total" | "k_max") {
            return if self.rng.chance(70) {
                self.bounded()
            } else {
                self.rng
                    .pick(&["-1", "1 << 40", "9223372036854775807", "-9223372036854775807 - 1"])
                    .to_string()
            };
        }
        if pname == "shape" {
            // Literal shapes only: an earlier result (token ids) as a shape can
            // ask for gigabytes, legitimately slow rather than hostile.
            return self.rng.pick(&exprs_for("Array")).to_string();
        }
        if self.rng.chance(10) {
            return self.any();
        }
        match pname {
            "data" | "examples" => return self.data(),
            "model" | "m" if k == "Model" || k.is_empty() || k == "?" => {
                return self.var_of("Model").unwrap_or_else(|| "m5".into())
            }
            "stage" => return format!("#{{steps: {}, label: {}}}", self.bounded(), self.string()),
            _ => {}
        }
        if fname == "train" && k == "array" {
            return self.data();
        }
        if let Some(v) = (self.rng.chance(50)).then(|| self.var_of(&k)).flatten() {
            return v;
        }
        let mut pool = exprs_for(ty);
        if k == "string" {
            pool.extend(EXTRA_STRINGS);
        }
        if pool.is_empty() || self.rng.chance(10) {
            pool.extend(EXTRA_VALUES);
        }
        if matches!(k.as_str(), "Model" | "Prompt") {
            // The preamble's models and prompts, not fresh loads each time.
            return self.var_of(&k).unwrap_or_else(|| self.any());
        }
        self.rng.pick(&pool).to_string()
    }

    /// One statement: a call of a (mostly heavy) function, its result in `var`.
    fn statement(&mut self, var: &str) -> Option<(String, bool)> {
        let i = if self.rng.chance(12) {
            *self.rng.pick(&self.heavy)
        } else {
            self.rng.next(self.fns.len())
        };
        let fns = self.fns;
        let f = &fns[i];
        let args: Vec<String> = f
            .params
            .iter()
            .map(|(pname, ty)| self.arg(&f.name, pname, ty))
            .collect();
        let text = call_text(f, &args)?;
        if f.name.starts_with("set$") || f.name == "index$set$" {
            // An assignment: its target must be a variable.
            return self
                .vars
                .iter()
                .any(|v| v.name == args[0])
                .then(|| (format!("{text};"), false));
        }
        Some((format!("let {var} = {text};"), true))
    }
}

/// What one statement did.
enum Outcome {
    /// It returned a value of this kind (None: it made no variable).
    Ok(Option<String>),
    /// It returned an error: the error, and whether Rhai found no such function.
    Err(Box<EvalAltResult>),
    Panicked(String),
}

/// The last panic's message and location (the hook records it, quietly).
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Runs one program's statements in a scope of its own, on its own thread.
struct Worker {
    tx: mpsc::Sender<(String, Option<String>)>,
    rx: mpsc::Receiver<Outcome>,
}

impl Worker {
    fn start(engine: Arc<Engine>) -> Worker {
        let (tx, jobs) = mpsc::channel::<(String, Option<String>)>();
        let (done, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut scope = Scope::new();
            for (text, var) in jobs {
                let r = catch_unwind(AssertUnwindSafe(|| engine.run_with_scope(&mut scope, &text)));
                let outcome = match r {
                    Ok(Ok(())) => Outcome::Ok(var.and_then(|v| {
                        scope
                            .get(&v)
                            .map(|d: &Dynamic| kind(engine.map_type_name(d.type_name())))
                    })),
                    Ok(Err(e)) => Outcome::Err(e),
                    Err(_) => Outcome::Panicked(LAST_PANIC.lock().map(|s| s.clone()).unwrap_or_default()),
                };
                let stop = matches!(outcome, Outcome::Panicked(_));
                if done.send(outcome).is_err() || stop {
                    break;
                }
            }
        });
        Worker { tx, rx }
    }

    fn run(&self, text: &str, var: Option<&str>) -> Option<Outcome> {
        self.tx.send((text.to_string(), var.map(str::to_string))).ok()?;
        self.rx.recv_timeout(CALL_TIMEOUT).ok()
    }
}

#[derive(Default)]
struct Tally {
    calls: usize,
    reached: usize,
    errors: usize,
    programs: usize,
    failures: Vec<String>,
}

fn report(tally: &mut Tally, what: &str, program: &Program, failed: &[bool]) {
    let script = program.script(failed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("fuzz-failure-{}.rhai", tally.failures.len() + 1));
    let _ = std::fs::write(&path, &script);
    tally.failures.push(format!(
        "{what}\n(reproduce: {}, written to {})\n{script}",
        program.lines.last().map(String::as_str).unwrap_or(""),
        path.display()
    ));
}

/// Run one generated program; false when the fuzz should stop (a hang).
fn run_program(engine: &Arc<Engine>, gen: &mut Gen, tally: &mut Tally, running: &Path, scratch: &Path) -> bool {
    let worker = Worker::start(engine.clone());
    let mut program = Program { lines: Vec::new() };
    let mut failed = Vec::new();
    gen.vars.clear();
    for (name, expr) in preamble() {
        let line = format!("let {name} = {expr};");
        program.lines.push(line.clone());
        match worker.run(&line, Some(&name)) {
            Some(Outcome::Ok(Some(k))) => gen.vars.push(Var { name, kind: k }),
            _ => {
                report(tally, "the preamble failed", &program, &failed);
                return false;
            }
        }
        failed.push(false);
    }
    for s in 0..STATEMENTS_PER_PROGRAM {
        let var = format!("v{s}");
        let Some((line, binds)) = gen.statement(&var) else {
            continue;
        };
        program.lines.push(line.clone());
        let _ = std::fs::write(running, program.script(&failed));
        tally.calls += 1;
        let outcome = worker.run(&line, binds.then_some(var.as_str()));
        if std::env::current_dir().ok().as_deref() != Some(scratch) {
            report(tally, "the working directory changed", &program, &failed);
            return false;
        }
        match outcome {
            None => {
                interrupt::request_interrupt();
                report(
                    tally,
                    &format!("did not return within {CALL_TIMEOUT:?}"),
                    &program,
                    &failed,
                );
                std::thread::sleep(Duration::from_secs(1));
                interrupt::clear_interrupt();
                return false;
            }
            Some(Outcome::Panicked(msg)) => {
                report(tally, &format!("panicked: {msg}"), &program, &failed);
                return true;
            }
            Some(Outcome::Ok(k)) => {
                tally.reached += 1;
                failed.push(false);
                if let Some(k) = k {
                    gen.vars.push(Var { name: var, kind: k });
                }
            }
            Some(Outcome::Err(e)) => {
                tally.errors += 1;
                if !matches!(*e, EvalAltResult::ErrorFunctionNotFound(..)) {
                    tally.reached += 1;
                }
                if e.position().is_none() {
                    report(tally, &format!("an error without a position: {e}"), &program, &failed);
                }
                failed.push(true);
            }
        }
    }
    true
}

#[test]
fn generated_programs_never_panic_hang_or_lose_the_error_position() {
    let scratch = scratch_dir("fuzz").canonicalize().unwrap();
    std::env::set_current_dir(&scratch).unwrap();
    let source_tree = || -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(env!("CARGO_MANIFEST_DIR"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        names
    };
    let tree_before = source_tree();
    std::env::set_var("PROMOT_CACHE", scratch.join("cache"));
    std::env::set_var("HF_HUB_OFFLINE", "1");
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = info.to_string();
        }
    }));

    let mut engine = new_engine();
    promot::script::help::register(&mut engine);
    interrupt::install(&mut engine);
    engine.set_max_operations(MAX_OPERATIONS);
    let engine = Arc::new(engine);
    let fns: Vec<FnDoc> = functions(&engine, false)
        .into_iter()
        .filter(|f| {
            let base = f.name.rsplit("::").next().unwrap_or(&f.name);
            !GLOBAL_STATE.contains(&base)
        })
        .collect();
    let heavy: Vec<usize> = (0..fns.len())
        .filter(|&i| HEAVY.contains(&fns[i].name.as_str()))
        .collect();
    assert!(heavy.len() >= 20, "the heavy functions were not all found: {heavy:?}");
    let train_keys: Vec<String> = engine
        .eval::<rhai::Array>("train_option_names()")
        .unwrap()
        .into_iter()
        .map(|k| k.to_string())
        .collect();
    let mut gen = Gen {
        rng: Lcg(SEED),
        fns: &fns,
        heavy,
        train_keys,
        vars: Vec::new(),
    };

    let running = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-running.rhai");
    let mut tally = Tally::default();
    let start = Instant::now();
    while tally.calls < MAX_CALLS && start.elapsed() < TIME_BUDGET {
        tally.programs += 1;
        if !run_program(&engine, &mut gen, &mut tally, &running, &scratch) {
            break;
        }
    }
    let _ = std::panic::take_hook();
    eprintln!(
        "fuzz: {} programs, {} calls in {:.0?} ({} reached a function, {} returned an error), {} failures",
        tally.programs,
        tally.calls,
        start.elapsed(),
        tally.reached,
        tally.errors,
        tally.failures.len()
    );
    let _ = std::fs::remove_file(&running);
    let stray: Vec<_> = source_tree().into_iter().filter(|p| !tree_before.contains(p)).collect();
    assert!(stray.is_empty(), "the fuzz wrote into the source tree: {stray:?}");
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        tally.failures.is_empty(),
        "{} failing calls:\n\n{}",
        tally.failures.len(),
        tally.failures.join("\n\n")
    );
    assert!(
        tally.calls >= MIN_CALLS,
        "only {} calls in {TIME_BUDGET:?}: the fuzz must make at least {MIN_CALLS}",
        tally.calls
    );
    assert!(
        tally.reached * 2 > tally.calls,
        "most calls never reached a function ({} of {}): check the generators",
        tally.reached,
        tally.calls
    );
}
