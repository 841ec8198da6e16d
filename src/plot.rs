//! Line plots as SVG and PNG: a thin adapter from [Plot] to a `plotters`
//! chart, enough for the paper's training curves (Fig. 2: share of True/False
//! outputs and accuracy against fine-tuning steps, on twin y axes; Fig. 3:
//! gradient cosine similarity per parameter group) and the trade-off plots
//! (Figs. 6-7).
//!
//! plotters draws everything (caption, mesh and ticks, the twin axis, lines,
//! markers, bands, legend); this module only checks the data (a clear error
//! instead of a panic or a blank figure), fits the axes' ranges, picks
//! colours, and breaks a line at a missing point (NaN or infinite x or y), so
//! a missing evaluation shows as a gap instead of a false segment. A series
//! on the left axis is solid with circles, one on the right dashed with
//! triangles; a [Band] (an interval over seeds, say) is shaded in its
//! series' colour on either axis. The legend goes in the plotting area's
//! corner with the fewest points.
//!
//! Text is drawn with DejaVu Sans compiled into the binary (registered with
//! plotters' `ab_glyph` font table, which has no system fonts), so a machine
//! without fonts renders the same image. [save] writes `fig.svg` and
//! `fig.png` from one call.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::data::float::FloatPrettyPrinter;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;

use crate::error::{Error, Result};

/// Width of the SVG drawing in pixels.
pub const WIDTH: u32 = 720;
/// Height of the SVG drawing.
pub const HEIGHT: u32 = 420;
/// A PNG is the same drawing at `PNG_SCALE` times the size (1440 × 840), sharp
/// enough for print and high-DPI screens.
pub const PNG_SCALE: u32 = 2;

/// Okabe–Ito colours: distinguishable with the common colour-vision
/// deficiencies. Yellow is last because it is faint on white.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0xF0, 0xE4, 0x42),
];
/// Above this many points a series is drawn as a bare line: markers would merge.
const MAX_MARKED_POINTS: usize = 100;
/// How many tick labels an axis has at most.
const TICKS: usize = 6;
/// A tick label: as many decimals as it needs (`0.2`, `100`), or scientific
/// where that is shorter (`1.2e-5`, `1e6`).
const TICK_LABEL: FloatPrettyPrinter = FloatPrettyPrinter {
    allow_scientific: true,
    min_decimal: 0,
    max_decimal: 9,
};
const GRID: RGBColor = RGBColor(0xE6, 0xE6, 0xE6);
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// The font every text is drawn and measured with, compiled in (provenance
/// and licence in `assets/fonts/`).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "sans-serif";

/// One line: named points (x, y), and optionally a shaded band around it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    pub band: Option<Band>,
}

/// The lower and upper edge of a band, one value per point of its series
/// (an interval over seeds, say). A point with a non-finite edge has no band.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Band {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

impl Series {
    pub fn new(name: impl Into<String>, xs: Vec<f64>, ys: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            xs,
            ys,
            band: None,
        }
    }

    /// The same series with a band from `lower` to `upper`.
    pub fn with_band(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        self.band = Some(Band { lower, upper });
        self
    }
}

/// A right-hand y axis with its own label, range and series (drawn dashed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondaryAxis {
    pub label: String,
    pub series: Vec<Series>,
    /// Fixed (min, max); `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// A line plot: title, axis labels, series on the left axis, and an optional right axis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed (min, max) for the left axis; `None` fits the data.
    /// Points outside a fixed range are drawn on the plot's edge (plotters clamps them).
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

    fn right_series(&self) -> &[Series] {
        self.secondary.as_ref().map(|s| s.series.as_slice()).unwrap_or(&[])
    }
}

/// Render a plot as an SVG document. Errors (never panics) on a plot without
/// series, a series that is empty, has xs and ys (or a band) of different
/// lengths or no finite point, and an invalid fixed range.
pub fn to_svg(plot: &Plot) -> Result<String> {
    let axes = Axes::fit(plot)?;
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
    draw(root, plot, &axes, 1)?;
    Ok(svg)
}

/// Render a plot as PNG bytes, `WIDTH·PNG_SCALE × HEIGHT·PNG_SCALE` pixels.
pub fn to_png(plot: &Plot) -> Result<Vec<u8>> {
    let axes = Axes::fit(plot)?;
    let (w, h) = (WIDTH * PNG_SCALE, HEIGHT * PNG_SCALE);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
    draw(root, plot, &axes, PNG_SCALE)?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let encode = |e: png::EncodingError| Error::msg(format!("plot '{}': cannot encode the PNG: {e}", plot.title));
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(&rgb).map_err(encode)?;
    writer.finish().map_err(encode)?;
    Ok(out)
}

/// Write a plot as an SVG file (atomically).
pub fn save_svg(plot: &Plot, path: impl AsRef<Path>) -> Result<()> {
    let svg = to_svg(plot)?;
    crate::fsio::write_atomic(path.as_ref(), svg.as_bytes())
}

/// Write a plot as a PNG file (atomically).
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
            let png = to_png(plot)?;
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

/// Register the compiled-in font under the family name every text uses
/// (once per process).
fn font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT_FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "plot: the compiled-in font cannot be read".to_string())
        })
        .clone()
        .map_err(Error::msg)
}

/// What is checked and fitted before drawing: the axes' ranges and the
/// legend's corner.
struct Axes {
    x: Range<f64>,
    left: Range<f64>,
    right: Option<Range<f64>>,
    legend: SeriesLabelPosition,
}

impl Axes {
    fn fit(plot: &Plot) -> Result<Axes> {
        font()?;
        if plot.series.is_empty() {
            return Err(Error::msg(format!("plot '{}': no series to draw", plot.title)));
        }
        let right = plot.right_series();
        for s in plot.series.iter().chain(right) {
            check_series(s)?;
        }
        let xs = plot.series.iter().chain(right).flat_map(finite_points).map(|(x, _)| x);
        let x = fit("x", xs, None)?;
        let mut left = fit("y", plot.series.iter().flat_map(ys_shown), plot.y_range)?;
        let mut right = match &plot.secondary {
            Some(sec) if !sec.series.is_empty() => {
                Some(fit("right y", sec.series.iter().flat_map(ys_shown), sec.y_range)?)
            }
            _ => None,
        };
        let legend = place_legend(plot, &x, &mut left, right.as_mut());
        Ok(Axes { x, left, right, legend })
    }
}

fn check_series(s: &Series) -> Result<()> {
    let fail = |what: String| Err(Error::msg(format!("plot: series '{}' {what}", s.name)));
    let n = s.ys.len();
    if n == 0 {
        return fail("is empty".into());
    }
    if s.xs.len() != n {
        return fail(format!("has {} xs but {n} ys", s.xs.len()));
    }
    if let Some(b) = s.band.as_ref().filter(|b| b.lower.len() != n || b.upper.len() != n) {
        let (lo, hi) = (b.lower.len(), b.upper.len());
        return fail(format!("has {n} points but its band {lo} lower and {hi} upper values"));
    }
    if finite_points(s).next().is_none() {
        return fail("has no finite point (every x or y is NaN or infinite)".into());
    }
    Ok(())
}

fn finite_points(s: &Series) -> impl Iterator<Item = (f64, f64)> + '_ {
    s.xs.iter()
        .copied()
        .zip(s.ys.iter().copied())
        .filter(|&(x, y)| x.is_finite() && y.is_finite())
}

/// Every finite y a series shows: its points and its band's edges.
fn ys_shown(s: &Series) -> impl Iterator<Item = f64> + '_ {
    let band = s.band.iter().flat_map(|b| b.lower.iter().chain(&b.upper).copied());
    finite_points(s).map(|(_, y)| y).chain(band).filter(|v| v.is_finite())
}

/// An axis' range: the fixed one as given, or the data's widened by 5% on
/// each side (a flat one by 10% of its value) so no point sits on the frame.
fn fit(name: &str, values: impl Iterator<Item = f64>, fixed: Option<(f64, f64)>) -> Result<Range<f64>> {
    if let Some((lo, hi)) = fixed {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            let msg = format!("plot: the {name} range ({lo}, {hi}) must be finite with min < max");
            return Err(Error::msg(msg));
        }
        return Ok(lo..hi);
    }
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.1 * lo.abs().max(1.0)
    };
    let (lo, hi) = (lo - pad, hi + pad);
    if !(hi - lo).is_finite() {
        let msg = format!("plot: the {name} values span too wide a range to draw ({lo:e} to {hi:e})");
        return Err(Error::msg(msg));
    }
    Ok(lo..hi)
}

/// Where the legend goes: the first corner of the plotting area where it
/// covers no point; with data in every corner and the y ranges fitted, the
/// upper right, the y axes' tops raised to make room above the data.
fn place_legend(
    plot: &Plot,
    x: &Range<f64>,
    left: &mut Range<f64>,
    right: Option<&mut Range<f64>>,
) -> SeriesLabelPosition {
    let unit =
        |(px, py): (f64, f64), y: &Range<f64>| ((px - x.start) / (x.end - x.start), (py - y.start) / (y.end - y.start));
    let on_left = plot.series.iter().flat_map(finite_points).map(|p| unit(p, left));
    let on_right = right.as_deref().into_iter().flat_map(|y| {
        let points = plot.right_series().iter().flat_map(finite_points);
        points.map(move |p| unit(p, y))
    });
    let points: Vec<_> = on_left.chain(on_right).collect();
    // The legend's height as a share of the plotting area's: a row per series.
    let height = (0.06 * (plot.series.len() + plot.right_series().len()) as f64 + 0.06).min(0.6);
    let fitted = plot.y_range.is_none() && plot.secondary.as_ref().is_none_or(|s| s.y_range.is_none());
    if let Some(corner) = emptiest_corner(&points, height) {
        return corner;
    }
    if fitted {
        let raise = |r: &mut Range<f64>| r.end = r.start + (r.end - r.start) / (1.0 - height);
        raise(left);
        if let Some(right) = right {
            raise(right);
        }
    }
    SeriesLabelPosition::UpperRight
}

/// The corner of the plotting area (upper right, upper left, lower right,
/// lower left) with none of `points` (in units of the axes, 0 to 1) where a
/// legend `height` high would cover it.
fn emptiest_corner(points: &[(f64, f64)], height: f64) -> Option<SeriesLabelPosition> {
    use SeriesLabelPosition::*;
    let corners = [
        (UpperRight, 1.0, 1.0),
        (UpperLeft, 0.0, 1.0),
        (LowerRight, 1.0, 0.0),
        (LowerLeft, 0.0, 0.0),
    ];
    let free = |(_, cx, cy): &(_, f64, f64)| {
        let under = |&(x, y): &(f64, f64)| (x - cx).abs() < 0.45 && (y - cy).abs() < height + 0.05;
        !points.iter().any(under)
    };
    corners.into_iter().find(free).map(|c| c.0)
}

/// The whole figure on `root`, every size in pixels multiplied by `scale`.
fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, plot: &Plot, axes: &Axes, scale: u32) -> Result<()> {
    let err =
        |e: DrawingAreaErrorKind<DB::ErrorType>| Error::msg(format!("plot '{}': cannot draw it: {e}", plot.title));
    let px = |v: u32| v * scale;
    let text = |size: u32| (FONT_FAMILY, px(size)).into_font().color(&INK);
    root.fill(&WHITE).map_err(err)?;

    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(px(12))
        .x_label_area_size(px(44))
        .y_label_area_size(px(64))
        .right_y_label_area_size(if axes.right.is_some() { px(64) } else { 0 });
    if !plot.title.is_empty() {
        builder.caption(&plot.title, text(19).color(&BLACK));
    }
    let mut chart = builder
        .build_cartesian_2d(axes.x.clone(), axes.left.clone())
        .map_err(err)?
        .set_secondary_coord(axes.x.clone(), axes.right.clone().unwrap_or(0.0..1.0));

    let number = |v: &f64| TICK_LABEL.print(*v);
    chart
        .configure_mesh()
        .x_labels(TICKS)
        .y_labels(TICKS)
        .x_label_formatter(&number)
        .y_label_formatter(&number)
        .x_desc(&plot.x_label)
        .y_desc(&plot.y_label)
        .label_style(text(14))
        .axis_desc_style(text(15))
        .axis_style(INK)
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .set_all_tick_mark_size(px(4))
        .draw()
        .map_err(err)?;
    if let (Some(sec), Some(_)) = (&plot.secondary, &axes.right) {
        chart
            .configure_secondary_axes()
            .y_labels(TICKS)
            .y_label_formatter(&number)
            .y_desc(&sec.label)
            .label_style(text(14))
            .axis_desc_style(text(15))
            .axis_style(INK)
            .set_all_tick_mark_size(px(4))
            .draw()
            .map_err(err)?;
    }

    // Each series: its band and line, then its markers, which carry the legend entry.
    let left = plot.series.iter().map(|s| (s, false));
    let right = plot.right_series().iter().map(|s| (s, true));
    for (i, (s, dashed)) in left.chain(right).enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let area = if dashed {
            chart.secondary_plotting_area()
        } else {
            chart.plotting_area()
        };
        band_and_line(area, s, colour, dashed, scale).map_err(err)?;
        let marked = s.xs.len() <= MAX_MARKED_POINTS;
        let points = finite_points(s).filter(|_| marked);
        let (r, fill, stroke) = (px(4) as i32, colour.filled(), colour.stroke_width(px(2)));
        let ends = move || vec![(0, 0), (px(24) as i32, 0)];
        let mid = (px(12) as i32, 0);
        match dashed {
            false => chart
                .draw_series(points.map(|p| Circle::new(p, r, fill)))
                .map_err(err)?
                .label(&s.name)
                .legend(move |at| EmptyElement::at(at) + PathElement::new(ends(), stroke) + Circle::new(mid, r, fill)),
            true => chart
                .draw_secondary_series(points.map(|p| TriangleMarker::new(p, r + 1, fill)))
                .map_err(err)?
                .label(format!("{} (right)", s.name))
                .legend(move |at| {
                    let line = DashedPathElement::new(ends(), px(5), px(3), stroke);
                    EmptyElement::at(at) + line + TriangleMarker::new(mid, r + 1, fill)
                }),
        };
    }
    chart
        .configure_series_labels()
        .position(axes.legend.clone())
        .margin(px(6))
        .legend_area_size(px(30))
        .label_font(text(14))
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// A series' band, shaded, and its line, solid or dashed, in one piece per
/// run of finite points (so the line breaks at a missing point).
fn band_and_line<DB: DrawingBackend>(
    area: &DrawingArea<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    s: &Series,
    colour: RGBColor,
    dashed: bool,
    scale: u32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let finite = |p: &[f64]| p.iter().all(|v| v.is_finite());
    if let Some(band) = &s.band {
        let edges: Vec<[f64; 3]> = (0..s.xs.len())
            .map(|i| [s.xs[i], band.lower[i], band.upper[i]])
            .collect();
        for run in edges.split(|e| !finite(e)).filter(|r| !r.is_empty()) {
            let upper = run.iter().map(|&[x, _, hi]| (x, hi));
            let outline: Vec<_> = upper.chain(run.iter().rev().map(|&[x, lo, _]| (x, lo))).collect();
            area.draw(&Polygon::new(outline, colour.mix(0.2).filled()))?;
        }
    }
    let points: Vec<(f64, f64)> = s.xs.iter().copied().zip(s.ys.iter().copied()).collect();
    let stroke = colour.stroke_width(2 * scale);
    for run in points.split(|&(x, y)| !finite(&[x, y])).filter(|r| !r.is_empty()) {
        match dashed {
            false => area.draw(&PathElement::new(run.to_vec(), stroke))?,
            true => area.draw(&DashedPathElement::new(
                run.iter().copied(),
                6 * scale,
                4 * scale,
                stroke,
            ))?,
        }
    }
    Ok(())
}
