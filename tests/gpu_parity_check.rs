//! scripts/gpu/parity.rhai, gpu-check's part (a), catches a device that
//! disagrees with the CPU: run here with the checked copy in bf16 (as a wrong
//! kernel would be, its logits, gradients and steps off by far more than the
//! tolerances) it exits 1 and names the failing model; cpu against cpu passes.
//! On a GPU the same script compares cuda with cpu.

use std::process::{Command, Output};

fn parity(device: &str, out: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promot"))
        .args(["--threads", "1", "run", "scripts/gpu/parity.rhai", "cpu", device])
        .arg(out)
        .arg("tests/fixtures/tiny-llama")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run promot")
}

#[test]
fn parity_fails_loudly_on_a_disagreeing_device_and_passes_on_an_equal_one() {
    let dir = std::env::temp_dir().join(format!("promot-gpu-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (same, off) = (dir.join("same.json"), dir.join("off.json"));

    let o = parity("cpu", &same);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&same).unwrap()).unwrap();
    assert_eq!(report["ok"], true);
    let model = &report["models"]["tests/fixtures/tiny-llama"];
    for key in ["logits_rel", "grads_rel", "step_rel", "dropout_rel"] {
        assert_eq!(model[key], 0.0, "{key}: {model}");
    }

    let o = parity("cpu:bf16", &off);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("parity FAILED for: [\"tests/fixtures/tiny-llama\"]"),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&off).unwrap()).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["models"]["tests/fixtures/tiny-llama"]["logits_rel"]
            .as_f64()
            .unwrap()
            > 1e-3
    );
    std::fs::remove_dir_all(&dir).ok();
}
