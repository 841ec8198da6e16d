//! Several methods, each run under several seeds, side by side: every cell a
//! mean over seeds with its bootstrap interval (`super::interval`), the
//! paper's Table 2 layout; and the means and paired differences a claim is
//! made of (a method's in-context mean, ProMoT minus fine-tuning).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::interval::{Bootstrap, Estimate};
use super::table::{render, Cell, ResultTable};
use crate::error::{Error, Result};

/// Methods (columns) with one results table per seed each; the i-th table of
/// every method comes from the same seed (same episodes), so differences pair.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub methods: Vec<(String, Vec<ResultTable>)>,
    pub bootstrap: Bootstrap,
}

impl Comparison {
    pub fn new(methods: Vec<(String, Vec<ResultTable>)>, bootstrap: Bootstrap) -> Result<Self> {
        let seeds = methods.first().map_or(0, |(_, t)| t.len());
        if seeds == 0 {
            return Err(Error::msg(
                "a comparison needs at least one method with at least one seed's results",
            ));
        }
        if let Some((name, t)) = methods.iter().find(|(_, t)| t.len() != seeds) {
            return Err(Error::msg(format!(
                "every method needs results for the same seeds: '{}' has {seeds}, '{name}' has {}",
                methods[0].0,
                t.len()
            )));
        }
        Ok(Comparison { methods, bootstrap })
    }

    pub fn seeds(&self) -> usize {
        self.methods[0].1.len()
    }

    fn method(&self, name: &str) -> Result<&[ResultTable]> {
        self.methods
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_slice())
            .ok_or_else(|| {
                let known: Vec<&str> = self.methods.iter().map(|(n, _)| n.as_str()).collect();
                Error::msg(format!("no method '{name}' in the comparison (it has {known:?})"))
            })
    }

    /// One method's cell under every seed, or None where some seed lacks it.
    fn per_seed(&self, method: &str, task: &str, shots: usize) -> Result<Option<Vec<&Cell>>> {
        Ok(self.method(method)?.iter().map(|t| t.get(task, shots)).collect())
    }

    /// Every (task, shots) of the method among `tasks`, each under every seed.
    fn cells_of(&self, method: &str, tasks: &[String]) -> Result<Vec<Vec<&Cell>>> {
        let mut out = Vec::new();
        for (task, shots) in self.rows() {
            if tasks.contains(&task) {
                if let Some(cells) = self.per_seed(method, &task, shots)? {
                    out.push(cells);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::msg(format!(
                "method '{method}' has no cells of the tasks {tasks:?} under every seed"
            )));
        }
        Ok(out)
    }

    /// (task, shots) in the order the tables first show them.
    pub fn rows(&self) -> Vec<(String, usize)> {
        let all: Vec<&Cell> = self
            .methods
            .iter()
            .flat_map(|(_, ts)| ts.iter().flat_map(|t| &t.cells))
            .collect();
        let shots: BTreeSet<usize> = all.iter().map(|c| c.shots).collect();
        let mut tasks: Vec<&str> = Vec::new();
        for c in &all {
            if !tasks.contains(&c.task.as_str()) {
                tasks.push(&c.task);
            }
        }
        let mut rows = Vec::new();
        for task in tasks {
            for &k in &shots {
                if all.iter().any(|c| c.task == task && c.shots == k) {
                    rows.push((task.to_string(), k));
                }
            }
        }
        rows
    }

    /// One method's cell: its mean over seeds and interval.
    pub fn cell(&self, method: &str, task: &str, shots: usize) -> Result<Option<Estimate>> {
        match self.per_seed(method, task, shots)? {
            Some(cells) => Ok(Some(self.bootstrap.estimate(&cells)?)),
            None => Ok(None),
        }
    }

    /// A method's mean over the cells of `tasks` (every shot count).
    pub fn mean(&self, method: &str, tasks: &[String]) -> Result<Estimate> {
        self.bootstrap.mean(&self.cells_of(method, tasks)?)
    }

    /// `a`'s mean over the cells of `tasks` minus `b`'s, paired by seed and
    /// example. The two must have the same cells.
    pub fn difference(&self, a: &str, b: &str, tasks: &[String]) -> Result<Estimate> {
        let (ca, cb) = (self.cells_of(a, tasks)?, self.cells_of(b, tasks)?);
        let key = |cs: &Vec<Vec<&Cell>>| -> Vec<(String, usize)> {
            cs.iter().map(|c| (c[0].task.clone(), c[0].shots)).collect()
        };
        if key(&ca) != key(&cb) {
            return Err(Error::msg(format!(
                "'{a}' and '{b}' do not have the same cells of {tasks:?} to compare"
            )));
        }
        self.bootstrap.difference(&ca, &cb)
    }

    /// The table: rows task x shots, a column per method, each cell
    /// `mean [lo, hi]` over the seeds.
    pub fn render(&self, markdown: bool) -> Result<String> {
        let mut header = vec!["task".to_string(), "shots".to_string()];
        header.extend(self.methods.iter().map(|(n, _)| n.clone()));
        let mut rows = Vec::new();
        for (task, k) in self.rows() {
            let mut row = vec![task.clone(), k.to_string()];
            for (name, _) in &self.methods {
                row.push(match self.per_seed(name, &task, k)? {
                    // Shares (0-1) need more digits than scores (0-100).
                    Some(cells) => {
                        let digits = if cells[0].metric == super::table::SHARE { 2 } else { 1 };
                        self.bootstrap.estimate(&cells)?.render(digits)
                    }
                    None => "-".into(),
                });
            }
            rows.push(row);
        }
        Ok(render(&header, &rows, markdown))
    }

    /// Every cell of every method: mean, interval and the per-seed values.
    pub fn to_json(&self) -> Result<Value> {
        let mut methods = serde_json::Map::new();
        for (name, _) in &self.methods {
            let mut cells = Vec::new();
            for (task, k) in self.rows() {
                if let Some(per_seed) = self.per_seed(name, &task, k)? {
                    let e = self.bootstrap.estimate(&per_seed)?;
                    cells.push(json!({
                        "task": task, "shots": k, "metric": per_seed[0].metric,
                        "mean": e.mean, "lo": e.lo, "hi": e.hi,
                        "values": per_seed.iter().map(|c| c.value).collect::<Vec<_>>(),
                        "n": per_seed.iter().map(|c| c.n).collect::<Vec<_>>(),
                    }));
                }
            }
            methods.insert(name.clone(), Value::Array(cells));
        }
        Ok(json!({
            "seeds": self.seeds(),
            "interval": { "level": self.bootstrap.level, "resamples": self.bootstrap.resamples,
                          "method": "percentile bootstrap over seeds, then examples within each seed; paired across methods" },
            "methods": methods,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(task: &str, hits: &[u8]) -> ResultTable {
        ResultTable {
            cells: vec![crate::eval::table::accuracy_cell(task, hits)],
        }
    }

    #[test]
    fn cells_show_intervals_and_differences_pair() {
        let a = vec![table("qa", &[1, 1, 0, 1]), table("qa", &[1, 0, 0, 1])];
        let b = vec![table("qa", &[0, 1, 0, 0]), table("qa", &[0, 0, 0, 1])];
        let c = Comparison::new(vec![("A".into(), a.clone()), ("B".into(), b)], Bootstrap::default()).unwrap();
        let text = c.render(false).unwrap();
        assert!(text.contains("62.5 ["), "{text}");
        let tasks = ["qa".to_string()];
        let d = c.difference("A", "B", &tasks).unwrap();
        assert_eq!(d.mean, 62.5 - 25.0);
        assert!(d.lo <= d.mean && d.mean <= d.hi);
        assert!(c.mean("C", &tasks).is_err());
        let same = Comparison::new(vec![("A".into(), a.clone()), ("A2".into(), a)], Bootstrap::default()).unwrap();
        let z = same.difference("A", "A2", &tasks).unwrap();
        assert_eq!((z.mean, z.lo, z.hi), (0.0, 0.0, 0.0));
    }

    #[test]
    fn methods_need_the_same_seeds() {
        let one = vec![table("qa", &[1])];
        let two = vec![table("qa", &[1]), table("qa", &[0])];
        assert!(Comparison::new(vec![("A".into(), one), ("B".into(), two)], Bootstrap::default()).is_err());
        assert!(Comparison::new(vec![], Bootstrap::default()).is_err());
    }
}
