//! `promot --device NAME`: the default device for models and script tensors,
//! and one clear error (exit 2, before anything runs) for a device this
//! binary or machine lacks. The GPU side runs in scripts/gpu-check.sh.

use std::process::{Command, Output};

fn promot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promot"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run promot")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn cpu_is_the_default_and_can_be_named() {
    for args in [&[][..], &["--device", "cpu"][..]] {
        let mut all = args.to_vec();
        all.extend(["-e", "let m = load_model(\"tests/fixtures/tiny-t5\"); [tensor([1.0]).device(), m.param(\"shared.weight\").device()]"]);
        let o = promot(&all);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "[\"cpu\", \"cpu\"]\n");
    }
}

#[test]
fn an_unknown_device_is_one_error() {
    let o = promot(&["--device", "tpu", "-e", "1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("error: --device tpu: unknown device 'tpu' (expected \"cpu\", \"cuda\" or \"metal\")"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
#[cfg(not(feature = "cuda"))]
fn cuda_without_the_feature_says_how_to_build_it() {
    let o = promot(&["--device", "cuda", "run", "no-such-script.rhai"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("error: --device cuda: this promot was built without CUDA"),
        "{err}"
    );
    assert!(err.contains("scripts/build-cuda.sh"), "{err}");
}

#[test]
#[cfg(not(feature = "cuda"))]
fn a_script_asking_for_cuda_gets_the_same_error() {
    let o = promot(&["-e", "device(\"cuda\")"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("this promot was built without CUDA"),
        "{}",
        text(&o.stderr)
    );
}
