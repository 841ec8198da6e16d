//! The data layer of the in-context evaluation harness: reading the vendored
//! datasets, filling the paper's input templates, building k-shot prompts
//! within a token budget, and post-processing model outputs.
//!
//! Everything here is plain Rust over `serde_json` maps and strings so the
//! script layer can expose it directly; the task definitions themselves
//! (which file is the evaluation set, which is the demonstration pool, which
//! metric) live in the scripts.
//!
//! - [`readers`]: jsonl / json array / plain lines / parallel text files.
//! - [`template`]: `{field}` templates, the paper's Table 5 templates, label maps.
//! - [`fewshot`]: deterministic demonstration sampling, prompt joining, budgets.
//! - [`postprocess`]: the paper's appendix A.1 output post-processing.

pub mod fewshot;
pub mod postprocess;
pub mod readers;
pub mod template;

pub use crate::metrics::first_word;
pub use fewshot::{build_prompt, fit_to_budget, model_separator, record_separator, sample_demos, DEFAULT_SEPARATOR};
pub use postprocess::{
    cut_at_second_prefix, extract_sentinel, postprocess, strip_special_tokens, OutputKind, PREFIX_TOKENS,
};
pub use readers::{read_json, read_json_array, read_jsonl, read_lines, read_parallel, Record};
pub use template::{
    fill, fill_named, label_word, label_words, labels_by_name, language_name, map_label, set_template,
    template_by_name, triviaqa_question,
};
