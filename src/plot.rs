//! Line plots as SVG and PNG, drawn by `plotters`: enough for the paper's
//! training curves (Fig. 2: share of True/False outputs and accuracy against
//! fine-tuning steps, on twin y axes; Fig. 3: gradient cosine similarity per
//! parameter group) and the trade-off plots (Figs. 6-7).
//!
//! A plot has a left y axis and, optionally, a right one with its own series
//! (drawn dashed). A series may carry a band (a lower and an upper value per
//! point, e.g. an interval over seeds), shaded in the series' colour. Points
//! whose x or y is NaN or infinite are skipped and the line breaks there, so
//! a missing evaluation shows as a gap instead of a false segment.
//!
//! One drawing function serves both formats ([to_svg], [to_png]); text in the
//! PNG is drawn with DejaVu Sans compiled into the binary (registered with
//! plotters' `ab_glyph` font table), so a machine without fonts renders the
//! same image. [save] writes `fig.svg` and `fig.png` from one call.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
/// Marker shapes cycle with a period (5) coprime to the palette's (8), so
/// series that share a colour still differ in shape.
const MARKERS: usize = 5;
/// Above this many points a series is drawn as a bare line: markers would merge.
const MAX_MARKED_POINTS: usize = 100;
/// How many ticks an axis aims for.
const TARGET_TICKS: usize = 5;
const GRID: RGBColor = RGBColor(0xE6, 0xE6, 0xE6);
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// The one font text is measured and drawn with, compiled in (provenance and
/// licence in `assets/fonts/`).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FONT_FAMILY: &str = "sans-serif";
/// plotters takes a font size as a line height and draws the glyphs' em at
/// that size / 1.24 (in SVG and PNG alike); sizes here are ems, so they are
/// multiplied back.
const LINE_PER_EM: f64 = 1.24;

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

    fn right_series(&self) -> &[Series] {
        self.secondary.as_ref().map(|s| s.series.as_slice()).unwrap_or(&[])
    }
}

/// Render a plot as an SVG document. Errors (never panics) on a plot without
/// series, a series that is empty, has xs and ys (or a band) of different
/// lengths or no finite point, and an invalid fixed range.
pub fn to_svg(plot: &Plot) -> Result<String> {
    let layout = Layout::fit(plot)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, plot, &layout, 1.0)?;
        root.present().map_err(|e| drawing_error(plot, e))?;
    }
    Ok(svg)
}

/// Render a plot as PNG bytes, `WIDTH·PNG_SCALE × HEIGHT·PNG_SCALE` pixels.
pub fn to_png(plot: &Plot) -> Result<Vec<u8>> {
    let layout = Layout::fit(plot)?;
    let (w, h) = (WIDTH * PNG_SCALE, HEIGHT * PNG_SCALE);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, plot, &layout, PNG_SCALE as f64)?;
        root.present().map_err(|e| drawing_error(plot, e))?;
    }
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

/// The nice step (1, 2 or 5 × 10^k) that cuts [lo, hi] into about `target`
/// parts; `None` when the span is not finite and increasing.
pub fn nice_step(lo: f64, hi: f64, target: usize) -> Option<f64> {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 || target == 0 {
        return None;
    }
    let raw = span / target as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let m = match raw / magnitude {
        r if r < 1.5 => 1.0,
        r if r < 3.5 => 2.0,
        r if r < 7.5 => 5.0,
        _ => 10.0,
    };
    Some(m * magnitude)
}

/// A tick label with as many decimals as the step between ticks needs
/// (0.25 apart: two; 20 apart: none), never `0.30000000000000004`.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step > 0.0 && step.is_finite() {
        (-(step.log10() + 1e-9).floor()).clamp(0.0, 9.0) as usize
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    // "-0" and "-0.00" read as zero.
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        s.trim_start_matches('-').to_string()
    } else {
        s
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

fn drawing_error(plot: &Plot, e: impl std::fmt::Display) -> Error {
    Error::msg(format!("plot '{}': cannot draw it: {e}", plot.title))
}

/// An axis span: [lo, hi] and the step its ticks are labelled with.
#[derive(Debug, Clone, Copy)]
struct Span {
    lo: f64,
    hi: f64,
    step: f64,
}

/// Everything checked and fitted before drawing: the axes' spans.
struct Layout {
    x: Span,
    left: Span,
    right: Option<Span>,
}

impl Layout {
    fn fit(plot: &Plot) -> Result<Layout> {
        font()?;
        if plot.series.is_empty() {
            return Err(Error::msg(format!("plot '{}': no series to draw", plot.title)));
        }
        let right = plot.right_series();
        for s in plot.series.iter().chain(right) {
            check_series(s)?;
        }
        let x = fit_span(
            "x",
            plot.series.iter().chain(right).flat_map(finite_points).map(|(x, _)| x),
            None,
        )?;
        let left = fit_span("y", plot.series.iter().flat_map(band_and_points), plot.y_range)?;
        let right = match &plot.secondary {
            Some(sec) if !sec.series.is_empty() => Some(fit_span(
                "right y",
                sec.series.iter().flat_map(band_and_points),
                sec.y_range,
            )?),
            _ => None,
        };
        Ok(Layout { x, left, right })
    }
}

fn check_series(s: &Series) -> Result<()> {
    if s.ys.is_empty() {
        return Err(Error::msg(format!("plot: series '{}' is empty", s.name)));
    }
    if s.xs.len() != s.ys.len() {
        return Err(Error::msg(format!(
            "plot: series '{}' has {} xs but {} ys",
            s.name,
            s.xs.len(),
            s.ys.len()
        )));
    }
    if let Some(b) = &s.band {
        if b.lower.len() != s.ys.len() || b.upper.len() != s.ys.len() {
            return Err(Error::msg(format!(
                "plot: series '{}' has {} points but its band {} lower and {} upper values",
                s.name,
                s.ys.len(),
                b.lower.len(),
                b.upper.len()
            )));
        }
    }
    if finite_points(s).next().is_none() {
        return Err(Error::msg(format!(
            "plot: series '{}' has no finite point (every x or y is NaN or infinite)",
            s.name
        )));
    }
    Ok(())
}

fn finite_points(s: &Series) -> impl Iterator<Item = (f64, f64)> + '_ {
    s.xs.iter()
        .zip(&s.ys)
        .map(|(&x, &y)| (x, y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// Every finite y a series shows: its points and its band's edges.
fn band_and_points(s: &Series) -> impl Iterator<Item = f64> + '_ {
    let band = s.band.iter().flat_map(|b| {
        s.xs.iter()
            .zip(b.lower.iter().zip(&b.upper))
            .filter(|(x, _)| x.is_finite())
            .flat_map(|(_, (&lo, &hi))| [lo, hi])
    });
    finite_points(s).map(|(_, y)| y).chain(band).filter(|v| v.is_finite())
}

/// The span of an axis: the fixed range as given, or the data's range
/// widened to multiples of a nice step (a flat range is padded first).
fn fit_span(name: &str, values: impl Iterator<Item = f64>, fixed: Option<(f64, f64)>) -> Result<Span> {
    if let Some((lo, hi)) = fixed {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::msg(format!(
                "plot: the {name} range ({lo}, {hi}) must be finite with min < max"
            )));
        }
        let step = nice_step(lo, hi, TARGET_TICKS).unwrap_or(hi - lo);
        return Ok(Span { lo, hi, step });
    }
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(Error::msg(format!("plot: no finite {name} values")));
    }
    if !(hi - lo).is_finite() {
        return Err(Error::msg(format!(
            "plot: the {name} values span too wide a range to draw ({lo:e} to {hi:e})"
        )));
    }
    if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let step =
        nice_step(lo, hi, TARGET_TICKS).ok_or_else(|| Error::msg(format!("plot: cannot fit the {name} axis")))?;
    Ok(Span {
        lo: (lo / step).floor() * step,
        hi: (hi / step).ceil() * step,
        step,
    })
}

/// How one series is drawn: colour, marker shape, dashed or solid.
#[derive(Clone, Copy)]
struct Style {
    colour: RGBColor,
    marker: usize,
    dashed: bool,
}

impl Style {
    fn nth(i: usize, dashed: bool) -> Style {
        Style {
            colour: PALETTE[i % PALETTE.len()],
            marker: i % MARKERS,
            dashed,
        }
    }
}

type Area<DB> = DrawingArea<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The whole figure on `root`, every size multiplied by `scale`: the title,
/// a legend above the frame, the axes with their labels, then each series
/// (band, line, markers).
fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &Plot, layout: &Layout, scale: f64) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| drawing_error(plot, e);
    let px = |v: f64| (v * scale).round() as i32;
    let text = |em: f64| TextStyle::from((FONT_FAMILY, em * LINE_PER_EM * scale).into_font()).color(&INK);
    root.fill(&WHITE).map_err(err)?;

    let mut top = px(10.0);
    if !plot.title.is_empty() {
        root.draw(&Text::new(
            plot.title.clone(),
            (px(WIDTH as f64 / 2.0), top),
            text(15.0).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
        top += px(26.0);
    }
    let entries: Vec<(String, Style)> = plot
        .series
        .iter()
        .map(|s| (s.name.clone(), false))
        .chain(
            plot.right_series()
                .iter()
                .map(|s| (format!("{} (right)", s.name), true)),
        )
        .enumerate()
        .map(|(i, (name, dashed))| (name, Style::nth(i, dashed)))
        .collect();
    top = draw_legend(root, &entries, top, scale, &text(12.0)).map_err(err)?;

    let (_, body) = root.split_vertically(top);
    let mut builder = ChartBuilder::on(&body);
    builder
        .margin_left(px(10.0))
        .margin_right(px(if layout.right.is_some() { 10.0 } else { 24.0 }))
        .margin_top(px(6.0))
        .margin_bottom(px(6.0))
        .x_label_area_size(px(44.0))
        .y_label_area_size(px(64.0));
    if layout.right.is_some() {
        builder.right_y_label_area_size(px(64.0));
    }
    let (x, left) = (layout.x, layout.left);
    let chart = builder.build_cartesian_2d(x.lo..x.hi, left.lo..left.hi).map_err(err)?;
    let x_fmt = |v: &f64| tick_label(*v, x.step);
    let left_fmt = |v: &f64| tick_label(*v, left.step);
    let ticks = |s: Span| (((s.hi - s.lo) / s.step).round() as usize + 1).clamp(2, 12);
    let line = |w: f64| ShapeStyle::from(&INK).stroke_width((w * scale).round().max(1.0) as u32);
    let grid = ShapeStyle::from(&GRID).stroke_width(scale.round().max(1.0) as u32);

    let mesh_and_left = |chart: &mut ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>| {
        chart
            .configure_mesh()
            .x_labels(ticks(x))
            .y_labels(ticks(left))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&left_fmt)
            .x_desc(plot.x_label.clone())
            .y_desc(plot.y_label.clone())
            .label_style(text(12.0))
            .axis_desc_style(text(12.0))
            .axis_style(line(1.0))
            .bold_line_style(grid)
            .light_line_style(TRANSPARENT)
            .set_all_tick_mark_size(px(5.0))
            .draw()
            .map_err(err)?;
        for (i, s) in plot.series.iter().enumerate() {
            draw_series(chart.plotting_area(), s, Style::nth(i, false), scale).map_err(err)?;
        }
        Ok::<(), Error>(())
    };

    match layout.right {
        None => {
            let mut chart = chart;
            mesh_and_left(&mut chart)?;
        }
        Some(right) => {
            let mut chart = chart.set_secondary_coord(x.lo..x.hi, right.lo..right.hi);
            mesh_and_left(&mut chart)?;
            let right_fmt = |v: &f64| tick_label(*v, right.step);
            let label = plot.secondary.as_ref().map(|s| s.label.clone()).unwrap_or_default();
            chart
                .configure_secondary_axes()
                .y_labels(ticks(right))
                .y_label_formatter(&right_fmt)
                .y_desc(label)
                .label_style(text(12.0))
                .axis_desc_style(text(12.0))
                .axis_style(line(1.0))
                .draw()
                .map_err(err)?;
            let offset = plot.series.len();
            for (i, s) in plot.right_series().iter().enumerate() {
                draw_series(
                    chart.borrow_secondary().plotting_area(),
                    s,
                    Style::nth(offset + i, true),
                    scale,
                )
                .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// The legend as rows of (line sample, marker, name) under the title,
/// wrapping at the figure's width; returns where the frame starts.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[(String, Style)],
    top: i32,
    scale: f64,
    font: &TextStyle,
) -> std::result::Result<i32, DrawingAreaErrorKind<DB::ErrorType>> {
    let px = |v: f64| (v * scale).round() as i32;
    let (width, _) = root.dim_in_pixel();
    let (left, right) = (px(20.0), width as i32 - px(20.0));
    let row = px(18.0);
    let sample = px(24.0);
    let (mut x, mut y) = (left, top + row / 2);
    for (name, style) in entries {
        let (text_w, _) = root.estimate_text_size(name, font)?;
        let w = sample + px(6.0) + text_w as i32 + px(18.0);
        if x > left && x + w > right {
            x = left;
            y += row;
        }
        let stroke = ShapeStyle::from(&style.colour).stroke_width(px(2.0).max(1) as u32);
        if style.dashed {
            root.draw(&DashedPathElement::new(
                vec![(x, y), (x + sample, y)],
                px(6.0),
                px(4.0),
                stroke,
            ))?;
        } else {
            root.draw(&PathElement::new(vec![(x, y), (x + sample, y)], stroke))?;
        }
        draw_marker(root, (x + sample / 2, y), style, scale)?;
        root.draw(&Text::new(
            name.clone(),
            (x + sample + px(6.0), y),
            font.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += w;
    }
    Ok(if entries.is_empty() { top } else { y + row / 2 + px(4.0) })
}

/// Runs of consecutive points where `keep` holds: a line breaks at a gap.
fn runs<T>(points: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = vec![Vec::new()];
    for p in points {
        match p {
            Some(p) => out.last_mut().expect("runs starts with one run").push(p),
            None if out.last().is_some_and(|r| !r.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

fn draw_series<DB: DrawingBackend>(
    area: &Area<DB>,
    s: &Series,
    style: Style,
    scale: f64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if let Some(band) = &s.band {
        let edges =
            s.xs.iter()
                .zip(band.lower.iter().zip(&band.upper))
                .map(|(&x, (&lo, &hi))| (x.is_finite() && lo.is_finite() && hi.is_finite()).then_some((x, lo, hi)));
        for run in runs(edges) {
            let outline: Vec<(f64, f64)> = run
                .iter()
                .map(|&(x, _, hi)| (x, hi))
                .chain(run.iter().rev().map(|&(x, lo, _)| (x, lo)))
                .collect();
            area.draw(&Polygon::new(outline, style.colour.mix(0.2).filled()))?;
        }
    }
    let stroke = ShapeStyle::from(&style.colour).stroke_width((2.0 * scale).round().max(1.0) as u32);
    let points =
        s.xs.iter()
            .zip(&s.ys)
            .map(|(&x, &y)| (x.is_finite() && y.is_finite()).then_some((x, y)));
    for run in runs(points) {
        if style.dashed {
            let (dash, gap) = (6.0 * scale, 4.0 * scale);
            area.draw(&DashedPathElement::new(
                run,
                dash.round() as i32,
                gap.round() as i32,
                stroke,
            ))?;
        } else {
            area.draw(&PathElement::new(run, stroke))?;
        }
    }
    if s.xs.len() <= MAX_MARKED_POINTS {
        for point in finite_points(s) {
            draw_marker(area, point, &style, scale)?;
        }
    }
    Ok(())
}

/// One marker centred at `at` (in the area's coordinates): circle, square,
/// triangle, diamond or cross, its size in pixels.
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    style: &Style,
    scale: f64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    CT::From: Clone,
{
    let r = (3.5 * scale).round() as i32;
    let fill = style.colour.filled();
    let anchor = || EmptyElement::at(at.clone());
    match style.marker {
        0 => area.draw(&(anchor() + Circle::new((0, 0), r, fill))),
        1 => area.draw(&(anchor() + Rectangle::new([(-r, -r), (r, r)], fill))),
        2 => area.draw(&(anchor() + Polygon::new(vec![(0, -r - 1), (r + 1, r), (-r - 1, r)], fill))),
        3 => area.draw(&(anchor() + Polygon::new(vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)], fill))),
        _ => {
            let stroke = style.colour.stroke_width((2.0 * scale).round().max(1.0) as u32);
            area.draw(
                &(anchor()
                    + PathElement::new(vec![(-r, -r), (r, r)], stroke)
                    + PathElement::new(vec![(-r, r), (r, -r)], stroke)),
            )
        }
    }
}
