//! `mentor report RUN`: the run's single-file HTML report (`RUN/report.html`), rebuilt from what
//! the run left on disk — `summary.json`, the store's ledger and config, each training stage's
//! `log.jsonl`, and `examples.jsonl` (teacher and student side by side). `mentor distill` writes
//! it at the end of every run.

use crate::output::Summary;
use anyhow::{Context, Result};
use mentor_report::{training_charts, ReportInput, SideBySide, TeacherRow};
use mentor_store::Store;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Write RUN/report.html: accuracy before and after, teacher calls, tokens and cost, what was
/// kept, training and validation curves, teacher and student side by side, the config.
///
/// The report is one self-contained HTML file (inline SVG, no scripts): open it in a browser or
/// attach it anywhere. RUN/summary.json holds the same figures for scripts.
///
/// Example: mentor report runs/quickstart
#[derive(clap::Args)]
pub struct Args {
    /// The run directory (holds mentor.sqlite and summary.json).
    pub run: PathBuf,
}

pub fn run(a: Args) -> Result<Summary> {
    let path = write_report(&a.run)?;
    Ok(Summary {
        human: format!("report: {}", path.display()),
        json: json!({ "report": path, "summary": a.run.join("summary.json") }),
    })
}

/// Renders `run_dir/report.html` and returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    let summary_path = run_dir.join("summary.json");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).with_context(|| {
            format!(
                "{}: no summary; run `mentor distill` on this run first",
                summary_path.display()
            )
        })?)
        .with_context(|| format!("{}: not valid JSON", summary_path.display()))?;
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
        })
        .collect();
    let mut charts = vec![];
    let mut stage = 0;
    while let Ok(log) =
        std::fs::read_to_string(run_dir.join(format!("student/stage-{stage}/log.jsonl")))
    {
        charts.extend(training_charts(&format!("stage {stage}"), &log));
        stage += 1;
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
    let html = mentor_report::render_html(&ReportInput {
        summary,
        config,
        teachers,
        charts,
        examples,
    })?;
    let path = run_dir.join("report.html");
    mentor_model::load::write_atomic(&path, html.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
