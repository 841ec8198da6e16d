//! What must hold before a run can say anything about ProMoT, measured and
//! printed before the methods are compared (the paper takes them for granted
//! on its 13B models; a small model can miss any of them):
//!
//! 1. the pretrained model learns every in-context task in context: each of
//!    its in-context cells is above the task's constant-answer score;
//! 2. the target has headroom: the pretrained model scores it at most
//!    `HEADROOM` at every shot count, and fine-tuning reaches `LEARNED`;
//! 3. the target's format is its own: no in-context task's references are in
//!    it (at most `FOREIGN_SHARE` of any task's);
//! 4. prompt tuning alone puts the target's format on at least `ABSORBED` of
//!    the target's outputs (the prompt took the format, so stage 2 need not).
//!
//! A check that fails is reported as failed with its number; the run goes on.

use super::comparison::Comparison;
use super::format::Format;
use super::table::render;
use super::{score, EvalTask};
use crate::error::{Error, Result};

/// The pretrained model's target score may be at most this at any shot count.
pub const HEADROOM: f64 = 30.0;
/// Fine-tuning must reach this on the held-out target.
pub const LEARNED: f64 = 80.0;
/// Prompt tuning's share of target outputs in the target's format.
pub const ABSORBED: f64 = 0.95;
/// The largest share of an in-context task's references in the target's format.
pub const FOREIGN_SHARE: f64 = 0.05;

/// One measured precondition.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub requirement: String,
    pub measured: String,
    pub holds: bool,
}

/// The score of always giving a task's most common answer: what "above
/// chance" is measured against (for classification, the majority class).
pub fn constant_answer_score(task: &EvalTask) -> Result<f64> {
    let refs: Vec<Vec<String>> = task.examples.iter().map(|e| e.references.clone()).collect();
    let mut answers: Vec<&String> = refs.iter().filter_map(|r| r.first()).collect();
    if answers.is_empty() {
        return Err(Error::msg(format!(
            "task {} has no answers to take a constant from",
            task.name
        )));
    }
    answers.sort();
    let mut best = (0usize, answers[0]);
    let mut i = 0;
    while i < answers.len() {
        let j = answers[i..].iter().take_while(|a| **a == answers[i]).count();
        if j > best.0 {
            best = (j, answers[i]);
        }
        i += j;
    }
    let constant = vec![best.1.clone(); refs.len()];
    score(&task.metric, &constant, &refs)
}

/// (1) Every in-context cell of `method` (over seeds) above its task's
/// constant-answer score: the lower end of its interval must be.
pub fn learns_in_context(c: &Comparison, method: &str, tasks: &[EvalTask]) -> Result<Check> {
    let mut worst: Option<(f64, String)> = None;
    let mut all = true;
    for task in tasks {
        let chance = constant_answer_score(task)?;
        for (name, k) in c.rows().into_iter().filter(|(n, _)| *n == task.name) {
            let Some(e) = c.cell(method, &name, k)? else { continue };
            let margin = e.lo - chance;
            all &= margin > 0.0;
            if worst.as_ref().is_none_or(|(m, _)| margin < *m) {
                worst = Some((
                    margin,
                    format!(
                        "{name} {k}-shot {} against a constant answer's {chance:.1}",
                        e.render(1)
                    ),
                ));
            }
        }
    }
    let (_, at) = worst.ok_or_else(|| Error::msg(format!("no in-context cells of '{method}' to check")))?;
    Ok(Check {
        name: "the model learns in context".into(),
        requirement: "every in-context cell's interval above a constant answer's score".into(),
        measured: format!("closest: {at}"),
        holds: all,
    })
}

/// (2) Headroom: `pretrained` scores the target at most `HEADROOM` at every
/// shot count it was evaluated at, and `fine_tuned` reaches `LEARNED` on it.
pub fn headroom(c: &Comparison, target: &str, pretrained: &str, fine_tuned: &str) -> Result<Vec<Check>> {
    let rows: Vec<usize> = c
        .rows()
        .into_iter()
        .filter(|(n, _)| n == target)
        .map(|(_, k)| k)
        .collect();
    let mut before = Vec::new();
    let mut low = true;
    for &k in &rows {
        if let Some(e) = c.cell(pretrained, target, k)? {
            low &= e.mean <= HEADROOM;
            before.push(format!("{k}-shot {}", e.render(1)));
        }
    }
    if before.is_empty() {
        return Err(Error::msg(format!("'{pretrained}' has no cell of the target {target}")));
    }
    let after = rows
        .iter()
        .filter_map(|&k| c.cell(fine_tuned, target, k).transpose())
        .collect::<Result<Vec<_>>>()?;
    let best = after.iter().max_by(|a, b| a.mean.total_cmp(&b.mean));
    Ok(vec![
        Check {
            name: "the target is new to the model".into(),
            requirement: format!("{pretrained} scores the target at most {HEADROOM} at every shot count"),
            measured: before.join(", "),
            holds: low,
        },
        Check {
            name: "fine-tuning learns the target".into(),
            requirement: format!("{fine_tuned} reaches {LEARNED} on held-out target data"),
            measured: best.map_or_else(|| format!("'{fine_tuned}' has no target cell"), |e| e.render(1)),
            holds: best.is_some_and(|e| e.mean >= LEARNED),
        },
    ])
}

/// (3) The target's format is no in-context task's: the share of each
/// task's references in it.
pub fn format_is_its_own(format: &Format, target: &str, tasks: &[EvalTask]) -> Result<Check> {
    let mut shares: Vec<(f64, &str)> = tasks
        .iter()
        .map(|t| {
            let refs: Vec<&str> = t
                .examples
                .iter()
                .filter_map(|e| e.references.first().map(String::as_str))
                .collect();
            (format.share(&refs), t.name.as_str())
        })
        .collect();
    shares.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (top, name) = *shares
        .first()
        .ok_or_else(|| Error::msg("no in-context tasks to check the format against"))?;
    Ok(Check {
        name: "the target's format is its own".into(),
        requirement: format!("at most {FOREIGN_SHARE} of any in-context task's answers are in {target}'s format"),
        measured: format!("largest: {name} {top:.2}"),
        holds: top <= FOREIGN_SHARE,
    })
}

/// (4) The prompt took the format: `prompt_tuned`'s share of target
/// outputs in the target's format (its target cells were evaluated with the
/// format as probe), mean over seeds.
pub fn prompt_took_format(shares: &Comparison, target: &str, prompt_tuned: &str) -> Result<Check> {
    let cells = shares
        .rows()
        .into_iter()
        .filter(|(n, _)| n == target)
        .filter_map(|(n, k)| shares.cell(prompt_tuned, &n, k).transpose())
        .collect::<Result<Vec<_>>>()?;
    let e = cells.first().ok_or_else(|| {
        Error::msg(format!(
            "'{prompt_tuned}' has no format share on {target} (evaluate it with the format as probe)"
        ))
    })?;
    Ok(Check {
        name: "the prompt absorbed the format".into(),
        requirement: format!("{prompt_tuned} puts the target's format on at least {ABSORBED} of target outputs"),
        measured: format!("{:.2} [{:.2}, {:.2}]", e.mean, e.lo, e.hi),
        holds: e.mean >= ABSORBED,
    })
}

/// The format of `task` from its examples' references.
pub fn format_of(task: &EvalTask) -> Result<Format> {
    let answers: Vec<String> = task
        .examples
        .iter()
        .filter_map(|e| e.references.first().cloned())
        .collect();
    Format::of_answers(task.kind, &answers)
}

/// The checks as a table: held or FAILED, what was required, what was measured.
pub fn render_checks(checks: &[Check], markdown: bool) -> String {
    let header: Vec<String> = ["precondition", "holds", "required", "measured"]
        .map(String::from)
        .to_vec();
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let verdict = if c.holds { "yes" } else { "FAILED" };
            vec![
                c.name.clone(),
                verdict.into(),
                c.requirement.clone(),
                c.measured.clone(),
            ]
        })
        .collect();
    render(&header, &rows, markdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, metric: &str, answers: &[&str]) -> EvalTask {
        let kind = if metric == "accuracy" {
            "classification"
        } else {
            "generation"
        };
        let examples: Vec<_> = answers
            .iter()
            .map(|a| serde_json::json!({ "input": "q", "target": a }))
            .collect();
        serde_json::from_value(
            serde_json::json!({ "name": name, "metric": metric, "kind": kind, "examples": examples }),
        )
        .unwrap()
    }

    #[test]
    fn the_constant_answer_is_the_most_common_one() {
        let t = task("rte", "accuracy", &["True", "False", "True", "True"]);
        assert_eq!(constant_answer_score(&t).unwrap(), 75.0);
        let q = task("qa", "exact_match", &["paris", "rome", "oslo", "rome"]);
        assert_eq!(constant_answer_score(&q).unwrap(), 50.0);
    }

    #[test]
    fn a_foreign_format_is_measured_on_references() {
        let fr_en = task("fr_en", "bleu", &["the dog sees a cat.", "a cat sees the tall tree."]);
        let f = format_of(&fr_en).unwrap();
        let en_de = task("en_de", "bleu", &["schaen zechwinger guchen.", "the dog."]);
        let c = format_is_its_own(&f, "fr_en", &[en_de]).unwrap();
        assert!(!c.holds, "{c:?}");
        assert!(c.measured.contains("0.50"), "{c:?}");
    }
}
