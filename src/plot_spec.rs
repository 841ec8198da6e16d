//! A line plot as data: what `plot_lines(path, spec)` takes, read with serde
//! (scripts pass a map, files JSON), and turned into a checked [`Plot`].
//!
//! ```text
//! #{ title, x_label, y_label, y_min, y_max,
//!    series: [#{ name, xs, ys, lower, upper }],
//!    secondary: #{ y_label, y_min, y_max, series: [...] } }
//! ```
//!
//! Numbers may be ints or floats; `()` (JSON null) in a list is a missing
//! point (a gap in the line). A series without `xs` is drawn at x = 0, 1, 2,
//! ...; one with `lower` and `upper` (one value per point) gets a shaded band.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::options::opt_number;
use crate::plot::{Band, Plot, SecondaryAxis, Series};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlotSpec {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// y_min and y_max fix the left axis's range together (none: fit the data).
    #[serde(deserialize_with = "opt_number")]
    pub y_min: Option<f64>,
    #[serde(deserialize_with = "opt_number")]
    pub y_max: Option<f64>,
    pub series: Option<Vec<SeriesSpec>>,
    /// A right-hand axis with series of its own (drawn dashed).
    pub secondary: Option<AxisSpec>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AxisSpec {
    pub y_label: String,
    #[serde(deserialize_with = "opt_number")]
    pub y_min: Option<f64>,
    #[serde(deserialize_with = "opt_number")]
    pub y_max: Option<f64>,
    pub series: Option<Vec<SeriesSpec>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesSpec {
    pub name: Option<String>,
    #[serde(deserialize_with = "points")]
    pub xs: Option<Vec<f64>>,
    #[serde(deserialize_with = "points")]
    pub ys: Option<Vec<f64>>,
    #[serde(deserialize_with = "points")]
    pub lower: Option<Vec<f64>>,
    #[serde(deserialize_with = "points")]
    pub upper: Option<Vec<f64>>,
}

/// A list of numbers where null is a missing point (NaN).
fn points<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Vec<f64>>, D::Error> {
    let Some(list) = Option::<Vec<Value>>::deserialize(d)? else {
        return Ok(None);
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| D::Error::custom(format!("point {i} is not a number"))),
            other => Err(D::Error::custom(format!("point {i} is {other}, not a number"))),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

/// `y_min` and `y_max` together, or neither.
fn range(what: &str, lo: Option<f64>, hi: Option<f64>) -> Result<Option<(f64, f64)>> {
    match (lo, hi) {
        (None, None) => Ok(None),
        (Some(lo), Some(hi)) => Ok(Some((lo, hi))),
        _ => Err(Error::msg(format!("{what}: give both y_min and y_max, or neither"))),
    }
}

fn series(what: &str, list: &Option<Vec<SeriesSpec>>) -> Result<Vec<Series>> {
    let list = list
        .as_ref()
        .ok_or_else(|| Error::msg(format!("{what} needs 'series': [#{{name, xs, ys}}, ...]")))?;
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let name = s.name.clone().unwrap_or_else(|| format!("series {}", i + 1));
            let ys =
                s.ys.clone()
                    .ok_or_else(|| Error::msg(format!("series '{name}' needs 'ys'")))?;
            let xs =
                s.xs.clone()
                    .unwrap_or_else(|| (0..ys.len()).map(|i| i as f64).collect());
            let band = match (&s.lower, &s.upper) {
                (None, None) => None,
                (Some(lower), Some(upper)) => Some(Band {
                    lower: lower.clone(),
                    upper: upper.clone(),
                }),
                _ => {
                    return Err(Error::msg(format!(
                        "series '{name}' needs both 'lower' and 'upper' for a band, or neither"
                    )))
                }
            };
            Ok(Series { name, xs, ys, band })
        })
        .collect()
}

impl PlotSpec {
    /// The plot this spec describes (its drawing checks the rest: lengths,
    /// finite points, ranges).
    pub fn plot(&self) -> Result<Plot> {
        let secondary = match &self.secondary {
            None => None,
            Some(axis) => Some(SecondaryAxis {
                label: axis.y_label.clone(),
                series: series("secondary", &axis.series)?,
                y_range: range("secondary", axis.y_min, axis.y_max)?,
            }),
        };
        Ok(Plot {
            title: self.title.clone(),
            x_label: self.x_label.clone(),
            y_label: self.y_label.clone(),
            series: series("the plot", &self.series)?,
            y_range: range("plot", self.y_min, self.y_max)?,
            secondary,
        })
    }
}
