//! The REPL's session logic, driven line by line without a terminal.

use promot::script::repl::{complete, full_engine, is_incomplete, Outcome, Repl};

fn session() -> Repl {
    Repl::new(full_engine(&std::env::temp_dir(), false))
}

/// Feed lines; return the outcome of each.
fn feed(repl: &mut Repl, lines: &[&str]) -> Vec<Outcome> {
    lines.iter().map(|l| repl.handle_input(l)).collect()
}

fn output(o: &Outcome) -> &str {
    match o {
        Outcome::Output(s) => s,
        other => panic!("expected output, got {other:?}"),
    }
}

#[test]
fn values_are_shown_and_definitions_persist() {
    let mut r = session();
    let out = feed(&mut r, &["let x = 40;", "fn inc(v) { v + 1 }", "inc(x) + 1", "\"hi\""]);
    assert_eq!(out[0], Outcome::Output(String::new()));
    assert_eq!(out[1], Outcome::Output(String::new()));
    assert_eq!(output(&out[2]), "42");
    assert_eq!(output(&out[3]), "\"hi\"");
}

#[test]
fn tensors_show_through_their_display() {
    let mut r = session();
    let out = feed(&mut r, &["let t = ones([2]);", "t * 3", "[t]"]);
    assert_eq!(output(&out[1]), "Tensor[2] f32 cpu [3.0, 3.0]");
    assert_eq!(output(&out[2]), "[Tensor[2] f32 cpu [1.0, 1.0]]");
}

#[test]
fn multi_line_input_continues_until_closed() {
    let mut r = session();
    assert_eq!(r.handle_input("fn add(a, b) {"), Outcome::More);
    assert!(r.is_pending());
    assert_eq!(r.prompt().trim(), "...>");
    assert_eq!(r.handle_input("    a + b"), Outcome::More);
    assert_eq!(r.handle_input("}"), Outcome::Output(String::new()));
    assert!(!r.is_pending());
    assert_eq!(r.last_input(), "fn add(a, b) {\n    a + b\n}");
    // A trailing backslash continues even a complete line.
    assert_eq!(r.handle_input("add(1, \\"), Outcome::More);
    assert_eq!(output(&r.handle_input("2)")), "3");
    // Open array literal.
    assert_eq!(r.handle_input("let v = [1,"), Outcome::More);
    assert_eq!(r.handle_input("2];"), Outcome::Output(String::new()));
    assert_eq!(output(&r.handle_input("v.len()")), "2");
}

#[test]
fn an_error_does_not_end_the_session() {
    let mut r = session();
    let out = feed(&mut r, &["let a = 1;", "a + nosuch(2)", "a + 1"]);
    match &out[1] {
        Outcome::Error(e) => {
            assert!(e.starts_with("error: <repl 2>:1:5: function not found: nosuch"), "{e}");
            assert!(e.contains("    1 | a + nosuch(2)\n      |     ^"), "{e}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(output(&out[2]), "2");
    // Syntax errors too.
    match r.handle_input("let = 3;") {
        Outcome::Error(e) => assert!(e.starts_with("error: <repl 4>:1:"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(output(&r.handle_input("a")), "1");
}

#[test]
fn errors_inside_earlier_functions_point_at_their_input() {
    let mut r = session();
    feed(&mut r, &["fn bad(t) {", "  t.matmul(ones([5, 5]))", "}"]);
    match r.handle_input("bad(ones([2, 3]))") {
        Outcome::Error(e) => {
            assert!(
                e.starts_with("error: <repl 1>:2:5: matmul(Tensor[2, 3] f32, Tensor[5, 5] f32)"),
                "{e}"
            );
            assert!(e.contains("note: in call to function 'bad' at <repl 2>:1:1"), "{e}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn two_blank_lines_force_an_unfinished_input() {
    let mut r = session();
    assert_eq!(r.handle_input("let x = (1 +"), Outcome::More);
    assert_eq!(r.handle_input(""), Outcome::More);
    assert!(matches!(r.handle_input(""), Outcome::Error(_)));
    assert!(!r.is_pending());
}

#[test]
fn commands_and_exit() {
    let mut r = session();
    feed(&mut r, &["let w = 3;", "fn f(x) { x }"]);
    let vars = output(&r.handle_input("vars")).to_string();
    assert!(vars.contains("w = 3") && vars.contains("fn f(x)"), "{vars}");
    let help = output(&r.handle_input("help")).to_string();
    assert!(help.contains("tensors") && help.contains("training"), "{help}");
    assert_eq!(r.handle_input("exit"), Outcome::Exit);
    assert_eq!(r.handle_input("exit()"), Outcome::Exit);
    assert_eq!(r.handle_input("if w == 3 { exit(2) }"), Outcome::Exit);
}

#[test]
fn completion_knows_functions_and_variables() {
    let mut r = session();
    feed(&mut r, &["let my_tensor = zeros(2);", "fn my_fn() { 1 }"]);
    let words = r.completion_words();
    for w in ["zeros", "softmax", "my_tensor", "my_fn", "print", "let"] {
        assert!(words.iter().any(|x| x == w), "{w} missing");
    }
}

#[test]
fn completion_offers_help_topics_inside_help() {
    let r = session();
    let words = r.completion_words();
    let line = "help(\"tr";
    let (start, found) = complete(&words, line, line.len());
    assert_eq!(start, "help(\"".len());
    assert_eq!(found.first().map(String::as_str), Some("training"), "{found:?}");
    assert!(found.iter().any(|w| w == "train"), "{found:?}");
    let line = "help(\"";
    let (_, found) = complete(&words, line, line.len());
    assert!(
        found.iter().any(|w| w == "tensors") && !found.iter().any(|w| w == "zeros"),
        "{found:?}"
    );
    // Elsewhere topics are not words: `tr` completes to functions only.
    let (_, found) = complete(&words, "let x = tr", 10);
    assert!(
        !found.iter().any(|w| w == "training") && found.iter().any(|w| w == "train"),
        "{found:?}"
    );
}

#[test]
fn interrupt_stops_a_running_command() {
    let mut r = session();
    let stopper = std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        promot::script::interrupt::request_interrupt();
    });
    let out = r.handle_input("let i = 0; loop { i += 1; }");
    stopper.join().unwrap();
    match out {
        Outcome::Error(e) => assert!(e.contains("interrupted"), "{e}"),
        other => panic!("expected an interruption, got {other:?}"),
    }
    assert!(!promot::script::interrupt::interrupted());
    assert_eq!(output(&r.handle_input("1 + 1")), "2");
}

#[test]
fn incomplete_detection() {
    let e = full_engine(&std::env::temp_dir(), false);
    for text in [
        "fn f() {",
        "foo(1,",
        "let a = [1, 2",
        "let s = `abc",
        "/* open comment",
        "let x = 1 +",
    ] {
        assert!(is_incomplete(&e, text), "{text:?} should be incomplete");
    }
    for text in [
        "1 + 2",
        "fn f() { 1 }",
        "let s = \"}\";",
        "foo(1))",
        "// comment (",
        "let x = ;",
    ] {
        assert!(!is_incomplete(&e, text), "{text:?} should be complete");
    }
}
