//! Error messages a script author can act on:
//!
//! ```text
//! error: train.rhai:12:9: matmul(Tensor[2, 3] f32, Tensor[4] f32): inner dimensions differ (3 vs 4)
//!    12 | let y = matmul(a, b);
//!       |         ^
//! note: in call to function 'step' at train.rhai:20:5
//! ```
//!
//! The first line is always `error: FILE:LINE:COL: message`. Errors raised
//! inside functions and imported modules are reported where they happened,
//! with one `note:` line per call on the way there.

use std::collections::HashMap;

use rhai::{EvalAltResult, ParseError, Position, AST};

/// The text of every file an error may point into. Script files are read from
/// disk on demand; REPL inputs, `-e` expressions and anything else without a
/// file are added by name.
#[derive(Default)]
pub struct Sources {
    texts: HashMap<String, String>,
    /// Which input defined each script function (the REPL keeps functions
    /// from earlier inputs, whose positions refer to those inputs).
    fn_files: HashMap<String, String>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember the text of `name` (a file or a pseudo-file like `<expr>`).
    pub fn add(&mut self, name: &str, text: &str) {
        self.texts.insert(name.to_string(), text.to_string());
    }

    /// Record that the functions defined in `ast` come from `name`.
    pub fn add_functions(&mut self, name: &str, ast: &AST) {
        for f in ast.iter_functions() {
            self.fn_files.insert(f.name.to_string(), name.to_string());
        }
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.texts.get(name) {
            Some(t) => Some(t.clone()),
            None => std::fs::read_to_string(name).ok(),
        }
    }
}

/// Format a syntax error in `text`, which came from `file`.
pub fn parse_error(err: &ParseError, file: &str, text: &str) -> String {
    let ParseError(kind, pos) = err;
    render(file, *pos, &format!("syntax error: {kind}"), Some(text), &[])
}

/// Format an evaluation error of code from `file`.
pub fn eval_error(err: &EvalAltResult, file: &str, sources: &Sources) -> String {
    let mut notes = Vec::new();
    let mut file = file.to_string();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                let what = if name.starts_with("anon$") {
                    "closure".to_string()
                } else {
                    format!("function '{name}'")
                };
                notes.push(format!("in call to {what} at {}", location(&file, *pos)));
                file = if !src.is_empty() && *src != file {
                    src.clone()
                } else {
                    sources.fn_files.get(name).cloned().unwrap_or(file)
                };
                e = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                notes.push(format!("in module '{path}' imported at {}", location(&file, *pos)));
                file = path.clone();
                e = inner;
            }
            _ => break,
        }
    }
    notes.reverse();
    let text = sources.text(&file);
    render(&file, e.position(), &message(e), text.as_deref(), &notes)
}

/// The message of a (leaf) error without Rhai's position suffix.
pub fn message(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(d, _) if d.is_string() => d.to_string(),
        EvalAltResult::ErrorTerminated(..) => "interrupted".to_string(),
        EvalAltResult::ErrorParsing(kind, _) => format!("syntax error: {kind}"),
        EvalAltResult::ErrorModuleNotFound(path, _) => format!(
            "module not found: \"{path}\" (looked next to the script, in the current directory and in {})",
            super::paths::stdlib_dir().display()
        ),
        _ => {
            let full = err.to_string();
            let suffix = format!(" ({})", err.position());
            let msg = full.strip_suffix(&suffix).unwrap_or(&full);
            lower_first(msg)
        }
    }
}

/// "Function not found" -> "function not found", leaving acronyms alone.
fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_lowercase() => {
            let mut out = a.to_ascii_lowercase().to_string();
            out.push_str(&s[1..]);
            out
        }
        _ => s.to_string(),
    }
}

/// "file:line:col", "file:line" or "file".
pub fn location(file: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

/// The error line, the source line with a caret under the column, then notes.
fn render(file: &str, pos: Position, msg: &str, text: Option<&str>, notes: &[String]) -> String {
    let mut out = format!("error: {}: {msg}", location(file, pos));
    if let (Some(line_no), Some(text)) = (pos.line(), text) {
        // split('\n') rather than lines(): keep a last empty line addressable.
        if let Some(line) = text.split('\n').nth(line_no.saturating_sub(1)) {
            let line = line.trim_end_matches('\r');
            let gutter = format!("{line_no:>5} | ");
            out.push('\n');
            out.push_str(&gutter);
            out.push_str(line);
            if let Some(col) = pos.position() {
                // Copy tabs from the line so the caret lines up under them.
                let pad: String = line
                    .chars()
                    .take(col.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&format!("\n{:>5} | {pad}^", ""));
            }
        }
    }
    for n in notes {
        out.push_str("\nnote: ");
        out.push_str(n);
    }
    out
}
