//! The interactive REPL. `Repl` holds the session (variables, functions,
//! imported modules, unfinished input) and turns one line of input into an
//! `Outcome`; `run_terminal` is the thin rustyline loop around it (history,
//! tab completion, Ctrl-C, Ctrl-D). Keeping the two apart lets tests drive a
//! whole session from a list of lines.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, EvalAltResult, ParseError, ParseErrorType, Position, Scope, AST, INT};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use super::diagnostics::{eval_error, parse_error, Sources};
use super::tensor::reg;
use super::{help, interrupt, paths};

const PROMPT: &str = "promot> ";
const CONTINUE_PROMPT: &str = "   ...> ";
const HISTORY_FILE: &str = ".promot_history";

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "do", "until", "return", "break", "continue",
    "import", "export", "as", "true", "false", "switch", "throw", "try", "catch", "private", "this", "global", "exit",
    "quit", "vars", "help",
];

/// What the caller should do after one line of input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The input is unfinished: show the continuation prompt, send the next line.
    More,
    /// Finished; print this text (a value or command output) if not empty.
    Output(String),
    /// Finished with an error, already formatted (print to stderr).
    Error(String),
    /// The user asked to leave.
    Exit,
}

/// An interactive session.
pub struct Repl {
    engine: Engine,
    scope: Scope<'static>,
    /// Script functions defined so far; each input is merged in, then its
    /// statements are dropped again.
    functions: AST,
    /// Lines of an input that is not finished yet.
    pending: String,
    /// Empty lines typed while input is unfinished; two in a row force evaluation.
    blank_lines: usize,
    /// The last complete input, as evaluated (for the history).
    last_input: String,
    /// How many inputs were evaluated; input N is called `<repl N>` in errors.
    count: usize,
    sources: Sources,
    /// Words for tab completion that only change when modules are imported.
    function_names: Vec<String>,
}

/// `new_engine()` plus what the binary adds: `help()`, Ctrl-C checks, and
/// `import` resolution relative to `base_dir` then `stdlib/`. Module caching
/// is for scripts; the REPL turns it off so edited files are re-read.
pub fn full_engine(base_dir: &Path, cache_modules: bool) -> Engine {
    let mut engine = super::new_engine();
    register_exit(&mut engine);
    interrupt::install(&mut engine);
    engine.set_module_resolver(paths::ScriptResolver::new(base_dir, cache_modules));
    engine
}

/// Raised by `exit(code)`: ends a script with that exit status (or the REPL).
/// Rhai's own `exit` only ends the evaluation with a value, which a runner
/// cannot tell apart from a normal result, so promot replaces it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScriptExit(pub i64);

/// The exit status an error stands for, if it is an `exit(code)`.
pub fn exit_code(err: &EvalAltResult) -> Option<i64> {
    match err {
        EvalAltResult::ErrorTerminated(token, _) => token.read_lock::<ScriptExit>().map(|e| e.0),
        _ => None,
    }
}

fn register_exit(engine: &mut Engine) {
    let stop = |code: INT| -> Result<(), Box<EvalAltResult>> {
        Err(Box::new(EvalAltResult::ErrorTerminated(
            Dynamic::from(ScriptExit(code)),
            Position::NONE,
        )))
    };
    reg(
        engine,
        "exit",
        &["code: i64", "()"],
        "End the script now with this exit status (in the REPL: leave).",
        stop,
    );
    reg(
        engine,
        "exit",
        &["()"],
        "End the script now with status 0 (in the REPL: leave).",
        move || stop(0),
    );
}

impl Repl {
    /// A session on `engine` (see `full_engine`).
    pub fn new(engine: Engine) -> Self {
        let function_names = help::completion_names(&engine);
        Repl {
            engine,
            scope: Scope::new(),
            functions: AST::empty(),
            pending: String::new(),
            blank_lines: 0,
            last_input: String::new(),
            count: 0,
            sources: Sources::new(),
            function_names,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn scope_mut(&mut self) -> &mut Scope<'static> {
        &mut self.scope
    }

    /// True while an unfinished input waits for more lines.
    pub fn is_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The prompt for the next line.
    pub fn prompt(&self) -> &'static str {
        if self.is_pending() {
            CONTINUE_PROMPT
        } else {
            PROMPT
        }
    }

    /// Drop an unfinished input (Ctrl-C at the prompt).
    pub fn cancel(&mut self) {
        self.pending.clear();
        self.blank_lines = 0;
    }

    /// The last complete input (multi-line inputs joined with newlines).
    pub fn last_input(&self) -> &str {
        &self.last_input
    }

    /// Words tab completion offers: functions, variables, keywords.
    pub fn completion_words(&self) -> Vec<String> {
        let mut words = self.function_names.clone();
        words.extend(self.scope.iter_raw().map(|(name, ..)| name.to_string()));
        words.extend(self.functions.iter_functions().map(|f| f.name.to_string()));
        words.extend(KEYWORDS.iter().map(|k| k.to_string()));
        words.sort();
        words.dedup();
        words
    }

    /// Take one line (or a pasted block of lines) of input.
    pub fn handle_input(&mut self, line: &str) -> Outcome {
        if self.pending.is_empty() {
            if let Some(out) = self.command(line.trim()) {
                self.last_input = line.trim().to_string();
                return out;
            }
        }
        // A trailing backslash always continues the input.
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            self.pending.push_str(head);
            self.pending.push('\n');
            return Outcome::More;
        }
        self.pending.push_str(line);
        if line.trim().is_empty() {
            self.blank_lines += 1;
        } else {
            self.blank_lines = 0;
        }
        if self.pending.trim().is_empty() {
            self.cancel();
            return Outcome::Output(String::new());
        }
        if self.blank_lines < 2 && is_incomplete(&self.engine, &self.pending) {
            self.pending.push('\n');
            return Outcome::More;
        }
        let text = std::mem::take(&mut self.pending);
        self.blank_lines = 0;
        self.last_input = text.trim_end().to_string();
        self.eval(&text)
    }

    /// REPL commands typed as a bare word.
    fn command(&mut self, cmd: &str) -> Option<Outcome> {
        match cmd {
            "exit" | "quit" | "exit()" | "quit()" => Some(Outcome::Exit),
            "help" => Some(Outcome::Output(format!(
                "{}\nREPL: end a line with \\ or leave a bracket open to continue it; two empty lines run it anyway.\n\
                 `vars` lists variables and functions, `exit` or Ctrl-D quits, Ctrl-C stops a running command.",
                help::help_text(&self.engine, None)
            ))),
            "vars" => Some(Outcome::Output(self.describe_session())),
            _ => None,
        }
    }

    fn describe_session(&self) -> String {
        let mut lines = Vec::new();
        for (name, is_const, value) in self.scope.iter_raw() {
            let shown = show_value(&self.engine, value.clone());
            let first = shown.lines().next().unwrap_or("");
            let kind = if is_const { "const " } else { "" };
            lines.push(format!("{kind}{name} = {first}"));
        }
        for f in self.functions.iter_functions() {
            lines.push(format!("fn {}({})", f.name, f.params.join(", ")));
        }
        if lines.is_empty() {
            "no variables or functions defined yet".to_string()
        } else {
            lines.join("\n")
        }
    }

    fn eval(&mut self, text: &str) -> Outcome {
        self.count += 1;
        let name = format!("<repl {}>", self.count);
        self.sources.add(&name, text);
        let ast = match self.engine.compile_with_scope(&self.scope, text) {
            Ok(ast) => ast,
            Err(e) => return Outcome::Error(parse_error(&e, &name, text)),
        };
        self.sources.add_functions(&name, &ast);
        self.functions += ast;
        interrupt::clear_interrupt();
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.functions);
        interrupt::clear_interrupt();
        self.functions.clear_statements();
        // Modules imported by this input stay available to later inputs.
        for (path, alias) in find_imports(text) {
            self.keep_module(&path, &alias);
        }
        match result {
            Ok(v) if v.is_unit() => Outcome::Output(String::new()),
            Ok(v) => Outcome::Output(show_value(&self.engine, v)),
            Err(e) if exit_code(&e).is_some() => Outcome::Exit,
            Err(e) => {
                let mut msg = eval_error(&e, &name, &self.sources);
                if let Some(h) = help::hint(&self.engine, &e) {
                    msg = format!("{msg}\n{h}");
                }
                Outcome::Error(msg)
            }
        }
    }

    /// Register an imported module as a static module so `alias::f()` keeps
    /// working after the input that imported it.
    fn keep_module(&mut self, path: &str, alias: &str) {
        let resolved = self
            .engine
            .module_resolver()
            .resolve(&self.engine, None, path, Position::NONE);
        if let Ok(m) = resolved {
            self.engine.register_static_module(alias, m);
            self.function_names = help::completion_names(&self.engine);
        }
    }
}

/// How the REPL and `promot -e` show a value: the engine's `to_debug`, so a
/// tensor shows its shape and values and a string its quotes.
pub fn show_value(engine: &Engine, value: Dynamic) -> String {
    let fallback = format!("{value:?}");
    let mut scope = Scope::new();
    scope.push_dynamic("__value", value);
    engine
        .eval_with_scope::<String>(&mut scope, "to_debug(__value)")
        .unwrap_or(fallback)
}

/// `import "path" as alias` statements in `text` (a plain scan, good enough
/// for REPL input; strings and comments containing the words are skipped by
/// requiring a quote right after `import`).
fn find_imports(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("import") {
        let before_ok = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        rest = &rest[i + "import".len()..];
        if !before_ok {
            continue;
        }
        let r = rest.trim_start();
        let Some(r) = r.strip_prefix('"') else { continue };
        let Some(end) = r.find('"') else { continue };
        let path = &r[..end];
        let r = r[end + 1..].trim_start();
        let Some(r) = r.strip_prefix("as") else { continue };
        let alias: String = r
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !alias.is_empty() && r.starts_with(char::is_whitespace) {
            out.push((path.to_string(), alias));
        }
    }
    out
}

/// True when `text` is an unfinished input: an open bracket, an open
/// backtick string or block comment, or a syntax error at the very end.
pub fn is_incomplete(engine: &Engine, text: &str) -> bool {
    if open_delimiters(text) {
        return true;
    }
    match engine.compile(text) {
        Ok(_) => false,
        Err(ParseError(kind, pos)) => {
            matches!(*kind, ParseErrorType::UnexpectedEOF)
                || (at_end(text, pos) && !matches!(*kind, ParseErrorType::BadInput(_)))
        }
    }
}

/// Whether `pos` is past the last non-blank character of `text`.
fn at_end(text: &str, pos: Position) -> bool {
    let trimmed = text.trim_end();
    let last_line = trimmed.split('\n').count();
    let last_len = trimmed.split('\n').next_back().map_or(0, |l| l.chars().count());
    match (pos.line(), pos.position()) {
        (None, _) => true,
        (Some(l), _) if l > last_line => true,
        (Some(l), Some(c)) => l == last_line && c > last_len,
        _ => false,
    }
}

/// Scan for brackets left open, skipping strings, chars and comments.
/// A mismatched closer means the input is complete (and wrong): let the
/// parser report it.
fn open_delimiters(text: &str) -> bool {
    let mut stack = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' => stack.push(')'),
            '[' => stack.push(']'),
            '{' => stack.push('}'),
            ')' | ']' | '}' if stack.pop() != Some(c) => return false,
            ')' | ']' | '}' => {}
            '"' | '\'' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c || d == '\n' {
                        break;
                    }
                }
            }
            '`' => {
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == '`' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return true;
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut depth = 1;
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '/' && d == '*' {
                        depth += 1;
                        prev = ' ';
                        continue;
                    }
                    if prev == '*' && d == '/' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                        prev = ' ';
                        continue;
                    }
                    prev = d;
                }
                if depth > 0 {
                    return true;
                }
            }
            _ => {}
        }
    }
    !stack.is_empty()
}

/// Tab completion over the session's words.
struct ReplHelper {
    words: Arc<Mutex<Vec<String>>>,
}

impl Completer for ReplHelper {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        let words = self.words.lock().map(|w| w.clone()).unwrap_or_default();
        Ok(complete(&words, line, pos))
    }
}

/// Completions of the word ending at `pos` in `line`: where it starts, and
/// the `words` it could become. Inside `help("`, help's topics are offered too.
pub fn complete(words: &[String], line: &str, pos: usize) -> (usize, Vec<String>) {
    let head = line.get(..pos).unwrap_or("");
    let start = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(pos, |(i, _)| i);
    let word = &head[start..];
    let in_help = ["help(\"", "help('", "help(`"]
        .iter()
        .any(|open| head[..start].trim_end().ends_with(open));
    if word.is_empty() && !in_help {
        return (pos, Vec::new());
    }
    let mut pool: Vec<String> = if in_help { help::topic_names() } else { Vec::new() };
    pool.extend(words.iter().cloned());
    let mut found: Vec<String> = pool.into_iter().filter(|w| w.starts_with(word) && w != word).collect();
    if in_help {
        // Topics first, in help()'s order; then the functions.
        let topics = help::topic_names();
        let (mut first, rest): (Vec<String>, Vec<String>) = found.into_iter().partition(|w| topics.contains(w));
        if word.is_empty() {
            found = first;
        } else {
            first.extend(rest);
            found = first;
        }
        found.dedup();
    }
    (start, found)
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

/// The history file: `~/.promot_history` (or in the current directory when
/// there is no home).
pub fn history_path() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h).join(HISTORY_FILE),
        _ => PathBuf::from(HISTORY_FILE),
    }
}

/// Run the interactive loop on the terminal until `exit` or Ctrl-D.
pub fn run_terminal(mut repl: Repl) -> crate::Result<()> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(10_000)
        .map_err(|e| crate::Error::msg(e.to_string()))?
        .history_ignore_dups(true)
        .map_err(|e| crate::Error::msg(e.to_string()))?
        .build();
    let mut rl: Editor<ReplHelper, DefaultHistory> =
        Editor::with_config(config).map_err(|e| crate::Error::msg(format!("cannot start the line editor: {e}")))?;
    // After the editor: rustyline takes SIGINT for as long as it lives, and
    // Ctrl-C while a command runs must reach our handler instead. At the
    // prompt the terminal is raw, so Ctrl-C arrives as a key either way.
    interrupt::install_handler();
    let words = Arc::new(Mutex::new(repl.completion_words()));
    rl.set_helper(Some(ReplHelper { words: words.clone() }));
    let history = history_path();
    let _ = rl.load_history(&history);

    println!(
        "promot {} — Rhai REPL. help() lists the topics, help(\"topic\") their functions, help(\"name\") explains one; \
         Ctrl-D quits.",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        match rl.readline(repl.prompt()) {
            Ok(line) => {
                let outcome = repl.handle_input(&line);
                if outcome != Outcome::More && !repl.last_input().is_empty() {
                    let _ = rl.add_history_entry(repl.last_input());
                }
                match outcome {
                    Outcome::More => {}
                    Outcome::Output(s) if s.is_empty() => {}
                    Outcome::Output(s) => println!("{s}"),
                    Outcome::Error(e) => eprintln!("{e}"),
                    Outcome::Exit => break,
                }
                if let Ok(mut w) = words.lock() {
                    *w = repl.completion_words();
                }
            }
            // Ctrl-C at the prompt: drop the current input, stay in the session.
            Err(ReadlineError::Interrupted) => {
                repl.cancel();
                println!("^C");
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                let _ = rl.save_history(&history);
                return Err(crate::Error::msg(format!("reading input: {e}")));
            }
        }
    }
    let _ = rl.save_history(&history);
    Ok(())
}
