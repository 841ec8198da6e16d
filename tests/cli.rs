//! The `promot` binary: -e, run, errors and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn promot(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promot"));
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.output().expect("run promot")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// stderr from the first "error:" line on (warnings before it are skipped).
fn stderr(o: &Output) -> String {
    let all = String::from_utf8_lossy(&o.stderr).to_string();
    match all.find("error: ") {
        Some(i) if i == 0 || all[..i].ends_with('\n') => all[i..].to_string(),
        _ => all,
    }
}

/// A fresh directory for one test's scripts.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promot-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn eval_prints_values() {
    let o = promot(&["-e", "(tensor([1.0, 2.0]) * 3 + ones(2)).to_array()"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "[4.0, 7.0]\n");
    let o = promot(&["-e", "matmul(ones([2, 3]), ones([3]))"], None);
    assert_eq!(stdout(&o), "Tensor[2] f32 cpu [3.0, 3.0]\n");
    let o = promot(&["-e", "let x = 1;"], None);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
}

#[test]
fn run_passes_args() {
    let dir = temp_dir("args");
    let script = dir.join("args.rhai");
    std::fs::write(
        &script,
        "#!/usr/bin/env promot\nprint(ARGS.len());\nfor a in ARGS { print(a); }\n",
    )
    .unwrap();
    let o = promot(&["run", script.to_str().unwrap(), "first", "--flag", "3"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3\nfirst\n--flag\n3\n");
    // `promot FILE ARGS...` (what a #! line runs) is the same.
    let o = promot(&[script.to_str().unwrap(), "x"], None);
    assert_eq!(stdout(&o), "1\nx\n");
}

#[test]
fn syntax_error_names_file_line_col() {
    let dir = temp_dir("syntax");
    let script = dir.join("bad.rhai");
    std::fs::write(&script, "let a = 1;\nlet b = (a + ;\n").unwrap();
    let o = promot(&["run", script.to_str().unwrap()], None);
    assert!(!o.status.success());
    let err = stderr(&o);
    let first = err.lines().next().unwrap_or("");
    assert!(first.starts_with(&format!("error: {}:2:", script.display())), "{err}");
    assert!(first.contains("syntax error"), "{err}");
    assert!(err.contains("    2 | let b = (a + ;\n"), "{err}");
    assert!(err.lines().nth(2).is_some_and(|l| l.trim_end().ends_with('^')), "{err}");
}

#[test]
fn unknown_function_is_an_error() {
    let o = promot(&["-e", "1 + nosuch(2)"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: <expr>:1:5: function not found: nosuch"),
        "{err}"
    );
    assert!(err.contains("1 + nosuch(2)\n      |     ^"), "{err}");
}

#[test]
fn runtime_error_inside_a_function_points_at_the_function() {
    let dir = temp_dir("runtime");
    let script = dir.join("shapes.rhai");
    std::fs::write(&script, "fn f(a) {\n    a.matmul(ones([4, 4]))\n}\nf(ones([2, 3]));\n").unwrap();
    let o = promot(&["run", script.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let file = script.display().to_string();
    assert!(err.starts_with(&format!("error: {file}:2:")), "{err}");
    assert!(err.contains("matmul(Tensor[2, 3] f32, Tensor[4, 4] f32)"), "{err}");
    assert!(
        err.contains(&format!("note: in call to function 'f' at {file}:4:1")),
        "{err}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let o = promot(&["run", "/nonexistent/promot/script.rhai"], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).starts_with("error: /nonexistent/promot/script.rhai: cannot read script"),
        "{}",
        stderr(&o)
    );
    let o = promot(&["no-such-command"], None);
    assert!(!o.status.success());
}

#[test]
fn imports_resolve_next_to_the_script() {
    let dir = temp_dir("imports");
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(
        dir.join("lib/helpers.rhai"),
        "import \"inner\" as inner;\nfn twice(x) { inner::id(x) * 2 }\n",
    )
    .unwrap();
    std::fs::write(dir.join("lib/inner.rhai"), "fn id(x) { x }\n").unwrap();
    std::fs::write(
        dir.join("main.rhai"),
        "import \"lib/helpers\" as h;\nprint(h::twice(21));\n",
    )
    .unwrap();
    // Run from another directory: imports still resolve relative to the script.
    let o = promot(
        &["run", dir.join("main.rhai").to_str().unwrap()],
        Some(&std::env::temp_dir()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "42\n");
    std::fs::write(dir.join("missing.rhai"), "import \"nope\" as n;\n").unwrap();
    let o = promot(&["run", dir.join("missing.rhai").to_str().unwrap()], None);
    assert!(stderr(&o).contains("module not found: \"nope\""), "{}", stderr(&o));
}

#[test]
fn error_inside_an_imported_module_names_that_file() {
    let dir = temp_dir("module-error");
    std::fs::write(dir.join("m.rhai"), "fn boom() {\n  zeros([-1])\n}\n").unwrap();
    std::fs::write(dir.join("main.rhai"), "import \"m\" as m;\nm::boom();\n").unwrap();
    let o = promot(&["run", dir.join("main.rhai").to_str().unwrap()], None);
    let err = stderr(&o);
    let module = dir.join("m.rhai").display().to_string();
    assert!(
        err.starts_with(&format!("error: {module}:2:3: zeros: negative size -1")),
        "{err}"
    );
}

#[test]
fn exit_codes() {
    let o = promot(&["-e", "exit(3)"], None);
    assert_eq!(o.status.code(), Some(3));
    let dir = temp_dir("exit");
    std::fs::write(
        dir.join("e.rhai"),
        "fn quit_with(n) { exit(n); }\nprint(\"before\");\nquit_with(4);\nprint(\"after\");\n",
    )
    .unwrap();
    let o = promot(&["run", dir.join("e.rhai").to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(stdout(&o), "before\n");
    let o = promot(&["-e", "throw \"custom failure\""], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("custom failure"));
}

#[test]
fn help_and_version() {
    let o = promot(&["--version"], None);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), format!("promot {}", env!("CARGO_PKG_VERSION")));
    let o = promot(&["--help"], None);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("run") && text.contains("-e"), "{text}");
    let o = promot(&["-e", "help(\"zeros\")"], None);
    assert!(stdout(&o).contains("zeros(shape: Array) -> Tensor"), "{}", stdout(&o));
}
