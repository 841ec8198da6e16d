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

#[test]
fn every_function_is_in_exactly_one_help_topic() {
    let engine = full_engine(&std::env::temp_dir(), false);
    let names: std::collections::BTreeSet<String> = help::functions(&engine, false)
        .into_iter()
        .filter(|f| f.is_plain_function())
        .map(|f| f.name)
        .collect();
    let mut problems = Vec::new();
    for name in &names {
        let topics: Vec<&str> = help::topics_of(name).iter().map(|t| t.name).collect();
        if topics.len() != 1 {
            problems.push(format!(
                "{name} is in {} topics {topics:?} (src/script/help.rs, TOPICS)",
                topics.len()
            ));
        }
    }
    for t in help::TOPICS {
        if names.contains(t.name) {
            problems.push(format!(
                "topic '{}' has a function's name: help(\"{}\") would show the function",
                t.name, t.name
            ));
        }
        for f in t.functions {
            if !names.contains(*f) {
                problems.push(format!("topic '{}' names '{f}', which is no promot function", t.name));
            }
        }
    }
    assert!(problems.is_empty(), "help topics:\n{}", problems.join("\n"));
}

#[test]
fn help_lists_topics_then_a_topics_functions_then_one_function() {
    let engine = full_engine(&std::env::temp_dir(), false);
    let overview = help::help_text(&engine, None);
    for t in help::TOPICS {
        assert!(
            overview
                .lines()
                .any(|l| l.trim_start().starts_with(t.name) && l.contains(t.about)),
            "help() lacks the topic {}:\n{overview}",
            t.name
        );
    }
    assert!(
        !overview.contains("zeros(shape: Array) -> Tensor"),
        "help() lists functions again:\n{overview}"
    );
    let tensors = help::help_text(&engine, Some("tensors"));
    assert!(tensors.contains("zeros(shape: Array) -> Tensor"), "{tensors}");
    assert!(!tensors.contains("load_model("), "{tensors}");
    let training = help::help_text(&engine, Some("Training"));
    assert!(
        training.lines().any(|l| l.trim_start().starts_with("train(")),
        "{training}"
    );
    // A function's name still shows that function in full, options included.
    let train = help::help_text(&engine, Some("train"));
    assert!(train.starts_with("train("), "{train}");
    assert!(train.contains("steps"), "{train}");
    let all = help::help_text(&engine, Some("all"));
    assert!(
        all.contains("zeros(shape: Array) -> Tensor") && all.contains("load_model("),
        "{all}"
    );
    assert!(help::help_text(&engine, Some("no_such_thing")).contains("help() lists the topics"));
}

#[test]
fn every_file_the_readme_names_is_there() {
    // Paths in links and in `code`, under the folders a reader is sent to.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let folders = [
        "scripts/",
        "benches/",
        "docs/",
        "stdlib/",
        "tests/",
        "examples/",
        "data/",
        ".ci/",
    ];
    let mut missing = Vec::new();
    for piece in readme.split(['`', '(', ')', ' ']) {
        let path = piece
            .trim_matches(['"', '\''])
            .trim_end_matches([',', '.', ':', ';', '\'', '"']);
        if folders.iter().any(|f| path.starts_with(f)) && !path.contains('*') && !root().join(path).exists() {
            missing.push(path.to_string());
        }
    }
    assert!(missing.is_empty(), "README names files that are not there: {missing:?}");
}
