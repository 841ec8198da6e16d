//! Output post-processing, following the paper's appendix A.1:
//!
//! > For each task, we first extract the text after <extra_id_0> and before
//! > <extra_id_1>, then trim the text by locating and remove the text after the
//! > second prefix token (Q:, Translate, Article:). For classification tasks
//! > including RTE, CB and WiC, we check whether the first output token is True
//! > or False.
//!
//! [`postprocess`] applies, in order: [`strip_special_tokens`],
//! [`extract_sentinel`], [`cut_at_second_prefix`] with [`PREFIX_TOKENS`], and
//! for classification [`first_word`]. Each rule returns trimmed text.

use crate::error::{Error, Result};
use crate::metrics::first_word;

/// The prefix tokens that open a new example in the paper's templates.
pub const PREFIX_TOKENS: &[&str] = &["Q:", "Translate", "Article:"];

/// What a task's output is, which decides the last post-processing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// RTE, CB, WiC: the answer is the first word (True / False / Neither).
    Classification,
    /// QA, translation, summarization: the answer is the whole trimmed text.
    Generation,
}

impl OutputKind {
    /// Parses `classification` or `generation` (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "classification" => Ok(OutputKind::Classification),
            "generation" => Ok(OutputKind::Generation),
            _ => Err(Error::msg(format!(
                "unknown output kind '{name}' (known: classification, generation)"
            ))),
        }
    }
}

/// Applies the paper's post-processing rules in order and returns the answer
/// text to score.
pub fn postprocess(text: &str, kind: OutputKind) -> String {
    let text = strip_special_tokens(text);
    let text = extract_sentinel(&text);
    let text = cut_at_second_prefix(&text, PREFIX_TOKENS);
    match kind {
        OutputKind::Classification => first_word(&text).to_string(),
        OutputKind::Generation => text,
    }
}

/// Whether more text after `text` can no longer change
/// `postprocess(text, kind)`, so generation may stop here:
///
/// - classification: the first word is complete (whitespace follows it);
/// - generation: the text holds a prefix token past its start whose match
///   is settled (a prefix ending in a letter is followed by a non-letter),
///   which is where `cut_at_second_prefix` cuts.
///
/// Never while the text holds a `<`: a special token or sentinel may still
/// be forming. It assumes no `<extra_id_0>` follows (that would move the
/// answer after it), so it suits models that never emit sentinels
/// (decoder-only ones), not T5. No prefix token contains another, so a
/// later match cannot start before a settled one.
pub fn is_final(text: &str, kind: OutputKind) -> bool {
    if text.contains('<') {
        return false;
    }
    let t = text.trim_start();
    match kind {
        OutputKind::Classification => {
            // first_word's split: the word is complete once a space follows it.
            let rest = t.trim_start_matches(crate::metrics::is_python_space);
            rest.find(crate::metrics::is_python_space).is_some()
        }
        OutputKind::Generation => prefix_positions(t, PREFIX_TOKENS).into_iter().any(|pos| {
            let prefix = PREFIX_TOKENS
                .iter()
                .find(|p| t[pos..].starts_with(**p))
                .copied()
                .unwrap_or("");
            let ends_alnum = prefix.chars().last().is_some_and(char::is_alphanumeric);
            pos > 0 && (!ends_alnum || t[pos + prefix.len()..].chars().next().is_some())
        }),
    }
}

/// Removes the `<pad>` and `</s>` markers, which a decode that keeps special
/// tokens (needed to see the sentinels) leaves in the text.
pub fn strip_special_tokens(text: &str) -> String {
    text.replace("<pad>", "").replace("</s>", "").trim().to_string()
}

/// Finds the first span sentinel `<extra_id_N>` at or after byte `from`,
/// returning its byte range.
fn find_sentinel(text: &str, from: usize) -> Option<(usize, usize)> {
    const OPEN: &str = "<extra_id_";
    let mut search = from;
    while let Some(rel) = text.get(search..)?.find(OPEN) {
        let start = search + rel;
        let digits_start = start + OPEN.len();
        let rest = text.get(digits_start..)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest.as_bytes().get(digits) == Some(&b'>') {
            return Some((start, digits_start + digits + 1));
        }
        search = digits_start;
    }
    None
}

/// Takes the span the model filled for `<extra_id_0>`: the text after the
/// first `<extra_id_0>` up to the next sentinel (normally `<extra_id_1>`; any
/// `<extra_id_N>` ends the span, since the model emits them in order). With
/// only `<extra_id_0>` present, everything after it. Without `<extra_id_0>`,
/// the text before the first sentinel, or all of it when there is none.
pub fn extract_sentinel(text: &str) -> String {
    let start = match text.find("<extra_id_0>") {
        Some(pos) => pos + "<extra_id_0>".len(),
        None => 0,
    };
    let end = find_sentinel(text, start).map_or(text.len(), |(s, _)| s);
    text.get(start..end).unwrap_or("").trim().to_string()
}

/// Byte positions where a prefix token occurs as a token of its own: the
/// character before it is not alphanumeric (or it starts the text), and, when
/// the prefix ends in a letter or digit, the character after it is not one
/// either. So "FAQ:" holds no "Q:" and "Translated" no "Translate".
fn prefix_positions(text: &str, prefixes: &[&str]) -> Vec<usize> {
    let mut positions = Vec::new();
    for prefix in prefixes.iter().filter(|p| !p.is_empty()) {
        let ends_alnum = prefix.chars().last().is_some_and(char::is_alphanumeric);
        for (pos, _) in text.match_indices(prefix) {
            let before_ok = text[..pos].chars().last().is_none_or(|c| !c.is_alphanumeric());
            let after_ok = !ends_alnum
                || text[pos + prefix.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric());
            if before_ok && after_ok {
                positions.push(pos);
            }
        }
    }
    positions.sort_unstable();
    positions.dedup();
    positions
}

/// Cuts the output at the second prefix token, counting the one that opened
/// the query.
///
/// The prompt's last example, the query, already begins with a prefix token
/// ("Q: ...", "Translate ...", "Article: ..."): that is the first. The model
/// continues it, and when it goes on to invent a further example, that
/// example's prefix is the second, where the answer ends. Precisely, on the
/// trimmed text:
///
/// - if it does not begin with a prefix token, the query's prefix (in the
///   prompt) was the first, so the text is cut at its first prefix token;
/// - if it begins with one (the model restated the query's prefix before
///   answering), that one is the first and the text is cut at the next.
///
/// Everything from the cut on is removed; the rest is trimmed. Prefix tokens
/// match case-sensitively and only as whole tokens (see `prefix_positions`).
pub fn cut_at_second_prefix(text: &str, prefixes: &[&str]) -> String {
    let text = text.trim();
    let positions = prefix_positions(text, prefixes);
    let cut = positions.into_iter().find(|&pos| pos > 0);
    match cut {
        Some(pos) => text[..pos].trim().to_string(),
        None => text.to_string(),
    }
}
