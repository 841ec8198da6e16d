//! Input templates: `{field}` substitution over a record, the paper's Table 5
//! templates (appendix A.1), and the label words the classification tasks use
//! as targets.

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
pub const CB_LABELS: &[(&str, &str)] = &[("entailment", "True"), ("contradiction", "False"), ("neutral", "Neither")];
/// WiC labels (JSON booleans in the data) to target words.
pub const WIC_LABELS: &[(&str, &str)] = &[("true", "True"), ("false", "False")];

/// Looks a Table 5 template up by task name: `rte`, `cb`, `wic`, `qa`,
/// `translation`, `summarization` (case-insensitive).
pub fn template_by_name(name: &str) -> Result<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "rte" => Ok(RTE_TEMPLATE),
        "cb" => Ok(CB_TEMPLATE),
        "wic" => Ok(WIC_TEMPLATE),
        "qa" => Ok(QA_TEMPLATE),
        "translation" => Ok(TRANSLATION_TEMPLATE),
        "summarization" => Ok(SUMMARIZATION_TEMPLATE),
        _ => Err(Error::msg(format!(
            "no template named '{name}' (known: rte, cb, wic, qa, translation, summarization)"
        ))),
    }
}

/// Looks a label map up by task name: `rte`, `cb`, `wic` (case-insensitive).
pub fn labels_by_name(name: &str) -> Result<&'static [(&'static str, &'static str)]> {
    match name.to_ascii_lowercase().as_str() {
        "rte" => Ok(RTE_LABELS),
        "cb" => Ok(CB_LABELS),
        "wic" => Ok(WIC_LABELS),
        _ => Err(Error::msg(format!("no label map named '{name}' (known: rte, cb, wic)"))),
    }
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
            Err(Error::msg(format!("unknown label '{key}' (known: {})", known.join(", "))))
        }
    }
}

/// English name of a WMT language code, as the translation template wants it.
pub fn language_name(code: &str) -> Result<&'static str> {
    match code.to_ascii_lowercase().as_str() {
        "en" => Ok("English"),
        "fr" => Ok("French"),
        "de" => Ok("German"),
        "ro" => Ok("Romanian"),
        _ => Err(Error::msg(format!("unknown language code '{code}' (known: en, fr, de, ro)"))),
    }
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
        _ => Err(Error::msg(format!("TriviaQA context is not of the form 'Question: ...\\nAnswer:': {context:?}"))),
    }
}

/// Fills `{name}` placeholders from a record. `{{` and `}}` stand for literal
/// braces. A placeholder naming a field the record lacks, an unclosed `{`, or
/// a stray `}` is an error that quotes the template. Strings are inserted as
/// they are, numbers and booleans as JSON writes them; null, arrays and
/// objects are refused because no one rendering of them is the obvious one.
pub fn fill(template: &str, fields: &Map<String, Value>) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let brace = &rest[pos..];
        if let Some(after) = brace.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = brace.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if brace.starts_with('}') {
            return Err(Error::msg(format!("template has a stray '}}' (write '}}}}' for a literal brace): {template:?}")));
        } else {
            // `brace` starts with a single '{': the name runs to the next '}'.
            let body = &brace[1..];
            let Some(end) = body.find('}') else {
                return Err(Error::msg(format!("template has an unclosed '{{': {template:?}")));
            };
            let name = &body[..end];
            if name.is_empty() || name.contains('{') {
                return Err(Error::msg(format!("template has a malformed placeholder '{{{name}}}': {template:?}")));
            }
            let value = fields.get(name).ok_or_else(|| {
                let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                Error::msg(format!(
                    "template field '{name}' is not in the record (it has: {}); template: {template:?}",
                    known.join(", ")
                ))
            })?;
            out.push_str(&render(name, value, template)?);
            rest = &body[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Text of one field value for [`fill`].
fn render(name: &str, value: &Value, template: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(Error::msg(format!("template field '{name}' is null; template: {template:?}"))),
        Value::Array(_) | Value::Object(_) => Err(Error::msg(format!(
            "template field '{name}' is a list or map, not text; pick one element first; template: {template:?}"
        ))),
    }
}
