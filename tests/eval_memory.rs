//! A long evaluation's memory does not grow with its number of examples
//! (issue #35, "a memory ceiling"): evaluating 8x the examples must not raise
//! the process's peak resident memory by more than a small tolerance.
//!
//! Each evaluation runs in a child process (this test binary started again,
//! running only this test, with `CHILD` set) so its peak (`VmHWM` in
//! /proc/self/status) is its own, not that of other tests running beside it.
//! The model is a small random Llama (4 layers, width 256) over the fixture
//! SentencePiece vocabulary (800 pieces): a batch's key/value caches are
//! ~5 MB and its decoding steps' logits ~0.8 MB, so keeping either for every
//! batch would add tens of MB at 8x the examples.

#![cfg(target_os = "linux")]

use std::process::Command;

use candle_core::Device;
use promot::eval::{EvalOptions, EvalTask};
use promot::model::{Llama, LlamaConfig};
use promot::tokenizer::Tokenizer;

/// Set in the child: how many examples it evaluates.
const CHILD: &str = "PROMOT_EVAL_MEMORY_EXAMPLES";

/// The peak may rise this much at 8x the examples (their prompts and answers
/// as text, and allocator noise, are a few hundred kB).
const TOLERANCE_KB: u64 = 2 * 1024;

/// Evaluate `n` examples (8 per batch, 32 new tokens each, prompts of ~40
/// tokens) and print the process's peak resident memory.
fn child(n: usize) {
    promot::device::keep_freed_memory();
    let spiece = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spiece.model")).unwrap();
    let tok = Tokenizer::from_spiece_bytes(spiece, 0).unwrap();
    let cfg: LlamaConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": tok.vocab_size(), "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 4, "bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0,
    }))
    .unwrap();
    let model = Llama::random(cfg, 0, &Device::Cpu).unwrap();
    let examples: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                // Inputs of one length, so every batch has the same shapes.
                "input": format!("Question {}: which of the {} rivers of the valley is the longest, and why?", i % 10, i % 7),
                "target": "the first one",
            })
        })
        .collect();
    let task: EvalTask = serde_json::from_value(serde_json::json!({
        "name": "memory", "metric": "exact_match", "examples": examples, "max_new_tokens": 32,
    }))
    .unwrap();
    let opts: EvalOptions = serde_json::from_value(serde_json::json!({
        "shots": [0], "beams": 1, "batch_size": 8, "quiet": true, "cache": false,
    }))
    .unwrap();
    let table = promot::eval::evaluate(&model, &tok, &[task], &opts).unwrap();
    assert_eq!(table.cells[0].n, n);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    println!("PEAK {}", peak.trim_start_matches("VmHWM:").trim());
}

/// Peak resident memory, in kB, of a child process evaluating `n` examples.
fn peak_kb(n: usize) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "evaluation_memory_does_not_grow_with_examples",
            "--exact",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD, n.to_string())
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child ({n} examples) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test harness prints its own words around the child's line.
    let peak = stdout
        .split("PEAK ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok());
    peak.unwrap_or_else(|| panic!("child ({n} examples) printed no peak:\n{stdout}"))
}

#[test]
fn evaluation_memory_does_not_grow_with_examples() {
    if let Ok(n) = std::env::var(CHILD) {
        return child(n.parse().unwrap());
    }
    let (few, many) = (16, 128);
    let (small, large) = (peak_kb(few), peak_kb(many));
    println!("peak resident memory: {small} kB for {few} examples, {large} kB for {many}");
    assert!(
        large <= small + TOLERANCE_KB,
        "peak resident memory grew from {small} kB ({few} examples) to {large} kB ({many} examples), \
         more than the {TOLERANCE_KB} kB allowed"
    );
}
