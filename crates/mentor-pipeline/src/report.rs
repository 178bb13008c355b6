//! The run report as the pipeline writes it: the inputs gathered from a run directory (summary,
//! store, training logs, examples) and handed to `mentor-report` to draw.

use anyhow::{Context, Result};
use mentor_report::{training_charts, Chart, ReportInput, Series, SideBySide, TeacherRow};
use mentor_store::Store;
use std::path::{Path, PathBuf};

/// Renders `run_dir/report.html` and returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    write_report_with(run_dir, &[])
}

fn read_summary(run_dir: &Path) -> Result<serde_json::Value> {
    let path = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: no summary; run `mentor distill` on this run first",
            path.display()
        )
    })?;
    let mut s: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    // summaries written before MAPD had rounds called ELAD's curve `elad`
    if s.get("rounds").is_none_or(|v| v.is_null()) {
        if let Some(mut e) = s.get("elad").filter(|e| !e.is_null()).cloned() {
            e["recipe"] = "elad".into();
            s["rounds"] = e;
        }
    }
    Ok(s)
}

/// The round curve in a run's summary (ELAD, MAPD's mining rounds): validation accuracy (%)
/// against cumulative teacher tokens, named by its ELAD selection (and "from scratch" when the
/// teacher did not revise) or its recipe.
/// The median length of the validation answers at each validated step of a training stage
/// (`valid/step-N.jsonl`): a student that stops reasoning shows as a fall here.
fn answer_length_chart(stage_dir: &Path, label: &str) -> Option<Chart> {
    let mut points = vec![];
    for e in std::fs::read_dir(stage_dir.join("valid")).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<f64>().ok())
        else {
            continue;
        };
        let Ok((_, _, lens)) = crate::compare::read_predictions(&e.path()) else {
            continue;
        };
        if let Some(m) = crate::compare::median_chars(lens) {
            points.push((step, m as f64));
        }
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    (!points.is_empty()).then(|| Chart {
        title: format!("{label}: median length of the validation answers"),
        x_label: "optimiser step".into(),
        y_label: "characters".into(),
        series: vec![Series {
            name: "median answer length".into(),
            points,
            band: vec![],
        }],
    })
}

fn rounds_series(summary: &serde_json::Value, label: &str) -> Option<Series> {
    let e = summary.get("rounds").filter(|e| !e.is_null())?;
    let name = format!(
        "{label}{}{}",
        e["selection"]
            .as_str()
            .or(e["recipe"].as_str())
            .unwrap_or("?"),
        if e["revise"] == false {
            " (from scratch)"
        } else {
            ""
        }
    );
    let points = e["points"]
        .as_array()?
        .iter()
        .filter_map(|p| {
            Some((
                p["teacher_tokens"].as_f64()?,
                100.0 * p["valid_accuracy"].as_f64()?,
            ))
        })
        .collect();
    Some(Series {
        name,
        points,
        band: vec![],
    })
}

/// One curve per variant over its seeds, for runs in rounds: at each round, the seeds' mean
/// cumulative teacher tokens against their mean validation accuracy, shaded from the lowest to
/// the highest seed. `runs` are (variant, run directory); runs without a round curve are skipped.
/// None when no run has one.
pub fn variant_round_curves(runs: &[(String, PathBuf)]) -> Option<Chart> {
    // (variant, each seed's (tokens, accuracy) per round), in order of first appearance
    type Curve = Vec<(f64, f64)>;
    let mut variants: Vec<(String, Vec<Curve>)> = vec![];
    for (variant, dir) in runs {
        let Some(curve) = read_summary(dir).ok().and_then(|s| rounds_series(&s, "")) else {
            continue;
        };
        match variants.iter_mut().find(|(v, _)| v == variant) {
            Some((_, seeds)) => seeds.push(curve.points),
            None => variants.push((variant.clone(), vec![curve.points])),
        }
    }
    if variants.is_empty() {
        return None;
    }
    let series = variants
        .into_iter()
        .map(|(variant, seeds)| {
            let rounds = seeds.iter().map(Vec::len).max().unwrap_or(0);
            let (mut points, mut band) = (vec![], vec![]);
            for r in 0..rounds {
                let at: Vec<(f64, f64)> = seeds.iter().filter_map(|s| s.get(r).copied()).collect();
                let n = at.len() as f64;
                let x = at.iter().map(|p| p.0).sum::<f64>() / n;
                let y = at.iter().map(|p| p.1).sum::<f64>() / n;
                let lo = at.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                let hi = at.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                points.push((x, y));
                band.push((x, lo, hi));
            }
            Series {
                name: format!(
                    "{variant} ({} seed{})",
                    seeds.len(),
                    if seeds.len() == 1 { "" } else { "s" }
                ),
                points,
                band,
            }
        })
        .collect();
    Some(Chart {
        title: "validation accuracy per teacher token (mean over seeds, min–max shaded)".into(),
        x_label: "teacher tokens (cumulative, mean over seeds)".into(),
        y_label: "validation accuracy (%)".into(),
        series,
    })
}

/// As [`write_report`], with other runs' ELAD curves on this run's chart.
pub fn write_report_with(run_dir: &Path, compare: &[PathBuf]) -> Result<PathBuf> {
    let summary = read_summary(run_dir)?;
    let store = Store::open_run_dir(run_dir)?;
    let config = store.meta("config")?.unwrap_or_default();
    let teachers = store
        .ledger()?
        .into_iter()
        .map(|l| TeacherRow {
            teacher: l.teacher,
            calls_ok: l.calls_ok,
            calls_failed: l.calls_failed,
            prompt_tokens: l.prompt_tokens,
            completion_tokens: l.completion_tokens,
            cost_usd: l.cost_usd,
            mean_latency_ms: l.mean_latency_ms,
            calls_truncated: l.calls_truncated,
        })
        .collect();
    let mut charts = vec![];
    // sweep cells (each with its variant in cell.json), some variant with several seeds: one
    // mean curve per variant with its seeds' range, as the sweep draws it
    let cells: Option<Vec<(String, PathBuf)>> = std::iter::once(run_dir)
        .chain(compare.iter().map(PathBuf::as_path))
        .map(|d| {
            let cell = std::fs::read_to_string(d.join(crate::compare::CELL_FILE)).ok()?;
            let v: serde_json::Value = serde_json::from_str(&cell).ok()?;
            Some((v["variant"].as_str()?.to_string(), d.to_path_buf()))
        })
        .collect();
    let banded = cells.filter(|c| {
        c.iter()
            .any(|(v, _)| c.iter().filter(|(w, _)| w == v).count() > 1)
    });
    if let Some(chart) = banded
        .as_deref()
        .and_then(variant_round_curves)
        .filter(|_| rounds_series(&summary, "").is_some())
    {
        charts.push(chart);
    } else if let Some(own) = rounds_series(&summary, "") {
        let mut series = vec![own];
        for other in compare {
            let s = read_summary(other)?;
            let label = format!("{}: ", other.display());
            series.push(rounds_series(&s, &label).with_context(|| {
                format!(
                    "{}: not a run in rounds (ELAD, MAPD with mining_rounds > 1): its summary has no curve",
                    other.display()
                )
            })?);
        }
        charts.push(Chart {
            title: "validation accuracy per teacher token".into(),
            x_label: "teacher tokens (cumulative)".into(),
            y_label: "validation accuracy (%)".into(),
            series,
        });
    }
    let mut stage = 0;
    loop {
        let dir = mentor_methods::student::stage_dir(&run_dir.join("student"), stage);
        let Ok(log) = std::fs::read_to_string(dir.join("log.jsonl")) else {
            break;
        };
        charts.extend(training_charts(&format!("stage {stage}"), &log));
        charts.extend(answer_length_chart(&dir, &format!("stage {stage}")));
        stage += 1;
    }
    // a recipe in rounds trains once per round: the curves of the round scored on test
    if let Some(tested) = crate::rounds::tested_round_of(&summary) {
        let dir = run_dir.join(format!("student/round-{tested}/stage-0"));
        let name = format!("round {tested} (tested)");
        if let Ok(log) = std::fs::read_to_string(dir.join("log.jsonl")) {
            charts.extend(training_charts(&name, &log));
            charts.extend(answer_length_chart(&dir, &name));
        }
    }
    let mut examples = vec![];
    if let Ok(text) = std::fs::read_to_string(run_dir.join("examples.jsonl")) {
        for (i, line) in text.lines().enumerate() {
            let e: SideBySide = serde_json::from_str(line).with_context(|| {
                format!("{}:{}", run_dir.join("examples.jsonl").display(), i + 1)
            })?;
            examples.push(e);
        }
    }
    // other runs scored on the same questions: the paired comparison (runs in rounds without
    // comparable predictions only get their curves)
    let comparison = if compare.is_empty() {
        None
    } else {
        let mut runs = vec![run_dir.to_path_buf()];
        runs.extend(compare.iter().cloned());
        match crate::compare::compare_runs(&runs, None, None, 10_000, 0, false, &[]) {
            Ok(c) => Some(c.render(false)),
            Err(e) => {
                tracing::warn!("report: no paired comparison with {compare:?}: {e:#}");
                None
            }
        }
    };
    let html = mentor_report::render_html(&ReportInput {
        summary,
        config,
        teachers,
        charts,
        examples,
        comparison,
    })?;
    let path = run_dir.join("report.html");
    mentor_model::load::write_atomic(&path, html.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in_rounds(dir: &Path, selection: &str, curve: &[(f64, f64)]) {
        std::fs::create_dir_all(dir).unwrap();
        let points: Vec<serde_json::Value> = curve
            .iter()
            .map(|&(t, a)| serde_json::json!({"teacher_tokens": t, "valid_accuracy": a}))
            .collect();
        let s = serde_json::json!({
            "rounds": {"recipe": "elad", "selection": selection, "points": points},
            "splits": {"train": 8, "valid": 4, "test": 6},
            "eval_mode": "cot",
        });
        std::fs::write(dir.join("summary.json"), s.to_string()).unwrap();
    }

    /// Seeds of a variant are aligned by round: the curve is their mean, the band their range;
    /// a seed with fewer rounds counts where it has them; a run not in rounds is left out.
    #[test]
    fn each_variant_is_one_mean_curve_with_its_seeds_range() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        run_in_rounds(&p("elad-s0"), "elad", &[(100.0, 0.2), (300.0, 0.4)]);
        run_in_rounds(
            &p("elad-s1"),
            "elad",
            &[(140.0, 0.3), (260.0, 0.6), (500.0, 0.5)],
        );
        run_in_rounds(&p("random-s0"), "random", &[(120.0, 0.1)]);
        std::fs::create_dir_all(p("standard-s0")).unwrap();
        std::fs::write(p("standard-s0/summary.json"), "{}").unwrap();
        let runs: Vec<(String, PathBuf)> = [
            ("elad", "elad-s0"),
            ("random", "random-s0"),
            ("elad", "elad-s1"),
            ("standard", "standard-s0"),
        ]
        .iter()
        .map(|(v, n)| (v.to_string(), p(n)))
        .collect();
        let chart = variant_round_curves(&runs).unwrap();
        assert_eq!(chart.series.len(), 2);
        let elad = &chart.series[0];
        assert_eq!(elad.name, "elad (2 seeds)");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let want = [
            (120.0, 25.0, 20.0, 30.0),
            (280.0, 50.0, 40.0, 60.0),
            (500.0, 50.0, 50.0, 50.0),
        ];
        assert_eq!(elad.points.len(), 3);
        for (i, (x, y, lo, hi)) in want.iter().enumerate() {
            assert!(
                close(elad.points[i].0, *x) && close(elad.points[i].1, *y),
                "{:?}",
                elad.points
            );
            let b = elad.band[i];
            assert!(
                close(b.0, *x) && close(b.1, *lo) && close(b.2, *hi),
                "{:?}",
                elad.band
            );
        }
        assert_eq!(chart.series[1].name, "random (1 seed)");
        assert!(variant_round_curves(&runs[3..]).is_none());
    }

    /// `mentor report CELL --compare OTHER_CELLS…` of a grid in rounds draws the variants'
    /// banded curves; runs that are not sweep cells keep one curve each.
    #[test]
    fn a_report_comparing_sweep_cells_draws_each_variants_band() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        for (cell, variant, curve) in [
            ("elad-s0", "elad", [(100.0, 0.2), (300.0, 0.4)]),
            ("elad-s1", "elad", [(140.0, 0.3), (260.0, 0.6)]),
            ("random-s0", "random", [(120.0, 0.1), (250.0, 0.2)]),
        ] {
            run_in_rounds(&p(cell), variant, &curve);
            std::fs::write(
                p(cell).join(crate::compare::CELL_FILE),
                serde_json::json!({"variant": variant, "seed": 0}).to_string(),
            )
            .unwrap();
        }
        let html = std::fs::read_to_string(
            write_report_with(&p("elad-s0"), &[p("elad-s1"), p("random-s0")]).unwrap(),
        )
        .unwrap();
        assert!(
            html.contains("min–max shaded") && html.contains("elad (2 seeds)"),
            "no band chart"
        );
        assert!(html.contains("<polygon"));
        // the same runs without their cell files: one curve a run
        for cell in ["elad-s0", "elad-s1", "random-s0"] {
            std::fs::remove_file(p(cell).join(crate::compare::CELL_FILE)).unwrap();
        }
        let html = std::fs::read_to_string(
            write_report_with(&p("elad-s0"), &[p("elad-s1"), p("random-s0")]).unwrap(),
        )
        .unwrap();
        assert!(
            !html.contains("min–max shaded")
                && html.contains("validation accuracy per teacher token")
        );
    }
}
