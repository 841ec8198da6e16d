//! Input templates: `{field}` substitution over a record, the paper's Table 5
//! templates (appendix A.1), and the label words the classification tasks use
//! as targets.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// RTE (SuperGLUE): fields `premise`, `hypothesis`. Targets: True / False.
pub const RTE_TEMPLATE: &str = "{premise} question: {hypothesis} Is it true or false? answer:";
/// CB (SuperGLUE): fields `premise`, `hypothesis`. Targets: True / False / Neither.
pub const CB_TEMPLATE: &str = "{premise} question: {hypothesis} Is it true or false or neither? answer:";
/// WiC (SuperGLUE): fields `sentence1`, `sentence2`, `word`. Targets: True / False.
/// "true or False" is capitalised exactly as in the paper's Table 5.
pub const WIC_TEMPLATE: &str = "{sentence1} {sentence2} question: The word {word} is used in the same way in the two sentences. Is it true or False? answer:";
/// Closed-book QA (TriviaQA, web_questions): field `question`.
pub const QA_TEMPLATE: &str = "Q: {question} A:";
/// Translation (WMT): fields `source_language`, `target_language` (English
/// names, see [`language_name`]) and `source` (the sentence).
pub const TRANSLATION_TEMPLATE: &str = "Translate {source_language} to {target_language}: {source}";
/// Summarization (XSum): field `article`.
pub const SUMMARIZATION_TEMPLATE: &str = "Article: {article} One sentence summary:";

/// RTE labels to target words.
pub const RTE_LABELS: &[(&str, &str)] = &[("entailment", "True"), ("not_entailment", "False")];
/// CB labels to target words.
pub const CB_LABELS: &[(&str, &str)] = &[
    ("entailment", "True"),
    ("contradiction", "False"),
    ("neutral", "Neither"),
];
/// WiC labels (JSON booleans in the data) to target words.
pub const WIC_LABELS: &[(&str, &str)] = &[("true", "True"), ("false", "False")];

/// Every template by task name, in one table: stdlib's tasks, the toy world
/// and the tests all read templates through [`template_by_name`], so a change
/// here (or a run-time [`set_template`]) reaches training and evaluation alike.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("rte", RTE_TEMPLATE),
    ("cb", CB_TEMPLATE),
    ("wic", WIC_TEMPLATE),
    ("qa", QA_TEMPLATE),
    ("translation", TRANSLATION_TEMPLATE),
    ("summarization", SUMMARIZATION_TEMPLATE),
];

/// Label maps by task name.
pub const LABELS: &[(&str, &[(&str, &str)])] = &[("rte", RTE_LABELS), ("cb", CB_LABELS), ("wic", WIC_LABELS)];

/// Templates a script replaced for this process (see [`set_template`]).
static OVERRIDES: RwLock<BTreeMap<String, String>> = RwLock::new(BTreeMap::new());

/// The entry of a (name, value) table for `name`, case-insensitively.
fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    let key = name.to_ascii_lowercase();
    table.iter().find(|(n, _)| *n == key).map(|(_, v)| *v)
}

fn known_names<T>(table: &[(&str, T)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The template of a task: `rte`, `cb`, `wic`, `qa`, `translation`,
/// `summarization` (case-insensitive); a replacement set by [`set_template`]
/// wins over the paper's Table 5 text.
pub fn template_by_name(name: &str) -> Result<String> {
    let key = name.to_ascii_lowercase();
    let builtin = lookup(TEMPLATES, name).ok_or_else(|| {
        Error::msg(format!(
            "no template named '{name}' (known: {})",
            known_names(TEMPLATES)
        ))
    })?;
    let overrides = OVERRIDES.read().unwrap_or_else(|e| e.into_inner());
    Ok(overrides.get(&key).cloned().unwrap_or_else(|| builtin.to_string()))
}

/// Replaces a task's template for the rest of the process (every task built
/// afterwards, for training or evaluation, uses it); `None` restores the
/// paper's. The text must be a well-formed template.
pub fn set_template(name: &str, text: Option<&str>) -> Result<()> {
    template_by_name(name)?;
    let mut overrides = OVERRIDES.write().unwrap_or_else(|e| e.into_inner());
    match text {
        Some(t) => {
            placeholders(t)?;
            overrides.insert(name.to_ascii_lowercase(), t.to_string());
        }
        None => {
            overrides.remove(&name.to_ascii_lowercase());
        }
    }
    Ok(())
}

/// Fills the named task's current template from `(field, text)` pairs.
pub fn fill_named(name: &str, fields: &[(&str, &str)]) -> Result<String> {
    let map: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    fill(&template_by_name(name)?, &map)
}

/// Looks a label map up by task name: `rte`, `cb`, `wic` (case-insensitive).
pub fn labels_by_name(name: &str) -> Result<&'static [(&'static str, &'static str)]> {
    lookup(LABELS, name)
        .ok_or_else(|| Error::msg(format!("no label map named '{name}' (known: {})", known_names(LABELS))))
}

/// The distinct target words of a classification task, in table order
/// (`cb`: True, False, Neither).
pub fn label_words(name: &str) -> Result<Vec<&'static str>> {
    let mut words = Vec::new();
    for (_, word) in labels_by_name(name)? {
        if !words.contains(word) {
            words.push(*word);
        }
    }
    Ok(words)
}

/// The target word of a dataset label of the named task.
pub fn label_word(name: &str, label: &Value) -> Result<String> {
    map_label(labels_by_name(name)?, label)
}

/// The placeholder names of a template, in order; an error for a malformed one.
pub fn placeholders(template: &str) -> Result<Vec<String>> {
    Ok(segments(template)?
        .into_iter()
        .filter_map(|s| match s {
            Segment::Field(name) => Some(name),
            Segment::Text(_) => None,
        })
        .collect())
}

/// The literal text of a template with its placeholders left out.
pub fn literal_text(template: &str) -> Result<String> {
    Ok(segments(template)?
        .into_iter()
        .map(|s| match s {
            Segment::Text(t) => t,
            Segment::Field(_) => " ".to_string(),
        })
        .collect())
}

/// Maps a dataset label (a string, or a JSON boolean as in WiC) to its target
/// word, e.g. `not_entailment` to `False`.
pub fn map_label(labels: &[(&str, &str)], label: &Value) -> Result<String> {
    let key = match label {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => return Err(Error::msg(format!("label {other} is not a string, boolean or number"))),
    };
    match labels.iter().find(|(from, _)| *from == key) {
        Some((_, to)) => Ok(to.to_string()),
        None => {
            let known: Vec<&str> = labels.iter().map(|(from, _)| *from).collect();
            Err(Error::msg(format!(
                "unknown label '{key}' (known: {})",
                known.join(", ")
            )))
        }
    }
}

/// WMT language codes and the English names the translation template uses.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("fr", "French"),
    ("de", "German"),
    ("ro", "Romanian"),
];

/// English name of a WMT language code, as the translation template wants it.
pub fn language_name(code: &str) -> Result<&'static str> {
    lookup(LANGUAGES, code).ok_or_else(|| {
        Error::msg(format!(
            "unknown language code '{code}' (known: {})",
            known_names(LANGUAGES)
        ))
    })
}

/// The bare question of a TriviaQA sample record, whose `context` field is
/// stored already templated as `"Question: ...\nAnswer:"`; the QA template
/// wants only the question.
pub fn triviaqa_question(context: &str) -> Result<String> {
    let question = context
        .trim()
        .strip_prefix("Question:")
        .and_then(|rest| rest.strip_suffix("Answer:"))
        .map(str::trim);
    match question {
        Some(q) if !q.is_empty() => Ok(q.to_string()),
        _ => Err(Error::msg(format!(
            "TriviaQA context is not of the form 'Question: ...\\nAnswer:': {context:?}"
        ))),
    }
}

/// Fills `{name}` placeholders from a record. `{{` and `}}` stand for literal
/// braces. A placeholder naming a field the record lacks, an unclosed `{`, or
/// a stray `}` is an error that quotes the template. Strings are inserted as
/// they are, numbers and booleans as JSON writes them; null, arrays and
/// objects are refused because no one rendering of them is the obvious one.
pub fn fill(template: &str, fields: &Map<String, Value>) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 64);
    for segment in segments(template)? {
        match segment {
            Segment::Text(text) => out.push_str(&text),
            Segment::Field(name) => {
                let value = fields.get(&name).ok_or_else(|| {
                    let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                    Error::msg(format!(
                        "template field '{name}' is not in the record (it has: {}); template: {template:?}",
                        known.join(", ")
                    ))
                })?;
                out.push_str(&render(&name, value, template)?);
            }
        }
    }
    Ok(out)
}

/// A piece of a parsed template.
enum Segment {
    Text(String),
    Field(String),
}

/// Parses a template into literal text and `{name}` placeholders; `{{` and
/// `}}` are literal braces. The one parser behind [`fill`] and [`placeholders`].
fn segments(template: &str) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        text.push_str(&rest[..pos]);
        let brace = &rest[pos..];
        if let Some(after) = brace.strip_prefix("{{") {
            text.push('{');
            rest = after;
        } else if let Some(after) = brace.strip_prefix("}}") {
            text.push('}');
            rest = after;
        } else if brace.starts_with('}') {
            return Err(Error::msg(format!(
                "template has a stray '}}' (write '}}}}' for a literal brace): {template:?}"
            )));
        } else {
            // `brace` starts with a single '{': the name runs to the next '}'.
            let body = &brace[1..];
            let Some(end) = body.find('}') else {
                return Err(Error::msg(format!("template has an unclosed '{{': {template:?}")));
            };
            let name = &body[..end];
            if name.is_empty() || name.contains('{') {
                return Err(Error::msg(format!(
                    "template has a malformed placeholder '{{{name}}}': {template:?}"
                )));
            }
            out.push(Segment::Text(std::mem::take(&mut text)));
            out.push(Segment::Field(name.to_string()));
            rest = &body[end + 1..];
        }
    }
    text.push_str(rest);
    out.push(Segment::Text(text));
    Ok(out)
}

/// Text of one field value for [`fill`].
fn render(name: &str, value: &Value, template: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(Error::msg(format!(
            "template field '{name}' is null; template: {template:?}"
        ))),
        Value::Array(_) | Value::Object(_) => Err(Error::msg(format!(
            "template field '{name}' is a list or map, not text; pick one element first; template: {template:?}"
        ))),
    }
}
