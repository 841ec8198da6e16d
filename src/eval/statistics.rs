//! Each metric as sufficient statistics per example: numbers that, summed over
//! any subset of a cell's examples, give the metric on that subset exactly as
//! `super::score` would (accuracy and exact match: one hit count; ROUGE-2: one
//! F1; BLEU: lengths and n-gram counts, so resampled corpus BLEU is still
//! corpus BLEU). A cell keeps its examples' statistics, which is what a
//! bootstrap over examples (`super::interval`) resamples.

use super::Metric;
use crate::error::{Error, Result};
use crate::metrics;

/// The statistics of one example: its post-processed prediction against its
/// references.
pub fn example(metric: &Metric, prediction: &str, references: &[String]) -> Result<Vec<f64>> {
    let first = || references.first().map(String::as_str).unwrap_or("");
    Ok(match metric {
        Metric::Accuracy => vec![hit(metrics::first_word(prediction) == first())],
        Metric::ExactMatch => vec![hit(metrics::exact_match(prediction, references))],
        Metric::Bleu => metrics::segment_statistics(prediction, references)?.to_vec(),
        Metric::Rouge2 => vec![metrics::rouge2(prediction, first()).fmeasure],
    })
}

fn hit(yes: bool) -> f64 {
    if yes {
        1.0
    } else {
        0.0
    }
}

/// The metric (0-100) of the examples `picked` (indices into `stats`, repeats
/// allowed, as a bootstrap draws them).
pub fn score(metric: &Metric, stats: &[Vec<f64>], picked: impl IntoIterator<Item = usize>) -> Result<f64> {
    let width = stats.first().map_or(0, Vec::len);
    let mut sum = vec![0.0; width];
    let mut n = 0usize;
    for i in picked {
        let row = stats.get(i).filter(|r| r.len() == width).ok_or_else(|| {
            Error::msg(format!(
                "{} statistics: no example {i} of {}",
                metric.name(),
                stats.len()
            ))
        })?;
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
        n += 1;
    }
    if n == 0 {
        return Err(Error::msg(format!("{}: no examples to score", metric.name())));
    }
    Ok(match metric {
        Metric::Bleu => metrics::bleu_from_statistics(&sum)?,
        _ => 100.0 * sum[0] / n as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    /// Summed statistics give exactly what the metric functions give, for
    /// every metric, on the whole set and on a subset with repeats.
    #[test]
    fn summed_statistics_equal_the_metrics() {
        let preds = strings(&[
            "True",
            "the cat sat on the mat.",
            "False maybe",
            "a dog ran",
            "",
            "paris",
        ]);
        let refs: Vec<Vec<String>> = vec![
            strings(&["True"]),
            strings(&["the cat sat on a mat.", "a cat sat on the mat."]),
            strings(&["True"]),
            strings(&["the dog ran away"]),
            strings(&["something"]),
            strings(&["Paris", "paris, france"]),
        ];
        let picks: [Vec<usize>; 2] = [(0..preds.len()).collect(), vec![1, 1, 3, 5, 0]];
        for metric in [Metric::Accuracy, Metric::ExactMatch, Metric::Bleu, Metric::Rouge2] {
            let stats: Vec<Vec<f64>> = preds
                .iter()
                .zip(&refs)
                .map(|(p, r)| example(&metric, p, r).unwrap())
                .collect();
            for pick in &picks {
                let p: Vec<String> = pick.iter().map(|&i| preds[i].clone()).collect();
                let r: Vec<Vec<String>> = pick.iter().map(|&i| refs[i].clone()).collect();
                let want = super::super::score(&metric, &p, &r).unwrap();
                let got = score(&metric, &stats, pick.iter().copied()).unwrap();
                assert!(
                    (want - got).abs() <= 1e-9 * want.abs().max(1.0),
                    "{}: {got} vs {want}",
                    metric.name()
                );
            }
        }
    }

    #[test]
    fn empty_and_out_of_range_picks_are_errors() {
        let stats = vec![vec![1.0]];
        assert!(score(&Metric::Accuracy, &stats, []).is_err());
        assert!(score(&Metric::Accuracy, &stats, [3]).is_err());
    }
}
