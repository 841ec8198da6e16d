//! `help()` and `help("name")`: signatures and docs of the registered
//! functions, read from the engine's own metadata, so every function
//! registered with `FuncRegistration::with_comments` documents itself.

use rhai::{Engine, FuncRegistration, NativeCallContext};
use serde_json::Value;

/// One registered function (one overload).
#[derive(Debug, Clone)]
pub struct FnDoc {
    /// Name as called from scripts, with a module prefix (`m::f`) if any.
    pub name: String,
    /// e.g. `zeros(shape: Array) -> Tensor`.
    pub signature: String,
    /// Doc comment text without the `///` markers; may be empty.
    pub doc: String,
    /// (parameter name, type name); either may be unknown ("").
    pub params: Vec<(String, String)>,
    /// Written in Rhai (promot's stdlib) rather than registered from Rust.
    pub is_script: bool,
}

impl FnDoc {
    /// The first line of the doc comment.
    pub fn summary(&self) -> &str {
        self.doc.lines().next().unwrap_or("")
    }

    /// Operators, property getters/setters and indexers are called with
    /// syntax rather than by name.
    pub fn is_plain_function(&self) -> bool {
        let base = self.name.rsplit("::").next().unwrap_or(&self.name);
        base.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && base.chars().all(|c| c.is_alphanumeric() || c == '_')
    }
}

/// Every function registered in `engine` (promot's, or also Rhai's standard
/// library when `include_std`), sorted by name.
pub fn functions(engine: &Engine, include_std: bool) -> Vec<FnDoc> {
    let mut out = Vec::new();
    if let Ok(json) = engine.gen_fn_metadata_to_json(include_std) {
        if let Ok(v) = serde_json::from_str::<Value>(&json) {
            collect(&v, "", &mut out);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.signature.cmp(&b.signature)));
    out
}

fn collect(module: &Value, prefix: &str, out: &mut Vec<FnDoc>) {
    if let Some(fns) = module.get("functions").and_then(Value::as_array) {
        for f in fns {
            let name = f.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let signature = f.get("signature").and_then(Value::as_str).unwrap_or(&name).to_string();
            let doc = f
                .get("docComments")
                .and_then(Value::as_array)
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(Value::as_str)
                        .map(strip_comment)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            let params = f
                .get("params")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                            (s("name"), s("type"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(FnDoc {
                name: format!("{prefix}{name}"),
                signature: format!("{prefix}{signature}"),
                doc: doc.trim().to_string(),
                params,
                is_script: f.get("type").and_then(Value::as_str) == Some("script"),
            });
        }
    }
    if let Some(mods) = module.get("modules").and_then(Value::as_object) {
        for (name, m) in mods {
            collect(m, &format!("{prefix}{name}::"), out);
        }
    }
}

/// "/// text" -> "text" (also handles `/** */` blocks), per line.
fn strip_comment(c: &str) -> String {
    let c = c.trim();
    let c = c.strip_prefix("/**").and_then(|c| c.strip_suffix("*/")).unwrap_or(c);
    c.lines()
        .map(|l| {
            let l = l.trim();
            l.strip_prefix("///")
                .or_else(|| l.strip_prefix('*'))
                .unwrap_or(l)
                .trim()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every name worth completing in the REPL: plain functions (promot's and
/// Rhai's standard library), deduplicated and sorted.
pub fn completion_names(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = functions(engine, true)
        .into_iter()
        .filter(FnDoc::is_plain_function)
        .map(|f| f.name)
        .collect();
    names.dedup();
    names
}

/// The text `help()` (topic None) or `help("topic")` prints.
pub fn help_text(engine: &Engine, topic: Option<&str>) -> String {
    let own = functions(engine, false);
    let Some(topic) = topic.map(str::trim).filter(|t| !t.is_empty()) else {
        return overview(&own);
    };
    let exact = |list: &[FnDoc]| -> Vec<FnDoc> {
        list.iter()
            .filter(|f| f.name == topic || f.name == format!("get${topic}") || f.name.ends_with(&format!("::{topic}")))
            .cloned()
            .collect()
    };
    let mut found = exact(&own);
    if found.is_empty() {
        found = exact(&functions(engine, true));
    }
    if !found.is_empty() {
        let mut out = String::new();
        for f in found {
            let sig = f.signature.replacen("get$", "(property) ", 1);
            out.push_str(&sig);
            out.push('\n');
            for line in f.doc.lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
        return out.trim_end().to_string();
    }
    let needle = topic.to_lowercase();
    let mut related: Vec<String> = own
        .iter()
        .filter(|f| f.is_plain_function())
        .filter(|f| f.name.to_lowercase().contains(&needle) || f.doc.to_lowercase().contains(&needle))
        .map(|f| f.name.clone())
        .collect();
    related.dedup();
    if related.is_empty() {
        format!("no function named '{topic}'; help() lists them all")
    } else {
        format!("no function named '{topic}'; related: {}", related.join(", "))
    }
}

fn overview(own: &[FnDoc]) -> String {
    let plain: Vec<&FnDoc> = own.iter().filter(|f| f.is_plain_function()).collect();
    let width = plain.iter().map(|f| f.signature.len()).max().unwrap_or(0).min(56);
    let mut out = String::from("promot functions (help(\"name\") shows one in full):\n");
    for f in &plain {
        out.push_str(&format!("  {:<width$}  {}\n", f.signature, f.summary()));
    }
    let mut props: Vec<&str> = own.iter().filter_map(|f| f.name.strip_prefix("get$")).collect();
    props.dedup();
    if !props.is_empty() {
        out.push_str(&format!("properties (x.name): {}\n", props.join(", ")));
    }
    let mut ops: Vec<&str> = own
        .iter()
        .filter(|f| !f.is_plain_function() && !f.name.contains('$'))
        .map(|f| f.name.as_str())
        .collect();
    ops.sort_unstable();
    ops.dedup();
    if !ops.is_empty() {
        out.push_str(&format!("operators: {}\n", ops.join(" ")));
    }
    out.push_str(
        "Rhai's own functions (print, len, push, ...) work too; in the REPL, `vars` lists variables and Ctrl-D quits.",
    );
    out
}

/// Register `help()` and `help(topic)`; they print to stdout.
pub fn register(engine: &mut Engine) {
    FuncRegistration::new("help")
        .in_global_namespace()
        .with_comments(["/// List promot's functions with one line each."])
        .register_into_engine(engine, |ctx: NativeCallContext| {
            println!("{}", help_text(ctx.engine(), None))
        });
    FuncRegistration::new("help")
        .in_global_namespace()
        .with_params_info(["topic: &str"])
        .with_comments(["/// Show the signatures and docs of one function, e.g. help(\"zeros\")."])
        .register_into_engine(engine, |ctx: NativeCallContext, topic: &str| {
            println!("{}", help_text(ctx.engine(), Some(topic)))
        });
}

/// A hint for "function not found": the signatures a function of that name
/// does take, or registered names close to the misspelled one.
pub fn hint(engine: &Engine, err: &rhai::EvalAltResult) -> Option<String> {
    use rhai::EvalAltResult as E;
    let mut e = err;
    while let E::ErrorInFunctionCall(_, _, inner, _) | E::ErrorInModule(_, inner, _) = e {
        e = inner;
    }
    let E::ErrorFunctionNotFound(sig, _) = e else {
        return None;
    };
    let name = sig.split(" (").next()?.trim();
    let all = functions(engine, true);
    let takes: Vec<&str> = all
        .iter()
        .filter(|f| f.name == name)
        .map(|f| f.signature.as_str())
        .collect();
    if !takes.is_empty() {
        let shown: Vec<&str> = takes.iter().take(8).copied().collect();
        return Some(format!("help: {name} is defined as: {}", shown.join("; ")));
    }
    let mut close: Vec<(usize, &str)> = all
        .iter()
        .filter(|f| f.is_plain_function())
        .map(|f| (edit_distance(name, &f.name), f.name.as_str()))
        .filter(|(d, n)| {
            *d <= 2.max(name.len() / 4) && *d < name.len().max(2) || n.starts_with(name) && name.len() >= 3
        })
        .collect();
    close.sort();
    close.dedup_by(|a, b| a.1 == b.1);
    let names: Vec<&str> = close.iter().take(3).map(|(_, n)| *n).collect();
    (!names.is_empty()).then(|| format!("help: did you mean {}?", names.join(", ")))
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
