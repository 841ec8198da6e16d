//! Result tables: cells of (task, shots, metric, value) that print for people
//! (aligned text, markdown) and save for programs (JSON), and several models'
//! results side by side as in the paper's Table 2.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::Result;

#[derive(Clone, Debug)]
pub struct Cell {
    pub task: String,
    pub shots: usize,
    pub metric: String,
    pub value: f64,
    pub n: usize,
    /// Share of outputs whose first word is in the probe label set (0-1).
    pub label_share: Option<f64>,
    /// A few (prompt, prediction, reference) triples to look at.
    pub samples: Vec<(String, String, String)>,
    /// Each example's sufficient statistics of the metric
    /// (`super::statistics`), what a bootstrap over examples resamples;
    /// empty for cells saved before they were kept.
    pub example_stats: Vec<Vec<f64>>,
    /// Each example's probe hit (1 when its output is in the probe's label
    /// set), when evaluated with a probe.
    pub probe_hits: Vec<f64>,
    /// What made it (`super::record`); `None` for cells loaded from files
    /// written before records existed.
    pub provenance: Option<Arc<super::record::Provenance>>,
}

impl Cell {
    pub fn to_json(&self) -> Value {
        json!({
            "task": self.task, "shots": self.shots, "metric": self.metric, "value": self.value, "n": self.n,
            "label_share": self.label_share,
            "samples": self.samples.iter().map(|(p, o, r)| json!({"prompt": p, "prediction": o, "reference": r})).collect::<Vec<_>>(),
            "example_stats": self.example_stats, "probe_hits": self.probe_hits,
        })
    }
    pub fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            task: v.get("task")?.as_str()?.to_string(),
            shots: v.get("shots")?.as_u64()? as usize,
            metric: v.get("metric")?.as_str()?.to_string(),
            value: v.get("value")?.as_f64()?,
            n: v.get("n")?.as_u64()? as usize,
            label_share: v.get("label_share").and_then(|s| s.as_f64()),
            samples: v
                .get("samples")?
                .as_array()?
                .iter()
                .filter_map(|s| {
                    Some((
                        s.get("prompt")?.as_str()?.into(),
                        s.get("prediction")?.as_str()?.into(),
                        s.get("reference")?.as_str()?.into(),
                    ))
                })
                .collect(),
            example_stats: v
                .get("example_stats")
                .and_then(|rows| serde_json::from_value(rows.clone()).ok())
                .unwrap_or_default(),
            probe_hits: v
                .get("probe_hits")
                .and_then(|hits| serde_json::from_value(hits.clone()).ok())
                .unwrap_or_default(),
            provenance: None,
        })
    }

    /// The cell's value on the examples `picked` (indices, repeats allowed),
    /// from the kept per-example statistics: what a bootstrap over examples
    /// draws. A share cell (`ResultTable::shares`) resamples its probe hits.
    pub fn resampled(&self, picked: impl IntoIterator<Item = usize>) -> Result<f64> {
        if self.metric == SHARE {
            let rows: Vec<Vec<f64>> = self.probe_hits.iter().map(|&h| vec![h]).collect();
            return Ok(super::statistics::score(&super::Metric::Accuracy, &rows, picked)? / 100.0);
        }
        let metric = super::Metric::from_name(&self.metric)?;
        super::statistics::score(&metric, &self.example_stats, picked)
    }

    /// How many examples `resampled` can draw from (0: none were kept).
    pub fn resamplable(&self) -> usize {
        if self.metric == SHARE {
            self.probe_hits.len()
        } else {
            self.example_stats.len()
        }
    }
}

/// A 1-shot accuracy cell whose examples are `hits` (1 correct, 0 wrong), for tests.
#[cfg(test)]
pub(crate) fn accuracy_cell(task: &str, hits: &[u8]) -> Cell {
    Cell {
        task: task.into(),
        shots: 1,
        metric: "accuracy".into(),
        value: 100.0 * hits.iter().map(|&h| f64::from(h)).sum::<f64>() / hits.len() as f64,
        n: hits.len(),
        label_share: None,
        samples: vec![],
        example_stats: hits.iter().map(|&h| vec![f64::from(h)]).collect(),
        probe_hits: vec![],
        provenance: None,
    }
}

/// The metric name of a probe's share cells (values 0-1).
pub const SHARE: &str = "share";

#[derive(Clone, Debug, Default)]
pub struct ResultTable {
    pub cells: Vec<Cell>,
}

fn tasks_in(cells: &[Cell]) -> Vec<String> {
    let mut seen = Vec::new();
    for c in cells {
        if !seen.contains(&c.task) {
            seen.push(c.task.clone());
        }
    }
    seen
}

/// Render rows of strings as an aligned text table or a markdown table.
pub fn render(header: &[String], rows: &[Vec<String>], markdown: bool) -> String {
    let cols = header.len();
    let mut width = vec![0usize; cols];
    for r in std::iter::once(header).chain(rows.iter().map(|r| r.as_slice())) {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |r: &[String]| -> String {
        let cells: Vec<String> = (0..cols)
            .map(|i| {
                let c = r.get(i).map(String::as_str).unwrap_or("");
                // Padded by hand: `format!`'s width panics past 65535 (a cell can be a long text).
                let pad = " ".repeat(width[i].saturating_sub(c.chars().count()));
                if i == 0 {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
                }
            })
            .collect();
        if markdown {
            format!("| {} |", cells.join(" | "))
        } else {
            cells.join("  ")
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(header));
    if markdown {
        let seps: Vec<String> = (0..cols)
            .map(|i| {
                if i == 0 {
                    "-".repeat(width[i].max(3))
                } else {
                    format!("{}:", "-".repeat(width[i].max(3) - 1))
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", seps.join(" | "));
    } else {
        let _ = writeln!(
            out,
            "{}",
            "-".repeat(width.iter().sum::<usize>() + 2 * cols.saturating_sub(1))
        );
    }
    for r in rows {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

impl ResultTable {
    /// The same cells with task `from` renamed `to` (e.g. "rte (target)").
    pub fn rename_task(&self, from: &str, to: &str) -> ResultTable {
        let mut cells = self.cells.clone();
        cells
            .iter_mut()
            .filter(|c| c.task == from)
            .for_each(|c| c.task = to.to_string());
        ResultTable { cells }
    }

    /// The probe label shares as a table of their own (metric "share",
    /// values 0-1), so they compare side by side like scores. Cells
    /// evaluated without a probe are left out.
    pub fn shares(&self) -> ResultTable {
        let cells = self
            .cells
            .iter()
            .filter_map(|c| {
                c.label_share.map(|s| Cell {
                    metric: SHARE.into(),
                    value: s,
                    ..c.clone()
                })
            })
            .collect();
        ResultTable { cells }
    }

    pub fn get(&self, task: &str, shots: usize) -> Option<&Cell> {
        self.cells.iter().find(|c| c.task == task && c.shots == shots)
    }

    fn shots(&self) -> Vec<usize> {
        self.cells
            .iter()
            .map(|c| c.shots)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Tasks × shots, with the metric named per row.
    pub fn render(&self, markdown: bool) -> String {
        let shots = self.shots();
        let has_share = self.cells.iter().any(|c| c.label_share.is_some());
        let mut header = vec!["task".to_string(), "metric".to_string()];
        for k in &shots {
            header.push(format!("{k}-shot"));
            if has_share {
                header.push(format!("{k}-shot share"));
            }
        }
        let rows: Vec<Vec<String>> = tasks_in(&self.cells)
            .into_iter()
            .map(|t| {
                let metric = self
                    .cells
                    .iter()
                    .find(|c| c.task == t)
                    .map(|c| c.metric.clone())
                    .unwrap_or_default();
                let mut row = vec![t.clone(), metric];
                for &k in &shots {
                    let cell = self.get(&t, k);
                    row.push(cell.map(|c| format!("{:.2}", c.value)).unwrap_or_else(|| "-".into()));
                    if has_share {
                        row.push(
                            cell.and_then(|c| c.label_share)
                                .map(|s| format!("{:.2}", s))
                                .unwrap_or_else(|| "-".into()),
                        );
                    }
                }
                row
            })
            .collect();
        render(&header, &rows, markdown)
    }

    /// The saved form: the cells with the records of what made them (`super::record`).
    pub fn to_json(&self) -> Value {
        super::record::to_json(self)
    }

    /// A table from its saved form (or the bare array of cells older files hold).
    pub fn from_json(v: &Value) -> Option<Self> {
        super::record::from_json(v, "results").ok()
    }
}

/// Several models side by side (columns), tasks × shots as rows: the layout
/// of the paper's Table 2.
pub fn compare(tables: &[(String, ResultTable)], markdown: bool) -> String {
    let mut header = vec!["task".to_string(), "shots".to_string()];
    header.extend(tables.iter().map(|(name, _)| name.clone()));
    let all: Vec<Cell> = tables.iter().flat_map(|(_, t)| t.cells.clone()).collect();
    let shots: Vec<usize> = all
        .iter()
        .map(|c| c.shots)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rows = Vec::new();
    for task in tasks_in(&all) {
        for &k in &shots {
            if !all.iter().any(|c| c.task == task && c.shots == k) {
                continue;
            }
            let mut row = vec![task.clone(), k.to_string()];
            for (_, t) in tables {
                row.push(
                    t.get(&task, k)
                        .map(|c| format!("{:.2}", c.value))
                        .unwrap_or_else(|| "-".into()),
                );
            }
            rows.push(row);
        }
    }
    render(&header, &rows, markdown)
}
