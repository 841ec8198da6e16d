//! Line plots as standalone SVG files, and the same drawing rasterized to PNG:
//! enough to draw the paper's training curves (Fig. 2: share of True/False outputs and
//! accuracy against fine-tuning steps; Fig. 3: gradient cosine similarity per
//! parameter group against steps).
//!
//! A plot has a left y axis and, optionally, a right one with its own series
//! (Fig. 1/2 put accuracy on the left and the True/False ratio on the right).
//! Points whose x or y is NaN or infinite are skipped, and the line breaks
//! there, so a missing evaluation shows as a gap instead of a false segment.
//!
//! The drawing is defined once, as SVG ([to_svg]); PNGs are that SVG rendered
//! by `resvg` ([svg_to_png]) with DejaVu Sans compiled into the binary, so text
//! renders the same on a machine without fonts. [save] writes `fig.svg` and
//! `fig.png` from one call.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{self, fontdb};

use crate::error::{Error, Result};

/// Width of the drawing in SVG user units (pixels when viewed at 100%).
pub const WIDTH: f64 = 720.0;
/// Height of the drawing.
pub const HEIGHT: f64 = 420.0;

/// Okabe–Ito colours: distinguishable with the common colour-vision
/// deficiencies. Yellow is last because it is faint on white.
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
];
/// Marker shapes cycle with a period (5) coprime to the palette's (8), so
/// series that share a colour still differ in shape.
const MARKERS: usize = 5;
/// Above this many points a series is drawn as a bare line: markers would merge.
const MAX_MARKED_POINTS: usize = 100;
/// How many ticks an axis aims for.
const TARGET_TICKS: usize = 5;

const FONT_SIZE: f64 = 12.0;
const TITLE_SIZE: f64 = 15.0;
/// Rough width of one character at FONT_SIZE, for laying out labels without a font engine.
const CHAR_WIDTH: f64 = 6.8;
const LEGEND_ROW: f64 = 18.0;
const LEGEND_SAMPLE: f64 = 24.0;
/// Lines are clipped this far outside the plot area, so markers on the
/// frame (the first and last step usually are) show whole.
const CLIP_MARGIN: f64 = 6.0;

/// One line: named points (x, y).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
}

impl Series {
    pub fn new(name: impl Into<String>, xs: Vec<f64>, ys: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            xs,
            ys,
        }
    }
}

/// A right-hand y axis with its own label, range and series (drawn dashed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondaryAxis {
    pub label: String,
    pub series: Vec<Series>,
    /// Fixed (min, max); `None` fits the data with nice bounds.
    pub y_range: Option<(f64, f64)>,
}

/// A line plot: title, axis labels, series on the left axis, and an optional right axis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed (min, max) for the left axis; `None` fits the data with nice bounds.
    /// Points outside a fixed range are clipped at the plot's edge.
    pub y_range: Option<(f64, f64)>,
    pub secondary: Option<SecondaryAxis>,
}

impl Plot {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        Plot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Default::default()
        }
    }
}

/// Render a plot as an SVG document. Errors (never panics) on a plot without
/// series, a series that is empty, has xs and ys of different lengths or no
/// finite point, and an invalid fixed range.
pub fn to_svg(plot: &Plot) -> Result<String> {
    if plot.series.is_empty() {
        return Err(Error::msg(format!("plot '{}': no series to draw", plot.title)));
    }
    let right_series: &[Series] = plot.secondary.as_ref().map(|s| s.series.as_slice()).unwrap_or(&[]);
    for s in plot.series.iter().chain(right_series) {
        check_series(s)?;
    }
    let all = || plot.series.iter().chain(right_series);
    let x_axis = fit_axis("x", all().flat_map(finite_points).map(|(x, _)| x), None)?;
    let left = fit_axis(
        "y",
        plot.series.iter().flat_map(finite_points).map(|(_, y)| y),
        plot.y_range,
    )?;
    let right = match &plot.secondary {
        Some(sec) if !sec.series.is_empty() => Some(fit_axis(
            "right y",
            sec.series.iter().flat_map(finite_points).map(|(_, y)| y),
            sec.y_range,
        )?),
        _ => None,
    };
    let legend: Vec<LegendEntry> = plot
        .series
        .iter()
        .map(|s| (s.name.clone(), false))
        .chain(right_series.iter().map(|s| (format!("{} (right)", s.name), true)))
        .enumerate()
        .map(|(i, (label, dashed))| LegendEntry {
            label,
            style: Style::nth(i, dashed),
        })
        .collect();
    let frame = Frame::layout(&x_axis, &left, right.as_ref(), &legend);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"{FONT_SIZE}\">"
    );
    let _ = writeln!(svg, "<title>{}</title>", escape(&plot.title));
    let _ = writeln!(
        svg,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        svg,
        "<defs><clipPath id=\"plot-area\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/></clipPath></defs>",
        frame.left - CLIP_MARGIN,
        frame.top - CLIP_MARGIN,
        frame.width() + 2.0 * CLIP_MARGIN,
        frame.height() + 2.0 * CLIP_MARGIN
    );
    draw_grid(&mut svg, &frame, &x_axis, &left);
    draw_axes(&mut svg, &frame, &x_axis, &left, right.as_ref());
    draw_labels(&mut svg, &frame, plot, right.is_some());
    let _ = writeln!(svg, "<g clip-path=\"url(#plot-area)\">");
    let styled = plot
        .series
        .iter()
        .map(|s| (s, &left))
        .chain(right_series.iter().map(|s| (s, right.as_ref().unwrap_or(&left))));
    for ((series, y_axis), entry) in styled.zip(&legend) {
        draw_series(&mut svg, &frame, series, &x_axis, y_axis, &entry.style);
    }
    let _ = writeln!(svg, "</g>");
    draw_legend(&mut svg, &frame, &legend);
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// Render and write the SVG atomically (an interrupted save leaves the old file).
pub fn save_svg(plot: &Plot, path: impl AsRef<Path>) -> Result<()> {
    let svg = to_svg(plot)?;
    crate::fsio::write_atomic(path.as_ref(), svg.as_bytes())
}

/// PNG pixels per SVG user unit: a PNG is `WIDTH·PNG_SCALE × HEIGHT·PNG_SCALE`
/// (1440 × 840), sharp enough for print and high-DPI screens.
pub const PNG_SCALE: f32 = 2.0;

/// The one font PNG text is drawn with, compiled in (provenance and licence in
/// `assets/fonts/`). The SVG asks for "Helvetica, Arial, sans-serif"; neither
/// named family is in the database, so `sans-serif` resolves to this.
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "DejaVu Sans";

/// The font database, built once: only the embedded font, no system fonts.
fn font_db() -> Arc<fontdb::Database> {
    static DB: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_font_source(fontdb::Source::Binary(Arc::new(FONT)));
        db.set_sans_serif_family(FONT_FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Rasterize an SVG document (as made by [to_svg]) to PNG bytes at [PNG_SCALE].
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>> {
    let options = usvg::Options {
        font_family: FONT_FAMILY.to_string(),
        fontdb: font_db(),
        ..Default::default()
    };
    let tree = usvg::Tree::from_str(svg, &options)
        .map_err(|e| Error::msg(format!("plot: cannot read the SVG to rasterize it: {e}")))?;
    let size = tree.size().to_int_size().scale_by(PNG_SCALE).ok_or_else(|| {
        Error::msg(format!(
            "plot: cannot scale a {}x{} drawing by {PNG_SCALE}",
            tree.size().width(),
            tree.size().height()
        ))
    })?;
    let mut pixmap = Pixmap::new(size.width(), size.height()).ok_or_else(|| {
        Error::msg(format!(
            "plot: cannot allocate a {}x{} image",
            size.width(),
            size.height()
        ))
    })?;
    resvg::render(&tree, Transform::from_scale(PNG_SCALE, PNG_SCALE), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| Error::msg(format!("plot: cannot encode the PNG: {e}")))
}

/// Render a plot as PNG bytes: [to_svg], rasterized by [svg_to_png].
pub fn to_png(plot: &Plot) -> Result<Vec<u8>> {
    svg_to_png(&to_svg(plot)?)
}

/// Render and write the PNG atomically.
pub fn save_png(plot: &Plot, path: impl AsRef<Path>) -> Result<()> {
    crate::fsio::write_atomic(path.as_ref(), &to_png(plot)?)
}

/// Write a plot by the extension of `path`: `fig.svg` writes `fig.svg` and
/// `fig.png` beside it; `fig.png` writes the PNG only; anything else is an
/// error. Both are rendered before either is written, so a bad plot writes
/// nothing; each file is saved atomically. Returns the paths written.
pub fn save(plot: &Plot, path: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let path = path.as_ref();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => {
            let svg = to_svg(plot)?;
            let png = svg_to_png(&svg)?;
            let png_path = path.with_extension("png");
            crate::fsio::write_atomic(path, svg.as_bytes())?;
            crate::fsio::write_atomic(&png_path, &png)?;
            Ok(vec![path.to_path_buf(), png_path])
        }
        Some("png") => {
            save_png(plot, path)?;
            Ok(vec![path.to_path_buf()])
        }
        _ => Err(Error::file(
            path,
            "a plot path must end in .svg (writes the SVG and a PNG beside it) or .png (writes the PNG only)",
        )),
    }
}

/// Tick positions for the span [lo, hi]: multiples of a step that is 1, 2 or
/// 5 times a power of ten, about `target` of them, all inside [lo, hi]
/// (up to rounding). Empty when the span is not finite or not increasing.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    match NiceStep::fit(lo, hi, target) {
        Some(step) => ticks_with(lo, hi, step),
        None => Vec::new(),
    }
}

/// The multiples of `step` inside [lo, hi].
fn ticks_with(lo: f64, hi: f64, step: NiceStep) -> Vec<f64> {
    let size = step.size();
    let first = (lo / size - 1e-9).ceil();
    let last = (hi / size + 1e-9).floor();
    let count = last - first;
    // Guard against spans far below f64 resolution at their magnitude.
    if !(0.0..=1000.0).contains(&count) {
        return Vec::new();
    }
    (0..=count as usize).map(|k| step.times(first + k as f64)).collect()
}

/// The nice step (1, 2 or 5 × 10^k) that cuts [lo, hi] into about `target`
/// parts; `None` when the span is not finite and increasing.
pub fn nice_step(lo: f64, hi: f64, target: usize) -> Option<f64> {
    NiceStep::fit(lo, hi, target).map(|s| s.size())
}

/// A step kept as mantissa × 10^exponent, so that tick n is computed as
/// n·m / 10^-k: 3 × 0.1 gives 0.3, not 0.30000000000000004.
#[derive(Debug, Clone, Copy)]
struct NiceStep {
    mantissa: f64,
    exponent: i32,
}

impl NiceStep {
    fn fit(lo: f64, hi: f64, target: usize) -> Option<NiceStep> {
        let span = hi - lo;
        if !(lo.is_finite() && hi.is_finite() && span.is_finite() && span > 0.0) {
            return None;
        }
        let raw = span / target.max(1) as f64;
        let exponent = raw.log10().floor() as i32;
        let magnitude = 10f64.powi(exponent);
        // Round the raw step to the nearest of 1, 2, 5, 10 on a log scale
        // (cut points are geometric means), so the tick count stays near the target
        // instead of always rounding up to fewer, wider steps.
        let norm = raw / magnitude;
        let mantissa = match norm {
            n if n >= 50f64.sqrt() => 10.0,
            n if n >= 10f64.sqrt() => 5.0,
            n if n >= 2f64.sqrt() => 2.0,
            _ => 1.0,
        };
        let step = if mantissa == 10.0 {
            NiceStep {
                mantissa: 1.0,
                exponent: exponent + 1,
            }
        } else {
            NiceStep { mantissa, exponent }
        };
        (step.size() > 0.0 && step.size().is_finite()).then_some(step)
    }
    fn size(&self) -> f64 {
        self.times(1.0)
    }
    fn times(&self, n: f64) -> f64 {
        let v = if self.exponent < 0 {
            n * self.mantissa / 10f64.powi(-self.exponent)
        } else {
            n * self.mantissa * 10f64.powi(self.exponent)
        };
        if v == 0.0 {
            0.0
        } else {
            v
        }
    }
}

fn check_series(s: &Series) -> Result<()> {
    if s.xs.len() != s.ys.len() {
        return Err(Error::msg(format!(
            "plot series '{}': {} xs but {} ys",
            s.name,
            s.xs.len(),
            s.ys.len()
        )));
    }
    if s.xs.is_empty() {
        return Err(Error::msg(format!("plot series '{}' is empty", s.name)));
    }
    if finite_points(s).next().is_none() {
        return Err(Error::msg(format!(
            "plot series '{}' has no finite point (every x or y is NaN or infinite)",
            s.name
        )));
    }
    Ok(())
}

fn finite_points(s: &Series) -> impl Iterator<Item = (f64, f64)> + '_ {
    s.xs.iter()
        .zip(&s.ys)
        .map(|(x, y)| (*x, *y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// An axis: its value range and the ticks drawn on it.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    step: f64,
}

impl Axis {
    fn labels(&self) -> Vec<String> {
        self.ticks.iter().map(|t| tick_label(*t, self.step)).collect()
    }
}

/// Fit an axis to the values (nice bounds) or take the fixed range as given.
fn fit_axis(name: &str, values: impl Iterator<Item = f64>, fixed: Option<(f64, f64)>) -> Result<Axis> {
    let (lo, hi, expand) = match fixed {
        Some((lo, hi)) => {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(Error::msg(format!(
                    "plot: {name} range ({lo}, {hi}) must be finite with min < max"
                )));
            }
            (lo, hi, false)
        }
        None => {
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if !(lo.is_finite() && hi.is_finite()) {
                return Err(Error::msg(format!("plot: no finite {name} values")));
            }
            let (lo, hi) = pad_flat(lo, hi);
            (lo, hi, true)
        }
    };
    let step = NiceStep::fit(lo, hi, TARGET_TICKS).ok_or_else(|| {
        Error::msg(format!(
            "plot: the {name} range ({lo:e} to {hi:e}) is too wide (or too narrow) to draw"
        ))
    })?;
    let (lo, hi) = if expand {
        (
            step.times((lo / step.size()).floor()),
            step.times((hi / step.size()).ceil()),
        )
    } else {
        (lo, hi)
    };
    let ticks = ticks_with(lo, hi, step);
    let step = step.size();
    if ticks.is_empty() || !(hi - lo).is_finite() {
        return Err(Error::msg(format!(
            "plot: cannot place ticks on the {name} range ({lo:e} to {hi:e})"
        )));
    }
    Ok(Axis { lo, hi, ticks, step })
}

/// A single point or a constant series has a zero span: widen it so the line
/// sits in the middle of a readable range.
fn pad_flat(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        return (lo, hi);
    }
    let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - pad, hi + pad)
}

/// Tick text with as many decimals as the step needs (0.2 → "0.2", 100 → "100").
fn tick_label(v: f64, step: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v };
    let big = v.abs().max(step);
    if big >= 1e6 || step < 1e-4 {
        let s = format!("{v:e}");
        return if s == "0e0" { "0".into() } else { s };
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Where the plot area sits on the page and how legend rows are laid out.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    legend_top: f64,
    legend_rows: Vec<Vec<(usize, f64)>>,
}

impl Frame {
    fn layout(x_axis: &Axis, left_axis: &Axis, right_axis: Option<&Axis>, legend: &[LegendEntry]) -> Frame {
        let widest = |a: &Axis| a.labels().iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * CHAR_WIDTH;
        let left = 30.0 + widest(left_axis) + 10.0;
        // The last x tick label is centred on the frame's right edge: leave room for its half.
        let last_x_label = x_axis.labels().last().map(|l| l.chars().count()).unwrap_or(1) as f64 * CHAR_WIDTH;
        let right = WIDTH
            - right_axis
                .map(|a| 30.0 + widest(a) + 10.0)
                .unwrap_or((last_x_label / 2.0 + 6.0).max(24.0));
        let legend_top = 40.0;
        // Legend items flow left to right under the title, wrapping at the plot's width.
        let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new()];
        let mut x = left;
        for (i, entry) in legend.iter().enumerate() {
            let w = LEGEND_SAMPLE + 6.0 + entry.label.chars().count() as f64 * CHAR_WIDTH + 18.0;
            if x + w > right && rows.last().is_some_and(|r| !r.is_empty()) {
                rows.push(Vec::new());
                x = left;
            }
            if let Some(row) = rows.last_mut() {
                row.push((i, x));
            }
            x += w;
        }
        // Past a handful of rows the legend would crush the plot; drop the rest.
        rows.truncate(6);
        let top = legend_top + rows.len() as f64 * LEGEND_ROW + 4.0;
        Frame {
            left,
            right,
            top,
            bottom: HEIGHT - 50.0,
            legend_top,
            legend_rows: rows,
        }
    }
    fn width(&self) -> f64 {
        self.right - self.left
    }
    fn height(&self) -> f64 {
        self.bottom - self.top
    }
    fn x(&self, axis: &Axis, v: f64) -> f64 {
        self.left + (v - axis.lo) / (axis.hi - axis.lo) * self.width()
    }
    fn y(&self, axis: &Axis, v: f64) -> f64 {
        self.bottom - (v - axis.lo) / (axis.hi - axis.lo) * self.height()
    }
}

/// How one series is drawn; the legend shows the same style.
#[derive(Debug, Clone, Copy)]
struct Style {
    color: &'static str,
    marker: usize,
    dashed: bool,
}

impl Style {
    fn nth(i: usize, dashed: bool) -> Style {
        Style {
            color: PALETTE[i % PALETTE.len()],
            marker: i % MARKERS,
            dashed,
        }
    }
    fn dash_attr(&self) -> &'static str {
        if self.dashed {
            " stroke-dasharray=\"7 4\""
        } else {
            ""
        }
    }
}

struct LegendEntry {
    label: String,
    style: Style,
}

fn draw_grid(svg: &mut String, f: &Frame, x_axis: &Axis, y_axis: &Axis) {
    let _ = writeln!(svg, "<g stroke=\"#e5e5e5\" stroke-width=\"1\">");
    for t in &x_axis.ticks {
        let x = f.x(x_axis, *t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
            f.top, f.bottom
        );
    }
    for t in &y_axis.ticks {
        let y = f.y(y_axis, *t);
        let _ = writeln!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
            f.left, f.right
        );
    }
    let _ = writeln!(svg, "</g>");
}

fn draw_axes(svg: &mut String, f: &Frame, x_axis: &Axis, left: &Axis, right: Option<&Axis>) {
    let _ = writeln!(
        svg,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#333\" stroke-width=\"1\"/>",
        f.left,
        f.top,
        f.width(),
        f.height()
    );
    let _ = writeln!(svg, "<g stroke=\"#333\" stroke-width=\"1\">");
    for t in &x_axis.ticks {
        let x = f.x(x_axis, *t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
            f.bottom,
            f.bottom + 5.0
        );
    }
    for t in &left.ticks {
        let y = f.y(left, *t);
        let _ = writeln!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
            f.left - 5.0,
            f.left
        );
    }
    if let Some(right) = right {
        for t in &right.ticks {
            let y = f.y(right, *t);
            let _ = writeln!(
                svg,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
                f.right,
                f.right + 5.0
            );
        }
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, "<g fill=\"#333\">");
    for (t, label) in x_axis.ticks.iter().zip(x_axis.labels()) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            f.x(x_axis, *t),
            f.bottom + 19.0
        );
    }
    for (t, label) in left.ticks.iter().zip(left.labels()) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            f.left - 8.0,
            f.y(left, *t) + 4.0
        );
    }
    if let Some(right) = right {
        for (t, label) in right.ticks.iter().zip(right.labels()) {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"start\">{label}</text>",
                f.right + 8.0,
                f.y(right, *t) + 4.0
            );
        }
    }
    let _ = writeln!(svg, "</g>");
}

fn draw_labels(svg: &mut String, f: &Frame, plot: &Plot, has_right_axis: bool) {
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"{TITLE_SIZE}\" font-weight=\"bold\">{}</text>",
        (f.left + f.right) / 2.0,
        escape(&plot.title)
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (f.left + f.right) / 2.0,
        HEIGHT - 12.0,
        escape(&plot.x_label)
    );
    let mid_y = (f.top + f.bottom) / 2.0;
    let _ = writeln!(
        svg,
        "<text transform=\"translate(16 {mid_y:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        escape(&plot.y_label)
    );
    if let Some(sec) = plot.secondary.as_ref().filter(|_| has_right_axis) {
        let x = WIDTH - 12.0;
        let _ = writeln!(
            svg,
            "<text transform=\"translate({x:.1} {mid_y:.1}) rotate(90)\" text-anchor=\"middle\">{}</text>",
            escape(&sec.label)
        );
    }
}

fn draw_series(svg: &mut String, f: &Frame, s: &Series, x_axis: &Axis, y_axis: &Axis, style: &Style) {
    // One path per series; a non-finite point ends the current run with a new "M".
    let mut d = String::new();
    let mut pen_down = false;
    let mut points = Vec::new();
    for (x, y) in s.xs.iter().zip(&s.ys) {
        if !(x.is_finite() && y.is_finite()) {
            pen_down = false;
            continue;
        }
        let (px, py) = (f.x(x_axis, *x), f.y(y_axis, *y));
        let _ = write!(d, "{}{px:.2} {py:.2} ", if pen_down { "L" } else { "M" });
        pen_down = true;
        points.push((px, py));
    }
    let _ = writeln!(svg, "<g class=\"series\">");
    let _ = writeln!(
        svg,
        "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"{}/>",
        d.trim_end(),
        style.color,
        style.dash_attr()
    );
    if points.len() <= MAX_MARKED_POINTS {
        for (px, py) in points {
            marker(svg, px, py, style);
        }
    }
    let _ = writeln!(svg, "</g>");
}

/// A filled marker centred on (x, y): circle, square, triangle, diamond, inverted triangle.
fn marker(svg: &mut String, x: f64, y: f64, style: &Style) {
    let c = style.color;
    let r = 3.5;
    let _ = match style.marker {
        0 => writeln!(svg, "<circle cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"{r}\" fill=\"{c}\"/>"),
        1 => writeln!(
            svg,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\"/>",
            x - r * 0.9,
            y - r * 0.9,
            r * 1.8,
            r * 1.8
        ),
        2 => writeln!(
            svg,
            "<polygon points=\"{:.2},{:.2} {:.2},{:.2} {:.2},{:.2}\" fill=\"{c}\"/>",
            x,
            y - r * 1.2,
            x + r * 1.1,
            y + r * 0.8,
            x - r * 1.1,
            y + r * 0.8
        ),
        3 => writeln!(
            svg,
            "<polygon points=\"{:.2},{:.2} {:.2},{:.2} {:.2},{:.2} {:.2},{:.2}\" fill=\"{c}\"/>",
            x,
            y - r * 1.3,
            x + r * 1.1,
            y,
            x,
            y + r * 1.3,
            x - r * 1.1,
            y
        ),
        _ => writeln!(
            svg,
            "<polygon points=\"{:.2},{:.2} {:.2},{:.2} {:.2},{:.2}\" fill=\"{c}\"/>",
            x,
            y + r * 1.2,
            x + r * 1.1,
            y - r * 0.8,
            x - r * 1.1,
            y - r * 0.8
        ),
    };
}

fn draw_legend(svg: &mut String, f: &Frame, legend: &[LegendEntry]) {
    let _ = writeln!(svg, "<g class=\"legend\">");
    for (row_index, row) in f.legend_rows.iter().enumerate() {
        let y = f.legend_top + row_index as f64 * LEGEND_ROW;
        for (i, x) in row {
            let Some(entry) = legend.get(*i) else { continue };
            let style = &entry.style;
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"2\"{}/>",
                x + LEGEND_SAMPLE,
                style.color,
                style.dash_attr()
            );
            marker(svg, x + LEGEND_SAMPLE / 2.0, y, style);
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + LEGEND_SAMPLE + 6.0,
                y + 4.0,
                escape(&entry.label)
            );
        }
    }
    let _ = writeln!(svg, "</g>");
}

/// Text for SVG character data and attribute values. Control characters other
/// than tab and newline are not allowed in XML 1.0, so they are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}
