//! Helpers shared by the test files: fixture readers and comparisons
//! (`fixtures`), the parity checks run on both kernel paths (`t5_checks`,
//! `llama_checks`), hostile script values (`hostile`, for `no_panic` and
//! `fuzz`), running the `promot` binary (`subprocess`, for the kill, disk and
//! lock tests), and reproduction summaries (below). Each test file uses some
//! of them.
#![allow(dead_code)]

pub mod fixtures;
pub mod hostile;
pub mod llama_checks;
pub mod subprocess;
pub mod t5_checks;

use serde_json::Value;

/// One cell of a reproduction's summary.json: `summary[target]` holds the
/// method `names` and, per method, its `cells` (#{task, shots, value, label_share, ...}).
pub fn summary_cell<'a>(summary: &'a Value, target: &str, method: &str, task: &str, shots: u64) -> &'a Value {
    summary_cells(summary, target, method)
        .iter()
        .find(|c| c["task"] == task && c["shots"] == shots)
        .unwrap_or_else(|| panic!("no {task} {shots}-shot cell for {method}"))
}

/// Every cell of one method's column in a reproduction's summary.json.
pub fn summary_cells<'a>(summary: &'a Value, target: &str, method: &str) -> &'a Vec<Value> {
    let names = summary[target]["names"].as_array().unwrap();
    let i = names
        .iter()
        .position(|n| n == method)
        .unwrap_or_else(|| panic!("no method {method}"));
    summary[target]["cells"][i].as_array().unwrap()
}
