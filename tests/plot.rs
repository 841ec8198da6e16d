//! Line plots drawn by plotters: well-formed SVG with a line, a legend entry
//! and a colour per series, readable ticks, gaps at missing points, the right
//! axis, bands on either axis, a legend off the data, errors on bad input,
//! the PNG of the same drawing with its text, and the `plot_lines` script
//! function.

use promot::plot::{save, save_svg, to_png, to_svg, Plot, SecondaryAxis, Series, HEIGHT, PNG_SCALE, WIDTH};
use promot::script::new_engine;
use rhai::Dynamic;

/// Fig. 3-like data: cosine similarity per parameter group, falling with steps.
fn fig3() -> Plot {
    let steps: Vec<f64> = (0..=8).map(|i| i as f64 * 50.0).collect();
    let mut plot = Plot::new(
        "Gradient alignment <g, g_format> & friends",
        "fine-tuning step",
        "cosine similarity",
    );
    for (k, name) in ["MLP", "Query", "Key", "Value"].iter().enumerate() {
        let ys = steps.iter().map(|s| 0.95 - 0.0018 * s - 0.03 * k as f64).collect();
        plot.series.push(Series::new(*name, steps.clone(), ys));
    }
    plot
}

/// Tags of an XML document in order: (name, kind) where kind is open, close or self-closing.
/// Panics (failing the test) on anything that is not well-formed enough to parse.
fn tags(svg: &str) -> Vec<(String, char)> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        assert!(!text.contains('>'), "stray '>' in text: {text:?}");
        check_entities(text);
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag:?}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
        if let Some(name) = tag.strip_prefix('/') {
            out.push((name.trim().to_string(), 'c'));
        } else {
            let self_closing = tag.ends_with('/');
            let name = tag
                .trim_end_matches('/')
                .split_whitespace()
                .next()
                .expect("tag name")
                .to_string();
            out.push((name, if self_closing { 's' } else { 'o' }));
        }
        rest = &rest[end + 1..];
    }
    assert!(!rest.contains('>'), "stray '>' after the last tag");
    out
}

/// Every '&' starts one of the entities the writer uses.
fn check_entities(text: &str) {
    for (i, _) in text.match_indices('&') {
        let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
            .iter()
            .any(|e| text[i..].starts_with(e));
        assert!(ok, "bare '&' in text: {text:?}");
    }
}

fn assert_balanced(svg: &str) {
    let mut stack = Vec::new();
    for (name, kind) in tags(svg) {
        match kind {
            'o' => stack.push(name),
            'c' => assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "mismatched </{name}>"),
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
}

fn count_tag(svg: &str, name: &str) -> usize {
    tags(svg).iter().filter(|(n, k)| n == name && *k != 'c').count()
}

/// The texts drawn, in order, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim().to_string()))
        .collect()
}

fn has_text(svg: &str, text: &str) -> bool {
    texts(svg).iter().any(|t| t == text)
}

/// The `<polyline>` elements drawn in `colour` (lines and legend samples).
fn polylines_in(svg: &str, colour: &str) -> usize {
    svg.split('<')
        .filter(|t| t.starts_with("polyline") && t.contains(&format!("stroke=\"{colour}\"")))
        .count()
}

const BLUE: &str = "#0072B2";
const ORANGE: &str = "#E69F00";

#[test]
fn svg_is_well_formed_with_a_line_and_legend_entry_per_series() {
    let svg = to_svg(&fig3()).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.contains("width=\"720\"") && svg.contains("height=\"420\""));
    assert_balanced(&svg);
    assert_eq!(tags(&svg).first().map(|t| t.0.as_str()), Some("svg"));
    for name in ["MLP", "Query", "Key", "Value"] {
        assert!(has_text(&svg, name), "legend entry for {name}");
    }
    // Title, escaped.
    assert!(svg.contains("Gradient alignment &lt;g, g_format&gt; &amp; friends"));
    assert!(!svg.contains("<g, g_format>"));
    assert!(has_text(&svg, "fine-tuning step"));
    assert!(has_text(&svg, "cosine similarity"));
    // Each series: its line and its legend sample; 9 points each, with markers.
    assert_eq!(polylines_in(&svg, BLUE), 2);
    let markers = count_tag(&svg, "circle") + count_tag(&svg, "polygon") + count_tag(&svg, "rect");
    assert!(markers >= 36, "markers on points: {markers}");
}

#[test]
fn series_get_distinct_colours() {
    let svg = to_svg(&fig3()).unwrap();
    let mut colours: Vec<&str> = svg
        .split('<')
        .filter(|t| t.starts_with("polyline"))
        .filter_map(|t| t.split("stroke=\"").nth(1)?.split('"').next())
        .collect();
    colours.sort();
    colours.dedup();
    for c in ["#0072B2", "#E69F00", "#009E73", "#D55E00"] {
        assert!(colours.contains(&c), "{c} missing from {colours:?}");
    }
}

#[test]
fn tick_labels_are_short_round_numbers() {
    let plot = Plot {
        series: vec![Series::new("acc", vec![0.0, 100.0, 300.0], vec![0.1, 0.3, 0.9])],
        ..Plot::new("t", "x", "y")
    };
    let svg = to_svg(&plot).unwrap();
    for label in ["0.2", "0.4", "0.6", "0.8", "0", "100", "200", "300"] {
        assert!(has_text(&svg, label), "missing tick label {label}: {:?}", texts(&svg));
    }
    // On ranges of any size and sign: a few short labels, with no rounding
    // noise (0.30000000000000004, -1.3e-17), that read as evenly spaced values
    // (not 1e-5 then 0.00001 for 1.2e-5). The same values on both axes make
    // every label appear twice.
    for (lo, hi) in [
        (-1.0, 0.2),
        (-0.35, 0.35),
        (1e-6, 7e-6),
        (1e-6, 1.3e-5),
        (95.0, 105.0),
        (0.0, 1234567.0),
    ] {
        let vs = vec![lo, (lo + hi) / 2.0, hi];
        let svg = to_svg(&Plot {
            series: vec![Series::new("s", vs.clone(), vs)],
            ..Plot::new("t", "x", "y")
        })
        .unwrap();
        let labels: Vec<String> = texts(&svg).into_iter().filter(|t| t.parse::<f64>().is_ok()).collect();
        for l in &labels {
            assert!(
                l.len() <= 8 && !l.contains("0000") && !l.contains("999"),
                "{lo}..{hi}: {labels:?}"
            );
            assert_eq!(labels.iter().filter(|m| *m == l).count(), 2, "{lo}..{hi}: {labels:?}");
        }
        assert!((6..=14).contains(&labels.len()), "{lo}..{hi}: {labels:?}");
        let mut values: Vec<f64> = labels.iter().map(|l| l.parse().unwrap()).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let step = values[1] - values[0];
        for w in values.windows(2) {
            assert!(
                ((w[1] - w[0]) / step - 1.0).abs() < 1e-6,
                "{lo}..{hi}: uneven {labels:?}"
            );
        }
    }
}

#[test]
fn nan_points_are_skipped_and_break_the_line() {
    let s = Series::new(
        "acc",
        vec![0.0, 1.0, 2.0, 3.0, 4.0],
        vec![0.1, 0.2, f64::NAN, 0.4, f64::INFINITY],
    );
    let svg = to_svg(&Plot {
        series: vec![s],
        ..Plot::new("t", "x", "y")
    })
    .unwrap();
    assert_balanced(&svg);
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    // Two pieces of line (0-1 and the lone 3) and the legend sample.
    assert_eq!(polylines_in(&svg, BLUE), 3, "gap at the NaN");
    assert_eq!(
        count_tag(&svg, "circle"),
        3 + 1,
        "a marker per finite point and the legend's"
    );
}

#[test]
fn single_point_and_constant_series_still_plot() {
    let one = Plot {
        series: vec![Series::new("one", vec![5.0], vec![0.5])],
        ..Plot::new("t", "x", "y")
    };
    let svg = to_svg(&one).unwrap();
    assert_balanced(&svg);
    assert!(has_text(&svg, "one"));
    let flat = Plot {
        series: vec![Series::new("flat", vec![0.0, 1.0, 2.0], vec![0.0, 0.0, 0.0])],
        ..Plot::new("t", "x", "y")
    };
    assert_balanced(&to_svg(&flat).unwrap());
}

fn fig2() -> Plot {
    let steps: Vec<f64> = (0..6).map(|i| i as f64 * 100.0).collect();
    Plot {
        series: vec![Series::new(
            "RTE accuracy",
            steps.clone(),
            vec![0.5, 0.7, 0.8, 0.85, 0.86, 0.87],
        )],
        y_range: Some((0.0, 1.0)),
        secondary: Some(SecondaryAxis {
            label: "ratio of True/False".into(),
            series: vec![Series::new("True/False", steps, vec![0.0, 0.4, 0.8, 0.9, 0.92, 0.93])],
            y_range: Some((0.0, 1.0)),
        }),
        ..Plot::new("Fig. 2", "step", "accuracy")
    }
}

#[test]
fn secondary_axis_series_are_drawn_dashed_with_their_label() {
    let svg = to_svg(&fig2()).unwrap();
    assert_balanced(&svg);
    assert!(has_text(&svg, "ratio of True/False"));
    assert!(has_text(&svg, "True/False (right)"));
    assert_eq!(polylines_in(&svg, BLUE), 2, "the left series: solid, one line");
    // The right series is dashed: many short pieces.
    let dashes = svg.matches(&format!("stroke=\"{ORANGE}\"")).count();
    assert!(dashes > 10, "{dashes} dash pieces");
    // Its markers are triangles (filled polygons): one per point and the legend's.
    let triangles = svg
        .split('<')
        .filter(|t| t.starts_with("polygon") && t.contains(&format!("fill=\"{ORANGE}\"")))
        .count();
    assert_eq!(triangles, 6 + 1);
    // Both axes carry their ticks (0 to 1, twice).
    assert_eq!(texts(&svg).iter().filter(|t| *t == "1").count(), 2);
    assert_eq!(texts(&svg).iter().filter(|t| *t == "0.4").count(), 2);
}

/// The outlines of the shaded polygons (bands) drawn in `colour`.
fn band_outlines(svg: &str, colour: &str) -> Vec<Vec<(i32, i32)>> {
    svg.split('<')
        .filter(|t| {
            t.starts_with("polygon") && t.contains(&format!("fill=\"{colour}\"")) && t.contains("opacity=\"0.2")
        })
        .map(|t| {
            let points = t.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            let point = |p: &str| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            };
            points.split_whitespace().map(point).collect()
        })
        .collect()
}

#[test]
fn a_band_on_the_right_axis_is_drawn_in_its_coordinates() {
    // The same interval relative to each axis (0.4-0.6 of 0-1, 40-60 of 0-100)
    // must cover the same pixels; drawn in the left axis' coordinates, the
    // right band would be clamped to the top edge.
    let xs = vec![0.0, 1.0, 2.0];
    let plot = Plot {
        series: vec![Series::new("left", xs.clone(), vec![0.5; 3]).with_band(vec![0.4; 3], vec![0.6; 3])],
        y_range: Some((0.0, 1.0)),
        secondary: Some(SecondaryAxis {
            label: "percent".into(),
            series: vec![Series::new("right", xs, vec![50.0; 3]).with_band(vec![40.0; 3], vec![60.0; 3])],
            y_range: Some((0.0, 100.0)),
        }),
        ..Plot::new("t", "x", "y")
    };
    let svg = to_svg(&plot).unwrap();
    let (left, right) = (band_outlines(&svg, BLUE), band_outlines(&svg, ORANGE));
    assert_eq!((left.len(), right.len()), (1, 1), "{svg}");
    // Equal up to a pixel of rounding (plotters maps each axis on its own).
    assert_eq!(left[0].len(), right[0].len());
    for (l, r) in left[0].iter().zip(&right[0]) {
        assert!(
            (l.0 - r.0).abs() <= 1 && (l.1 - r.1).abs() <= 1,
            "{left:?} vs {right:?}"
        );
    }
    let ys: Vec<i32> = left[0].iter().map(|p| p.1).collect();
    let (top, bottom) = (*ys.iter().min().unwrap(), *ys.iter().max().unwrap());
    assert!(bottom - top > 40, "the band has height: {ys:?}");
    // PNG too: the right band's tint is there.
    let png = decode(&to_png(&plot).unwrap());
    let tinted = (0..png.height)
        .flat_map(|y| (0..png.width).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = png.rgb(x, y);
            r > 230 && (200..240).contains(&g) && b < 220
        })
        .count();
    assert!(tinted > 1000, "{tinted} pixels of the orange band");
}

#[test]
fn the_legend_goes_where_the_data_is_not() {
    let (left, top) = (true, true);
    let at = |ys: Vec<f64>| {
        let (x, y, _, _) = legend_rect(&to_svg(&one_series(ys)).unwrap());
        (x < WIDTH / 2, y < HEIGHT / 2)
    };
    assert_eq!(at(vec![1.0, 2.0, 3.0, 4.0, 5.0]), (left, top), "rising: upper left");
    assert_eq!(at(vec![5.0, 4.0, 3.0, 2.0, 1.0]), (!left, top), "falling: upper right");
    assert_eq!(at(vec![1.0, 5.0, 5.0, 5.0, 5.0]), (!left, !top), "high: lower right");
    // Data in every corner: the fitted y axis grows above it to make room.
    let crowded = vec![5.0, 1.0, 5.0, 1.0, 5.0, 1.0, 5.0];
    let svg = to_svg(&one_series(crowded.clone())).unwrap();
    let (_, y, _, h) = legend_rect(&svg);
    let data_markers: Vec<u32> = svg
        .split("<circle")
        .skip(1)
        .filter_map(|c| c.split("cy=\"").nth(1)?.split('"').next()?.parse().ok())
        .filter(|&cy| cy > y + h)
        .collect();
    assert_eq!(data_markers.len(), crowded.len(), "every marker below the legend");
    // With a fixed range there is no room to make: the legend still goes in (over the data).
    let fixed = Plot {
        y_range: Some((1.0, 5.0)),
        ..one_series(crowded)
    };
    let (_, y, _, h) = legend_rect(&to_svg(&fixed).unwrap());
    assert!(y + h < HEIGHT / 2, "upper right");
}

fn one_series(ys: Vec<f64>) -> Plot {
    Plot {
        series: vec![Series::new("s", (0..ys.len()).map(|i| i as f64).collect(), ys)],
        ..Plot::new("t", "x", "y")
    }
}

/// The legend's box (x, y, width, height): the only translucent white rectangle.
fn legend_rect(svg: &str) -> (u32, u32, u32, u32) {
    let rect = svg
        .split('<')
        .find(|t| t.starts_with("rect") && t.contains("opacity=\"0.85\""))
        .expect("a legend");
    let attr = |name: &str| {
        let v = rect
            .split(&format!(" {name}=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        v.parse().unwrap()
    };
    (attr("x"), attr("y"), attr("width"), attr("height"))
}

#[test]
fn a_band_is_shaded_around_its_line() {
    let xs: Vec<f64> = (0..5).map(f64::from).collect();
    let ys = vec![0.5, 0.6, 0.7, f64::NAN, 0.8];
    let plain = Plot {
        series: vec![Series::new("acc", xs.clone(), ys.clone())],
        ..Plot::new("t", "x", "y")
    };
    let banded = Plot {
        series: vec![Series::new("acc", xs, ys)
            .with_band(vec![0.4, 0.5, 0.6, f64::NAN, 0.7], vec![0.6, 0.7, 0.8, f64::NAN, 0.95])],
        ..Plot::new("t", "x", "y")
    };
    let (plain, banded) = (to_svg(&plain).unwrap(), to_svg(&banded).unwrap());
    // Two filled pieces (the band breaks where its edges are missing), in the line's colour.
    let bands = |svg: &str| {
        svg.split('<')
            .filter(|t| {
                t.starts_with("polygon") && t.contains(&format!("fill=\"{BLUE}\"")) && t.contains("opacity=\"0.2")
            })
            .count()
    };
    assert_eq!(bands(&plain), 0);
    assert_eq!(bands(&banded), 2, "{banded}");
    // The band's edges widen the fitted axis (0.5-0.8 to 0.4-0.95).
    for label in ["0.4", "0.9"] {
        assert!(
            has_text(&banded, label) && !has_text(&plain, label),
            "{label}: {:?}",
            texts(&plain)
        );
    }
    let bad = Plot {
        series: vec![Series::new("acc", vec![0.0, 1.0], vec![0.0, 1.0]).with_band(vec![0.0], vec![1.0, 2.0])],
        ..Plot::new("t", "x", "y")
    };
    let err = to_svg(&bad).unwrap_err().to_string();
    assert!(err.contains("band") && err.contains("'acc'"), "{err}");
}

#[test]
fn bad_input_is_an_error() {
    let base = || Plot::new("t", "x", "y");
    let err = |p: Plot| to_svg(&p).unwrap_err().to_string();
    assert!(err(base()).contains("no series"));
    assert!(err(Plot {
        series: vec![Series::new("e", vec![], vec![])],
        ..base()
    })
    .contains("empty"));
    assert!(err(Plot {
        series: vec![Series::new("m", vec![1.0, 2.0], vec![1.0])],
        ..base()
    })
    .contains("2 xs but 1 ys"));
    let nan = Series::new("n", vec![0.0, 1.0], vec![f64::NAN, f64::INFINITY]);
    assert!(err(Plot {
        series: vec![nan],
        ..base()
    })
    .contains("no finite point"));
    let ok = Series::new("ok", vec![0.0, 1.0], vec![0.0, 1.0]);
    assert!(err(Plot {
        series: vec![ok.clone()],
        y_range: Some((1.0, 0.0)),
        ..base()
    })
    .contains("min < max"));
    assert!(err(Plot {
        series: vec![ok.clone()],
        y_range: Some((0.0, f64::NAN)),
        ..base()
    })
    .contains("min < max"));
    let huge = Series::new("huge", vec![0.0, 1.0], vec![-f64::MAX, f64::MAX]);
    assert!(err(Plot {
        series: vec![huge],
        ..base()
    })
    .contains("too wide"));
}

#[test]
fn save_svg_writes_the_file() {
    let dir = std::env::temp_dir().join(format!("promot-plot-test-{}", std::process::id()));
    let path = dir.join("sub").join("fig3.svg");
    save_svg(&fig3(), &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, to_svg(&fig3()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plot_lines_from_a_script() {
    let dir = std::env::temp_dir().join(format!("promot-plot-script-{}", std::process::id()));
    let path = dir.join("fig2.svg");
    let script = format!(
        r#"plot_lines("{}", #{{
            title: "Fig. 2", x_label: "step", y_label: "accuracy", y_min: 0, y_max: 1.0,
            series: [#{{ name: "acc", xs: [0, 100, 200], ys: [0.5, (), 0.8], lower: [0.4, (), 0.7], upper: [0.6, (), 0.9] }},
                     #{{ name: "no xs", ys: [0.1, 0.2] }}],
            secondary: #{{ y_label: "True/False", series: [#{{ name: "ratio", xs: [0, 100, 200], ys: [0.0, 0.5, 0.9] }}] }},
        }})"#,
        path.display()
    );
    let engine = new_engine();
    let out: Dynamic = engine.eval(&script).unwrap();
    assert_eq!(out.into_string().unwrap(), path.display().to_string());
    let svg = std::fs::read_to_string(&path).unwrap();
    assert_balanced(&svg);
    assert!(has_text(&svg, "acc") && has_text(&svg, "no xs"));
    assert!(has_text(&svg, "ratio (right)"));
    let png = decode_png(&dir.join("fig2.png"));
    assert!(non_white(&png, 0..png.height) > 0);
    let _ = std::fs::remove_dir_all(&dir);

    let err = |src: &str| engine.eval::<Dynamic>(src).unwrap_err().to_string();
    let p = dir.join("bad.svg").display().to_string();
    assert!(err(&format!(
        r#"plot_lines("{p}", #{{ series: [#{{ ys: [1] }}], colour: "red" }})"#
    ))
    .contains("unknown option 'colour'"));
    assert!(err(&format!(
        r#"plot_lines("{p}", #{{ series: [#{{ xs: [1, 2], ys: [1] }}] }})"#
    ))
    .contains("2 xs but 1 ys"));
    assert!(err(&format!(r#"plot_lines("{p}", #{{ series: [#{{ ys: ["a"] }}] }})"#)).contains("not a number"));
    assert!(err(&format!(
        r#"plot_lines("{p}", #{{ series: [#{{ ys: [1] }}], y_min: 0 }})"#
    ))
    .contains("both y_min and y_max"));
    assert!(err(&format!(
        r#"plot_lines("{p}", #{{ series: [#{{ ys: [1], lower: [0] }}] }})"#
    ))
    .contains("both 'lower' and 'upper'"));
    assert!(err(&format!(r#"plot_lines("{p}", #{{ title: "t" }})"#)).contains("needs 'series'"));
    assert!(err(&format!(r#"plot_lines("{p}", #{{ series: [] }})"#)).contains("no series"));
    assert!(!dir.join("bad.svg").exists());
    assert!(!dir.join("bad.png").exists());
}

/// A decoded PNG: width, height and RGB(A) rows.
struct Image {
    width: u32,
    height: u32,
    channels: usize,
    data: Vec<u8>,
}

impl Image {
    fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let i = (y as usize * self.width as usize + x as usize) * self.channels;
        (self.data[i], self.data[i + 1], self.data[i + 2])
    }
}

fn decode(bytes: &[u8]) -> Image {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("not a PNG: {e}"));
    let mut data = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
    let info = reader.next_frame(&mut data).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    Image {
        width: info.width,
        height: info.height,
        channels: info.color_type.samples(),
        data,
    }
}

/// Decode a PNG file; panics (failing the test) when it is not one.
fn decode_png(path: &std::path::Path) -> Image {
    decode(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Pixels in the given rows that are not (near) white.
fn non_white(p: &Image, rows: std::ops::Range<u32>) -> usize {
    rows.flat_map(|y| (0..p.width).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = p.rgb(x, y);
            r < 200 || g < 200 || b < 200
        })
        .count()
}

#[test]
fn png_is_the_same_drawing_with_its_text() {
    let png = decode(&to_png(&fig3()).unwrap());
    assert_eq!((png.width, png.height), (WIDTH * PNG_SCALE, HEIGHT * PNG_SCALE));
    assert_eq!((png.width, png.height), (1440, 840));
    // The background is white; the lines, frame and text are not.
    assert_eq!(png.rgb(0, 0), (255, 255, 255));
    let all = non_white(&png, 0..png.height);
    assert!(all > 10_000, "only {all} drawn pixels");
    // Text is drawn with the compiled-in font: the title alone adds hundreds of
    // dark pixels at the top (without one, the frame moves up to the margin).
    let top = 0..(40 * PNG_SCALE);
    let untitled = decode(
        &to_png(&Plot {
            title: String::new(),
            ..fig3()
        })
        .unwrap(),
    );
    let (with, without) = (non_white(&png, top), non_white(&untitled, 0..(8 * PNG_SCALE)));
    assert!(with > 1000, "{with} dark pixels in the title area: no text rendered");
    assert_eq!(without, 0, "nothing drawn in the margin without a title");
    // The twin-axis figure renders too, with its right axis' label.
    let fig2 = decode(&to_png(&fig2()).unwrap());
    let right_edge = |img: &Image| {
        (0..img.height)
            .flat_map(|y| ((img.width - 30 * PNG_SCALE)..img.width).map(move |x| (x, y)))
            .filter(|&(x, y)| img.rgb(x, y).0 < 200)
            .count()
    };
    assert!(right_edge(&fig2) > 200, "the right axis' label is drawn");
}

#[test]
fn save_writes_svg_and_png_or_png_only_by_extension() {
    let dir = std::env::temp_dir().join(format!("promot-plot-save-{}", std::process::id()));
    let written = save(&fig3(), dir.join("fig3.svg")).unwrap();
    assert_eq!(written, vec![dir.join("fig3.svg"), dir.join("fig3.png")]);
    assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), to_svg(&fig3()).unwrap());
    assert_eq!(decode_png(&written[1]).width, 1440);

    let written = save(&fig3(), dir.join("only.png")).unwrap();
    assert_eq!(written, vec![dir.join("only.png")]);
    assert_eq!(decode_png(&written[0]).height, 840);
    assert!(!dir.join("only.svg").exists());

    let err = save(&fig3(), dir.join("fig3.pdf")).unwrap_err().to_string();
    assert!(
        err.contains("fig3.pdf") && err.contains(".svg") && err.contains(".png"),
        "{err}"
    );
    // A path under a regular file cannot be written: an error naming it, no panic.
    let blocked = dir.join("fig3.svg").join("x.svg");
    let err = save(&fig3(), &blocked).unwrap_err().to_string();
    assert!(err.contains(&dir.join("fig3.svg").display().to_string()), "{err}");
    // A bad plot writes neither file.
    assert!(save(&Plot::default(), dir.join("empty.svg")).is_err());
    assert!(!dir.join("empty.svg").exists() && !dir.join("empty.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
