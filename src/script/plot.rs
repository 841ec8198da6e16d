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

use rhai::{Engine, Map};

use super::tensor::reg;
use super::{to_rhai, RResult};
use crate::plot::{save, Plot};
use crate::plot_spec::PlotSpec;

/// The plot a script's spec map describes (`crate::plot_spec`).
pub fn plot_from_map(spec: &Map) -> RResult<Plot> {
    let spec: PlotSpec = super::options::parse("plot_lines", spec, &[])?;
    spec.plot().map_err(|e| to_rhai(format!("plot_lines: {e}")))
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
