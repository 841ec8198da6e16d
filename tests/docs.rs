//! The documentation cannot drift from the program: the README's REPL session
//! is replayed line by line and every value it shows must be what the REPL
//! prints; every ```rhai block in README.md and docs/*.md runs without error;
//! and every function a script can call documents itself in `help()`.

use std::path::{Path, PathBuf};

use promot::script::help;
use promot::script::repl::{full_engine, Outcome, Repl};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ```text block under the README heading `heading`.
fn block_after(doc: &str, heading: &str) -> Vec<String> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("README has no '{heading}'"));
    let rest = &doc[start..];
    let open = rest.find("```text\n").expect("a ```text block") + "```text\n".len();
    let close = rest[open..].find("```").expect("a closed block");
    rest[open..open + close].lines().map(str::to_string).collect()
}

/// (input, the output lines the transcript shows after it).
fn transcript(lines: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in lines {
        if let Some(input) = line.strip_prefix("promot> ") {
            out.push((input.to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line.clone());
        }
    }
    out
}

#[test]
fn the_readme_repl_session_prints_what_it_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let session = transcript(&block_after(&readme, "## A REPL session"));
    assert!(session.len() >= 5, "the README's REPL session went missing");
    std::env::set_current_dir(root()).unwrap();
    let mut repl = Repl::new(full_engine(&std::env::temp_dir(), false));
    for (input, shown) in session {
        match repl.handle_input(&input) {
            Outcome::Output(got) => {
                if !shown.is_empty() {
                    assert_eq!(
                        got.trim_end(),
                        shown.join("\n").trim_end(),
                        "README shows another value for `{input}`"
                    );
                }
            }
            other => panic!("README line `{input}` gave {other:?}"),
        }
    }
}

fn rhai_blocks(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```rhai") => current = Some((i + 2, String::new())),
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some((_, code)) => {
                code.push_str(line);
                code.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_rhai_block_in_the_docs_runs() {
    std::env::set_current_dir(root()).unwrap();
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    for file in files {
        for (line, code) in rhai_blocks(&file) {
            let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
            let mut engine = promot::script::new_engine();
            let sink = printed.clone();
            engine.on_print(move |s| sink.lock().unwrap().push(s.to_string()));
            if let Err(e) = engine.run(&code) {
                panic!("{}:{line}: the code block fails: {e}", file.display());
            }
            // Lines that print carry `//=> value`: the i-th print shows the i-th value.
            let printed = printed.lock().unwrap();
            let print_lines: Vec<&str> = code.lines().filter(|l| l.contains("print(")).collect();
            for (i, l) in print_lines.iter().enumerate() {
                if let Some((_, want)) = l.split_once("//=> ") {
                    let got = printed.get(i).map(String::as_str).unwrap_or("<nothing printed>");
                    assert_eq!(
                        got,
                        want.trim(),
                        "{}:{line}: `{}` printed something else",
                        file.display(),
                        l.trim()
                    );
                }
            }
        }
    }
}

#[test]
fn every_function_has_a_signature_and_a_one_line_doc() {
    let engine = full_engine(&std::env::temp_dir(), false);
    let undocumented: Vec<String> = help::functions(&engine, false)
        .into_iter()
        .filter(|f| f.is_plain_function())
        .filter(|f| f.summary().trim().is_empty() || !f.signature.contains('('))
        .map(|f| f.signature)
        .collect();
    assert!(
        undocumented.is_empty(),
        "functions without a doc line in help(): {undocumented:#?}"
    );
}
