//! How sure a number is: percentile intervals from a two-level bootstrap, over
//! seeds and then over each seed's evaluation examples (a method's result
//! varies with the run's seed and with the episodes drawn; both are resampled).
//!
//! Replicate `b` draws the seeds once for every cell it touches, and the same
//! examples for cells of the same task and shot count, so replicates of two
//! methods evaluated on the same seeds' episodes are *paired*: the interval of
//! a difference between methods (`difference`) counts only the variation that
//! does not cancel. A statistic of several cells (a mean over in-context
//! tasks) is computed replicate by replicate, then its interval taken.

use serde::Serialize;

use super::table::Cell;
use crate::error::{Error, Result};

/// A point estimate with its interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// The mean over seeds of the full-data values.
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Estimate {
    /// `mean [lo, hi]` with `decimals` digits.
    pub fn render(&self, decimals: usize) -> String {
        format!("{:.d$} [{:.d$}, {:.d$}]", self.mean, self.lo, self.hi, d = decimals)
    }
}

/// The bootstrap's settings: `resamples` replicates, a central `level`
/// interval, and the seed of its draws (results are reproducible).
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub resamples: usize,
    pub level: f64,
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: 1000,
            level: 0.95,
            seed: 0,
        }
    }
}

/// One cell observed under each seed: `per_seed[i]` is seed i's.
pub type Seeds<'a> = [&'a Cell];

impl Bootstrap {
    fn check(&self) -> Result<()> {
        if self.resamples == 0 || !(self.level > 0.0 && self.level < 1.0) {
            return Err(Error::msg(format!(
                "bootstrap: resamples must be positive and level in (0, 1), got {} and {}",
                self.resamples, self.level
            )));
        }
        Ok(())
    }

    /// The seeds replicate `b` draws (indices into 0..seeds), the same for every cell.
    fn seed_draw(&self, b: usize, seeds: usize) -> Vec<usize> {
        use rand::Rng;
        let mut rng = crate::seed::rng(self.seed, &format!("bootstrap:{b}:seeds"));
        (0..seeds).map(|_| rng.random_range(0..seeds)).collect()
    }

    /// The cell's value in each replicate: the mean over the drawn seeds of
    /// the cell re-scored on examples drawn with replacement.
    pub fn replicates(&self, per_seed: &Seeds) -> Result<Vec<f64>> {
        use rand::Rng;
        self.check()?;
        let first = per_seed
            .first()
            .ok_or_else(|| Error::msg("bootstrap: a cell observed under no seed"))?;
        for c in per_seed {
            if c.task != first.task || c.shots != first.shots || c.metric != first.metric {
                return Err(Error::msg(format!(
                    "bootstrap: the seeds' cells differ ({} {}-shot {} against {} {}-shot {})",
                    first.task, first.shots, first.metric, c.task, c.shots, c.metric
                )));
            }
            if c.resamplable() == 0 {
                return Err(Error::msg(format!(
                    "bootstrap: {} {}-shot kept no per-example statistics (a result saved before they were kept: evaluate it again)",
                    c.task, c.shots
                )));
            }
        }
        (0..self.resamples)
            .map(|b| {
                let seeds = self.seed_draw(b, per_seed.len());
                let mut total = 0.0;
                for (j, &s) in seeds.iter().enumerate() {
                    let cell = per_seed[s];
                    let n = cell.resamplable();
                    let mut rng =
                        crate::seed::rng(self.seed, &format!("bootstrap:{b}:{j}:{}:{}", cell.task, cell.shots));
                    total += cell.resampled((0..n).map(|_| rng.random_range(0..n)))?;
                }
                Ok(total / seeds.len() as f64)
            })
            .collect()
    }

    /// A point estimate and the central `level` interval of its replicates.
    pub fn interval(&self, point: f64, replicates: &[f64]) -> Result<Estimate> {
        self.check()?;
        let mut sorted: Vec<f64> = replicates.to_vec();
        if sorted.is_empty() || sorted.iter().any(|v| !v.is_finite()) {
            return Err(Error::msg("bootstrap: no replicates, or a non-finite one"));
        }
        sorted.sort_by(f64::total_cmp);
        let tail = (1.0 - self.level) / 2.0;
        Ok(Estimate {
            mean: point,
            lo: quantile(&sorted, tail),
            hi: quantile(&sorted, 1.0 - tail),
        })
    }

    /// One cell over seeds: the mean of its values and their interval.
    pub fn estimate(&self, per_seed: &Seeds) -> Result<Estimate> {
        let reps = self.replicates(per_seed)?;
        self.interval(mean_value(per_seed), &reps)
    }

    /// The mean of several cells (each over the same seeds), e.g. a method's
    /// in-context mean.
    pub fn mean(&self, cells: &[Vec<&Cell>]) -> Result<Estimate> {
        let (point, reps) = self.mean_replicates(cells)?;
        self.interval(point, &reps)
    }

    /// `a`'s mean of cells minus `b`'s, paired cell by cell (same tasks, shots
    /// and seeds on both sides), e.g. ProMoT's in-context mean minus
    /// fine-tuning's.
    pub fn difference(&self, a: &[Vec<&Cell>], b: &[Vec<&Cell>]) -> Result<Estimate> {
        let (pa, ra) = self.mean_replicates(a)?;
        let (pb, rb) = self.mean_replicates(b)?;
        let reps: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| x - y).collect();
        self.interval(pa - pb, &reps)
    }

    fn mean_replicates(&self, cells: &[Vec<&Cell>]) -> Result<(f64, Vec<f64>)> {
        if cells.is_empty() {
            return Err(Error::msg("bootstrap: a mean of no cells"));
        }
        let mut sum = vec![0.0; self.resamples];
        let mut point = 0.0;
        for per_seed in cells {
            for (s, r) in sum.iter_mut().zip(self.replicates(per_seed)?) {
                *s += r;
            }
            point += mean_value(per_seed);
        }
        let k = cells.len() as f64;
        Ok((point / k, sum.into_iter().map(|s| s / k).collect()))
    }
}

fn mean_value(per_seed: &Seeds) -> f64 {
    per_seed.iter().map(|c| c.value).sum::<f64>() / per_seed.len().max(1) as f64
}

/// The `q` quantile of sorted values, interpolating linearly between ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::eval::table::accuracy_cell as cell;

    #[test]
    fn a_constant_cell_has_a_zero_width_interval() {
        let (a, b) = (cell("qa", &[1; 20]), cell("qa", &[1; 20]));
        let e = Bootstrap::default().estimate(&[&a, &b]).unwrap();
        assert_eq!((e.mean, e.lo, e.hi), (100.0, 100.0, 100.0));
    }

    #[test]
    fn the_interval_holds_the_mean_and_narrows_with_more_examples() {
        let boot = Bootstrap::default();
        let small: Vec<Cell> = (0..3)
            .map(|s| cell("qa", &[1, 0, (s % 2) as u8, 1, 0, 1, 0, 1]))
            .collect();
        let big: Vec<Cell> = (0..3)
            .map(|s| cell("qa", &[1, 0, (s % 2) as u8, 1, 0, 1, 0, 1].repeat(16)))
            .collect();
        let es = boot.estimate(&small.iter().collect::<Vec<_>>()).unwrap();
        let eb = boot.estimate(&big.iter().collect::<Vec<_>>()).unwrap();
        assert!(es.lo <= es.mean && es.mean <= es.hi, "{es:?}");
        assert!(eb.lo <= eb.mean && eb.mean <= eb.hi, "{eb:?}");
        assert!(eb.hi - eb.lo < 0.6 * (es.hi - es.lo), "{eb:?} vs {es:?}");
    }

    /// Paired replicates: a method against itself differs by exactly 0 in
    /// every replicate, however noisy the cells are.
    #[test]
    fn a_difference_with_itself_is_exactly_zero() {
        let cells: Vec<Cell> = (0..3).map(|s| cell("qa", &[1, 0, 1, (s % 2) as u8, 0, 0, 1])).collect();
        let per_seed: Vec<&Cell> = cells.iter().collect();
        let d = Bootstrap::default()
            .difference(std::slice::from_ref(&per_seed), std::slice::from_ref(&per_seed))
            .unwrap();
        assert_eq!((d.mean, d.lo, d.hi), (0.0, 0.0, 0.0));
    }

    /// With 95% intervals, a fair coin's accuracy over 3 seeds of 50
    /// examples holds 50 in about 95% of experiments.
    #[test]
    fn coverage_is_near_the_level() {
        use rand::Rng;
        let boot = Bootstrap {
            resamples: 400,
            ..Bootstrap::default()
        };
        let mut rng = crate::seed::rng(1, "coverage");
        let trials = 120;
        let mut covered = 0;
        for _ in 0..trials {
            let cells: Vec<Cell> = (0..3)
                .map(|_| cell("qa", &(0..50).map(|_| rng.random_range(0..2u8)).collect::<Vec<_>>()))
                .collect();
            let e = boot.estimate(&cells.iter().collect::<Vec<_>>()).unwrap();
            covered += (e.lo <= 50.0 && 50.0 <= e.hi) as usize;
        }
        let rate = covered as f64 / trials as f64;
        assert!((0.82..=1.0).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn mismatched_or_statless_cells_are_errors() {
        let a = cell("qa", &[1, 0]);
        let b = cell("rte", &[1, 0]);
        assert!(Bootstrap::default().estimate(&[&a, &b]).is_err());
        let mut c = cell("qa", &[1, 0]);
        c.example_stats.clear();
        assert!(Bootstrap::default().estimate(&[&c]).is_err());
        assert!(Bootstrap::default().estimate(&[]).is_err());
    }
}
