//! `mentor report RUN`: the run's single-file HTML report (`RUN/report.html`), rebuilt from what
//! the run left on disk — `summary.json`, the store's ledger and config, each training stage's
//! `log.jsonl`, and `examples.jsonl` (teacher and student side by side). `mentor distill` writes
//! it at the end of every run.

use crate::output::Summary;
use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;

/// Write RUN/report.html: accuracy before and after, teacher calls, tokens and cost, what was
/// kept, training and validation curves, teacher and student side by side, the config.
///
/// The report is one self-contained HTML file (inline SVG, no scripts): open it in a browser or
/// attach it anywhere. RUN/summary.json holds the same figures for scripts. Runs in rounds
/// (ELAD, MAPD with mining_rounds > 1) plot validation accuracy against teacher tokens;
/// `--compare` draws other runs' curves (the baselines at equal budget) on the same chart.
///
/// Examples: mentor report runs/quickstart
///           mentor report runs/elad --compare runs/elad-random runs/elad-entropy
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The run directory (holds mentor.sqlite and summary.json).
    pub run: PathBuf,
    /// Other runs in rounds whose accuracy-per-teacher-token curves join this run's chart.
    #[arg(long, num_args = 1..)]
    pub compare: Vec<PathBuf>,
}

pub fn run(a: Args) -> Result<Summary> {
    let path = mentor_pipeline::report::write_report_with(&a.run, &a.compare)?;
    Ok(Summary {
        human: format!("report: {}", path.display()),
        json: json!({ "report": path, "summary": a.run.join("summary.json") }),
    })
}
