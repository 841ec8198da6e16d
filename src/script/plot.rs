//! Plots in scripts: `plot_lines(path, spec)` writes a line plot, e.g.
//!
//! ```text
//! plot_lines("runs/fig2.svg", #{
//!     title: "True/False outputs on TriviaQA", x_label: "fine-tuning step",
//!     y_label: "accuracy on RTE", y_min: 0.0, y_max: 1.0,
//!     series: [#{ name: "RTE accuracy", xs: steps, ys: acc }],
//!     secondary: #{ y_label: "ratio of True/False", y_min: 0.0, y_max: 1.0,
//!                   series: [#{ name: "True/False", xs: steps, ys: ratio }] },
//! });
//! ```
//!
//! writes `runs/fig2.svg` and `runs/fig2.png` (a path ending in `.png` writes
//! the PNG only; see [crate::plot::save]).
//!
//! Numbers may be ints or floats; `()` in `ys` is a missing point (a gap in
//! the line). A series without `xs` is drawn at x = 0, 1, 2, ... A series
//! with `lower` and `upper` (one value per point, e.g. an interval over
//! seeds) is drawn with a shaded band between them.

use rhai::{Array, Dynamic, Engine, Map};

use super::model::{check_keys, map_str};
use super::tensor::reg;
use super::{to_rhai, RResult};
use crate::plot::{save, Band, Plot, SecondaryAxis, Series};

const PLOT_KEYS: &[&str] = &["title", "x_label", "y_label", "y_min", "y_max", "series", "secondary"];
const SECONDARY_KEYS: &[&str] = &["y_label", "y_min", "y_max", "series"];
const SERIES_KEYS: &[&str] = &["name", "xs", "ys", "lower", "upper"];

/// The plot a script's spec map describes.
pub fn plot_from_map(spec: &Map) -> RResult<Plot> {
    check_keys("plot_lines", spec, PLOT_KEYS)?;
    let secondary = match spec.get("secondary") {
        None => None,
        Some(v) if v.is_unit() => None,
        Some(v) => {
            let m = v.read_lock::<Map>().ok_or_else(|| {
                to_rhai("plot_lines: option 'secondary' must be a map #{y_label, y_min, y_max, series}")
            })?;
            check_keys("plot_lines secondary", &m, SECONDARY_KEYS)?;
            Some(SecondaryAxis {
                label: map_str(&m, "y_label", "")?,
                series: series_list(&m, "secondary")?,
                y_range: range(&m)?,
            })
        }
    };
    Ok(Plot {
        title: map_str(spec, "title", "")?,
        x_label: map_str(spec, "x_label", "")?,
        y_label: map_str(spec, "y_label", "")?,
        series: series_list(spec, "series")?,
        y_range: range(spec)?,
        secondary,
    })
}

fn series_list(m: &Map, what: &str) -> RResult<Vec<Series>> {
    let list = m
        .get("series")
        .ok_or_else(|| to_rhai(format!("plot_lines: {what} needs 'series': [#{{name, xs, ys}}, ...]")))?;
    let list = list.read_lock::<Array>().ok_or_else(|| {
        to_rhai(format!(
            "plot_lines: {what} 'series' must be an array of maps #{{name, xs, ys}}"
        ))
    })?;
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let s = item
                .read_lock::<Map>()
                .ok_or_else(|| to_rhai(format!("plot_lines: {what} entry {i} must be a map #{{name, xs, ys}}")))?;
            check_keys("plot_lines series", &s, SERIES_KEYS)?;
            let name = map_str(&s, "name", &format!("series {}", i + 1))?;
            let ys =
                numbers(&s, "ys", &name)?.ok_or_else(|| to_rhai(format!("plot_lines: series '{name}' needs 'ys'")))?;
            let xs = match numbers(&s, "xs", &name)? {
                Some(xs) => xs,
                None => (0..ys.len()).map(|i| i as f64).collect(),
            };
            let band = match (numbers(&s, "lower", &name)?, numbers(&s, "upper", &name)?) {
                (None, None) => None,
                (Some(lower), Some(upper)) => Some(Band { lower, upper }),
                _ => {
                    return Err(to_rhai(format!(
                        "plot_lines: series '{name}' needs both 'lower' and 'upper' for a band, or neither"
                    )))
                }
            };
            Ok(Series { name, xs, ys, band })
        })
        .collect()
}

/// An array of ints/floats under `key`; `()` becomes NaN (a missing point).
fn numbers(m: &Map, key: &str, series: &str) -> RResult<Option<Vec<f64>>> {
    let Some(v) = m.get(key) else { return Ok(None) };
    let arr = v.read_lock::<Array>().ok_or_else(|| {
        to_rhai(format!(
            "plot_lines: series '{series}' '{key}' must be an array of numbers"
        ))
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            number(x).ok_or_else(|| {
                to_rhai(format!(
                    "plot_lines: series '{series}' {key}[{i}] is a {}, not a number",
                    x.type_name()
                ))
            })
        })
        .collect::<RResult<Vec<f64>>>()
        .map(Some)
}

fn number(x: &Dynamic) -> Option<f64> {
    if x.is_unit() {
        return Some(f64::NAN);
    }
    x.as_float().ok().or_else(|| x.as_int().ok().map(|i| i as f64))
}

/// `y_min` and `y_max` fix the range together; one alone is ambiguous.
fn range(m: &Map) -> RResult<Option<(f64, f64)>> {
    let get = |k: &str| -> RResult<Option<f64>> {
        match m.get(k) {
            None => Ok(None),
            Some(v) => number(v)
                .filter(|x| !x.is_nan())
                .map(Some)
                .ok_or_else(|| to_rhai(format!("plot_lines: option '{k}' must be a number"))),
        }
    };
    match (get("y_min")?, get("y_max")?) {
        (None, None) => Ok(None),
        (Some(lo), Some(hi)) => Ok(Some((lo, hi))),
        _ => Err(to_rhai("plot_lines: give both y_min and y_max, or neither")),
    }
}

pub fn register(engine: &mut Engine) {
    reg(
        engine,
        "plot_lines",
        &["path: &str", "spec: Map", "String"],
        "Write a line plot: \"x.svg\" writes x.svg and x.png, \"x.png\" the PNG only; spec #{title, x_label, y_label, y_min, y_max, series: [#{name, xs, ys, lower, upper}], secondary: #{y_label, y_min, y_max, series}}; returns the path.",
        |path: &str, spec: Map| -> RResult<String> {
            let plot = plot_from_map(&spec)?;
            save(&plot, path).map_err(to_rhai)?;
            Ok(path.to_string())
        },
    );
}
