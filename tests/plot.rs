//! Line plots: well-formed SVG, nice ticks, errors on bad input, the PNG
//! rendering of the same drawing, and the `plot_lines` script function.

use promot::plot::{
    nice_step, nice_ticks, save, save_svg, to_png, to_svg, Plot, SecondaryAxis, Series, HEIGHT, PNG_SCALE, WIDTH,
};
use promot::script::new_engine;
use resvg::tiny_skia::Pixmap;
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

#[test]
fn svg_is_well_formed_with_a_path_and_legend_entry_per_series() {
    let svg = to_svg(&fig3()).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains("width=\"720\" height=\"420\""));
    assert_balanced(&svg);
    let all = tags(&svg);
    assert_eq!(all.first().map(|t| t.0.as_str()), Some("svg"));
    assert_eq!(count_tag(&svg, "path"), 4, "one line per series");
    for name in ["MLP", "Query", "Key", "Value"] {
        assert!(svg.contains(&format!(">{name}</text>")), "legend entry for {name}");
    }
    // Title, escaped, both as the document title and as visible text.
    assert!(svg.contains("Gradient alignment &lt;g, g_format&gt; &amp; friends"));
    assert!(!svg.contains("<g, g_format>"));
    assert!(svg.contains(">fine-tuning step</text>"));
    assert!(svg.contains(">cosine similarity</text>"));
    // 9 points per series, each with a marker.
    let markers = count_tag(&svg, "circle") + count_tag(&svg, "polygon") + count_tag(&svg, "rect");
    assert!(markers >= 36, "markers on points: {markers}");
}

#[test]
fn series_get_distinct_colours() {
    let svg = to_svg(&fig3()).unwrap();
    let colours: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with("<path "))
        .filter_map(|l| l.split("stroke=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(colours.len(), 4);
    let mut unique = colours.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{colours:?}");
}

#[test]
fn ticks_are_nice_numbers() {
    for (lo, hi) in [
        (0.0, 1.0),
        (0.0, 500.0),
        (0.13, 0.87),
        (-3.7, 12.2),
        (1e-6, 7e-6),
        (95.0, 105.0),
        (0.0, 1234567.0),
        (-1.0, -0.2),
    ] {
        let ticks = nice_ticks(lo, hi, 5);
        let step = nice_step(lo, hi, 5).unwrap();
        assert!((3..=11).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
        let exponent = step.log10().floor();
        let mantissa = step / 10f64.powf(exponent);
        assert!(
            [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
            "step {step} for {lo}..{hi}"
        );
        for t in &ticks {
            let k = t / step;
            assert!((k - k.round()).abs() < 1e-6, "tick {t} is not a multiple of {step}");
            assert!(
                *t >= lo - step * 1e-6 && *t <= hi + step * 1e-6,
                "tick {t} outside {lo}..{hi}"
            );
        }
    }
    assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    assert_eq!(nice_ticks(0.0, 500.0, 5), vec![0.0, 100.0, 200.0, 300.0, 400.0, 500.0]);
    assert!(nice_ticks(1.0, 1.0, 5).is_empty());
    assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
    assert!(nice_ticks(-f64::MAX, f64::MAX, 5).is_empty());
}

#[test]
fn tick_labels_are_short() {
    let plot = Plot {
        series: vec![Series::new("acc", vec![0.0, 100.0, 300.0], vec![0.1, 0.3, 0.9])],
        ..Plot::new("t", "x", "y")
    };
    let svg = to_svg(&plot).unwrap();
    for label in [
        ">0.0<", ">0.2<", ">0.4<", ">0.6<", ">0.8<", ">1.0<", ">0<", ">100<", ">300<",
    ] {
        assert!(svg.contains(label), "missing tick label {label}");
    }
    assert!(!svg.contains("0000000"), "rounding noise in a label");
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
    let path = svg.lines().find(|l| l.starts_with("<path ")).unwrap();
    assert_eq!(path.matches('M').count(), 2, "gap at the NaN: {path}");
    assert_eq!(path.matches('L').count(), 1, "{path}");
}

#[test]
fn single_point_and_constant_series_still_plot() {
    let one = Plot {
        series: vec![Series::new("one", vec![5.0], vec![0.5])],
        ..Plot::new("t", "x", "y")
    };
    let svg = to_svg(&one).unwrap();
    assert_balanced(&svg);
    assert_eq!(count_tag(&svg, "path"), 1);
    let flat = Plot {
        series: vec![Series::new("flat", vec![0.0, 1.0, 2.0], vec![0.0, 0.0, 0.0])],
        ..Plot::new("t", "x", "y")
    };
    assert_balanced(&to_svg(&flat).unwrap());
}

#[test]
fn secondary_axis_series_are_drawn_dashed_with_their_label() {
    let steps: Vec<f64> = (0..6).map(|i| i as f64 * 100.0).collect();
    let plot = Plot {
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
    };
    let svg = to_svg(&plot).unwrap();
    assert_balanced(&svg);
    assert_eq!(count_tag(&svg, "path"), 2);
    assert!(svg.contains(">ratio of True/False</text>"));
    assert!(svg.contains(">True/False (right)</text>"));
    assert!(svg.contains("stroke-dasharray"));
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
            series: [#{{ name: "acc", xs: [0, 100, 200], ys: [0.5, (), 0.8] }}, #{{ name: "no xs", ys: [0.1, 0.2] }}],
            secondary: #{{ y_label: "True/False", series: [#{{ name: "ratio", xs: [0, 100, 200], ys: [0.0, 0.5, 0.9] }}] }},
        }})"#,
        path.display()
    );
    let engine = new_engine();
    let out: Dynamic = engine.eval(&script).unwrap();
    assert_eq!(out.into_string().unwrap(), path.display().to_string());
    let svg = std::fs::read_to_string(&path).unwrap();
    assert_balanced(&svg);
    assert_eq!(count_tag(&svg, "path"), 3);
    assert!(svg.contains(">ratio (right)</text>"));
    let png = decode_png(&dir.join("fig2.png"));
    assert!(non_white(&png, 0..png.height()) > 0);
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
    assert!(err(&format!(r#"plot_lines("{p}", #{{ title: "t" }})"#)).contains("needs 'series'"));
    assert!(err(&format!(r#"plot_lines("{p}", #{{ series: [] }})"#)).contains("no series"));
    assert!(!dir.join("bad.svg").exists());
    assert!(!dir.join("bad.png").exists());
}

/// Decode a PNG file; panics (failing the test) when it is not one.
fn decode_png(path: &std::path::Path) -> Pixmap {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Pixmap::decode_png(&bytes).unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()))
}

/// Pixels in the given rows that are not (near) white.
fn non_white(p: &Pixmap, rows: std::ops::Range<u32>) -> usize {
    let w = p.width() as usize;
    p.pixels()[rows.start as usize * w..rows.end as usize * w]
        .iter()
        .filter(|c| c.red() < 200 || c.green() < 200 || c.blue() < 200)
        .count()
}

#[test]
fn png_is_the_svg_rendered_with_its_text() {
    let png = Pixmap::decode_png(&to_png(&fig3()).unwrap()).unwrap();
    assert_eq!(png.width(), (WIDTH as f32 * PNG_SCALE) as u32);
    assert_eq!(png.height(), (HEIGHT as f32 * PNG_SCALE) as u32);
    assert_eq!((png.width(), png.height()), (1440, 840));
    // The background is white and opaque; the lines, frame and text are not white.
    let corner = png.pixel(0, 0).unwrap();
    assert_eq!(
        (corner.red(), corner.green(), corner.blue(), corner.alpha()),
        (255, 255, 255, 255)
    );
    let all = non_white(&png, 0..png.height());
    assert!(all > 10_000, "only {all} drawn pixels");
    // The title is the only drawing above the legend (SVG y < 30, its baseline at 24):
    // dark pixels there are glyphs, so the embedded font was found and used.
    let title_rows = 0..(30.0 * PNG_SCALE) as u32;
    let title = non_white(&png, title_rows.clone());
    assert!(title > 300, "{title} dark pixels in the title area: no text rendered");
    let untitled = Pixmap::decode_png(
        &to_png(&Plot {
            title: String::new(),
            ..fig3()
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        non_white(&untitled, title_rows),
        0,
        "something other than the title drawn there"
    );
}

#[test]
fn save_writes_svg_and_png_or_png_only_by_extension() {
    let dir = std::env::temp_dir().join(format!("promot-plot-save-{}", std::process::id()));
    let written = save(&fig3(), dir.join("fig3.svg")).unwrap();
    assert_eq!(written, vec![dir.join("fig3.svg"), dir.join("fig3.png")]);
    assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), to_svg(&fig3()).unwrap());
    assert_eq!(decode_png(&written[1]).width(), 1440);

    let written = save(&fig3(), dir.join("only.png")).unwrap();
    assert_eq!(written, vec![dir.join("only.png")]);
    assert_eq!(decode_png(&written[0]).height(), 840);
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
