//! A run's report: one self-contained HTML file — no script, no external asset, plots as inline
//! SVG (plotters) — rendered with minijinja from what the run left behind: its `summary.json`,
//! its teacher ledger, its training logs and a few examples of teacher and student side by side.
//!
//! This crate knows nothing of stores or models: the `mentor report` command gathers the inputs
//! ([`ReportInput`]) and this crate only draws them, so a report can be rebuilt at any time.
//! [`compare`] is the same for several runs: their paired statistics as tables.

pub mod compare;

use plotters::prelude::*;
use serde::Serialize;
use serde_json::Value;

/// One line of a chart.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// A shaded band around the line, `(x, low, high)` (e.g. the spread over seeds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub band: Vec<(f64, f64, f64)>,
}

/// A line chart: a title, axis labels, one or more series.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// One question with what the teacher and the trained student wrote for it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SideBySide {
    pub id: String,
    pub question: String,
    pub gold: String,
    pub teacher: String,
    pub student: String,
}

/// Per-teacher totals from the run's ledger.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherRow {
    pub teacher: String,
    pub calls_ok: u64,
    pub calls_failed: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub mean_latency_ms: f64,
    /// Successful replies cut at the token limit.
    pub calls_truncated: u64,
}

/// Everything a report shows.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    /// The run's `summary.json`.
    pub summary: Value,
    /// The run's configuration as stored (JSON).
    pub config: String,
    pub teachers: Vec<TeacherRow>,
    pub charts: Vec<Chart>,
    pub examples: Vec<SideBySide>,
    /// The paired comparison with other runs, as a plain table ([`compare::Comparison::render`]).
    pub comparison: Option<String>,
}

const PALETTE: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// Draws `chart` as an SVG document (640×320). Empty series are skipped; a chart without any
/// point says so instead of drawing empty axes.
pub fn svg_line_chart(chart: &Chart) -> String {
    let pts: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .copied()
                .chain(s.band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]))
        })
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pts.is_empty() {
        return format!("<p class=\"empty\">{}: no data</p>", escape(&chart.title));
    }
    let (mut x0, mut x1, mut y0, mut y1) = pts.iter().fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    // a single point or a flat line still needs a non-empty range
    if x1 - x0 < 1e-12 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    // a flat line gets a range a reader can see (±5 % of its value, at least ±1)
    let pad = if y1 - y0 < 1e-12 {
        (y0.abs() * 0.05).max(1.0)
    } else {
        (y1 - y0) * 0.05
    };
    y0 -= pad;
    y1 += pad;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 320)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut c = ChartBuilder::on(&root)
                .caption(&chart.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            c.configure_mesh()
                .x_desc(&chart.x_label)
                .y_desc(&chart.y_label)
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            for (i, s) in chart.series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let points: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                if points.is_empty() {
                    continue;
                }
                // the band first, under its line: the polygon of its upper edge, then its lower
                // edge backwards
                let band: Vec<(f64, f64, f64)> = s
                    .band
                    .iter()
                    .copied()
                    .filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite())
                    .collect();
                if band.len() >= 2 {
                    let outline: Vec<(f64, f64)> = band
                        .iter()
                        .map(|&(x, _, hi)| (x, hi))
                        .chain(band.iter().rev().map(|&(x, lo, _)| (x, lo)))
                        .collect();
                    c.draw_series(std::iter::once(Polygon::new(
                        outline,
                        ShapeStyle::from(&color.mix(0.18)).filled(),
                    )))?;
                }
                let style = ShapeStyle::from(&color).stroke_width(2);
                let drawn = c.draw_series(LineSeries::new(points.clone(), style))?;
                drawn
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                if points.len() <= 40 {
                    c.draw_series(
                        points
                            .iter()
                            .map(|&p| Circle::new(p, 3, ShapeStyle::from(&color).filled())),
                    )?;
                }
            }
            if chart.series.len() > 1 {
                c.configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()?;
            }
            root.present()?;
            Ok(())
        };
        if let Err(e) = draw() {
            return format!(
                "<p class=\"empty\">{}: cannot draw ({})</p>",
                escape(&chart.title),
                escape(&e.to_string())
            );
        }
    }
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Charts of one training stage from its `log.jsonl` (`{"kind":"step"|"eval","log":{…}}` per
/// line): training loss (and each task's loss) per step, and validation loss / accuracy at each
/// evaluation. Lines that do not parse are skipped.
pub fn training_charts(stage: &str, log_jsonl: &str) -> Vec<Chart> {
    let mut loss = Series {
        name: "train loss".into(),
        points: vec![],
        band: vec![],
    };
    let mut tasks: std::collections::BTreeMap<String, Series> = Default::default();
    let mut vloss = Series {
        name: "validation loss".into(),
        points: vec![],
        band: vec![],
    };
    let mut vacc = Series {
        name: "validation accuracy".into(),
        points: vec![],
        band: vec![],
    };
    for line in log_jsonl.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let log = &v["log"];
        let Some(step) = log["step"].as_f64() else {
            continue;
        };
        match v["kind"].as_str() {
            Some("step") => {
                if let Some(l) = log["loss"].as_f64() {
                    loss.points.push((step, l));
                }
                if let Some(t) = log["task_loss"].as_object() {
                    for (task, l) in t {
                        if let Some(l) = l.as_f64() {
                            tasks
                                .entry(task.clone())
                                .or_insert_with(|| Series {
                                    name: format!("{task} loss"),
                                    points: vec![],
                                    band: vec![],
                                })
                                .points
                                .push((step, l));
                        }
                    }
                }
            }
            Some("eval") => {
                if let Some(l) = log["loss"].as_f64() {
                    vloss.points.push((step, l));
                }
                if let Some(a) = log["accuracy"].as_f64() {
                    vacc.points.push((step, 100.0 * a));
                }
            }
            _ => {}
        }
    }
    let mut train_series = vec![loss];
    if tasks.len() > 1 {
        train_series.extend(tasks.into_values());
    }
    train_series.push(vloss);
    let mut out = vec![Chart {
        title: format!("{stage}: loss"),
        x_label: "optimiser step".into(),
        y_label: "loss".into(),
        series: train_series,
    }];
    if !vacc.points.is_empty() {
        out.push(Chart {
            title: format!("{stage}: validation accuracy"),
            x_label: "optimiser step".into(),
            y_label: "accuracy (%)".into(),
            series: vec![vacc],
        });
    }
    out
}

/// Flattens a JSON object into `(dotted.key, value)` rows for a table.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Number(n) => {
            let s = match n.as_f64() {
                Some(f) if n.is_f64() => format!("{f:.4}"),
                _ => n.to_string(),
            };
            out.push((prefix.to_string(), s))
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Summary keys the report lays out itself; the others go to the "more figures" section.
const LAID_OUT: &[&str] = &[
    "config",
    "warnings",
    "run_dir",
    "recipe",
    "dataset",
    "task",
    "splits",
    "teacher",
    "teacher_stages",
    "training_set",
    "training",
    "accuracy_before",
    "accuracy_after",
    "baseline_standard",
    "paired",
    "eval_mode",
    "student",
    "predictions",
    "report",
    "rounds",
    "elad",
];

const TEMPLATE: &str = include_str!("report.html.j2");

/// Renders the report as one HTML document.
pub fn render_html(input: &ReportInput) -> Result<String, minijinja::Error> {
    let s = &input.summary;
    let mut kept = vec![];
    flatten("", &s["training_set"], &mut kept);
    let mut stages = vec![];
    if let Some(m) = s["teacher_stages"].as_object() {
        for (name, v) in m {
            stages.push(serde_json::json!({ "stage": name, "t": v }));
        }
    }
    let mut more = vec![];
    if let Some(m) = s.as_object() {
        for (k, v) in m {
            if !LAID_OUT.contains(&k.as_str()) {
                flatten(k, v, &mut more);
            }
        }
    }
    let charts: Vec<String> = input.charts.iter().map(svg_line_chart).collect();
    let config = serde_json::from_str::<Value>(&input.config)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| input.config.clone());
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)?;
    env.get_template("report.html")?
        .render(minijinja::context! {
            s => minijinja::Value::from_serialize(s),
            kept => kept,
            stages => stages,
            more => more,
            teachers => input.teachers,
            charts => charts,
            examples => input.examples,
            comparison => input.comparison,
            config => config,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"kind":"step","log":{"step":1,"loss":2.0,"task_loss":{"label":2.5,"rationale":1.5}}}
{"kind":"step","log":{"step":2,"loss":1.5,"task_loss":{"label":2.0,"rationale":1.0}}}
not json
{"kind":"eval","log":{"step":2,"loss":1.2,"accuracy":0.25,"best":true}}"#;

    #[test]
    fn training_log_becomes_loss_and_accuracy_charts() {
        let charts = training_charts("stage 0", LOG);
        assert_eq!(charts.len(), 2);
        let names: Vec<_> = charts[0].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "train loss",
                "label loss",
                "rationale loss",
                "validation loss"
            ]
        );
        assert_eq!(charts[0].series[0].points, [(1.0, 2.0), (2.0, 1.5)]);
        assert_eq!(charts[1].series[0].points, [(2.0, 25.0)]);
    }

    #[test]
    fn a_band_is_a_shaded_polygon_under_its_line_and_widens_the_axes() {
        let chart = |band: Vec<(f64, f64, f64)>| Chart {
            title: "curves".into(),
            x_label: "tokens".into(),
            y_label: "accuracy".into(),
            series: vec![Series {
                name: "elad (3 seeds)".into(),
                points: vec![(0.0, 20.0), (1000.0, 30.0)],
                band,
            }],
        };
        let plain = svg_line_chart(&chart(vec![]));
        assert!(!plain.contains("<polygon"), "{plain}");
        let banded = svg_line_chart(&chart(vec![(0.0, 10.0, 25.0), (1000.0, 28.0, 55.0)]));
        assert_eq!(banded.matches("<polygon").count(), 1, "{banded}");
        // the axis reaches the band's top (55), which no point of the line does
        assert!(
            banded.contains("\n55.0\n") && !plain.contains("\n55.0\n"),
            "{banded}"
        );
    }

    #[test]
    fn a_chart_is_an_svg_with_one_path_per_series() {
        let svg = svg_line_chart(&training_charts("s", LOG)[0]);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("train loss") && svg.contains("validation loss"));
        // series are the 2-pixel lines (grid and legend lines are 1 pixel)
        let lines = svg
            .split("<polyline")
            .skip(1)
            .filter(|l| l.split('>').next().unwrap().contains("stroke-width=\"2\""))
            .count();
        assert_eq!(lines, 4, "{svg}");
        let empty = svg_line_chart(&Chart {
            title: "nothing".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![],
        });
        assert!(empty.contains("no data"));
    }

    #[test]
    fn the_page_shows_the_figures_and_escapes_what_teachers_wrote() {
        let summary = serde_json::json!({
            "recipe": "step-by-step", "dataset": "csqa", "task": "multiple_choice",
            "splits": {"train": 40, "valid": 20, "test": 30},
            "teacher": {"calls": 40, "tokens": 9000, "cost_usd": 0.0},
            "teacher_stages": {"cots": {"done": 40, "correct": 22, "unparseable": 3}},
            "training_set": {"cots_kept": 22, "cots_wrong": 15, "pairs": {"label": 22, "rationale": 22}},
            "accuracy_before": {"n": 30, "correct": 6, "accuracy": 0.2, "ci95": [0.0951, 0.3731]},
            "accuracy_after": {"n": 30, "correct": 9, "accuracy": 0.3, "ci95": [0.1667, 0.4788]},
            "eval_mode": "label",
            "review": {"accepted": 12},
            "warnings": ["teacher `qwen`, stage cots: 3 of 40 replies were cut at the token limit (256 tokens)"],
        });
        let html = render_html(&ReportInput {
            summary,
            config: r#"{"recipe":{"name":"step-by-step"}}"#.into(),
            teachers: vec![TeacherRow {
                teacher: "qwen".into(),
                calls_ok: 40,
                calls_failed: 1,
                prompt_tokens: 7000,
                completion_tokens: 2000,
                cost_usd: 0.0,
                mean_latency_ms: 900.0,
                calls_truncated: 3,
            }],
            charts: training_charts("stage 0", LOG),
            examples: vec![SideBySide {
                id: "q1".into(),
                question: "Where do <b>fish</b> live?".into(),
                gold: "(a)".into(),
                teacher: "In water & so on.".into(),
                student: "In the sea.".into(),
            }],
            comparison: None,
        })
        .unwrap();
        for want in [
            "step-by-step",
            "csqa",
            "20.0% [9.5, 37.3] (6/30)",
            "30.0% [16.7, 47.9] (9/30)",
            "cots_kept",
            "pairs.rationale",
            "review.accepted",
            "qwen",
            "7000",
            "&lt;b&gt;fish&lt;&#x2f;b&gt;",
            "In water &amp; so on.",
            "cut at the token limit",
            "3 of 40 replies were cut",
            "<svg",
        ] {
            assert!(html.contains(want), "missing {want:?}");
        }
        assert!(
            !html.contains("<b>fish"),
            "teacher text reached the page unescaped"
        );
        assert!(
            !html.contains("<script"),
            "the report must be self-contained and static"
        );
    }
}
