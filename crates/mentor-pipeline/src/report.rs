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
    Some(Series { name, points })
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
    if let Some(own) = rounds_series(&summary, "") {
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
    while let Ok(log) =
        std::fs::read_to_string(run_dir.join(format!("student/stage-{stage}/log.jsonl")))
    {
        charts.extend(training_charts(&format!("stage {stage}"), &log));
        stage += 1;
    }
    // a recipe in rounds trains once per round: the best round's curves
    if let Some(best) = summary["rounds"]["best_round"].as_u64() {
        let log = run_dir.join(format!("student/round-{best}/stage-0/log.jsonl"));
        if let Ok(log) = std::fs::read_to_string(log) {
            charts.extend(training_charts(&format!("round {best} (best)"), &log));
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
        match crate::compare::compare_runs(&runs, None, None, 10_000, 0, false, None) {
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
