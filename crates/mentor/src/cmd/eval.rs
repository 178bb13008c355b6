//! `mentor eval`: score a student on a split in one of four inference modes.

use crate::config::Config;
use crate::output::Summary;
use crate::run::{self};
use anyhow::{bail, Result};
use mentor_core::Split;
use mentor_data::DatasetSpec;
use mentor_methods::evaluate::InferenceMode;
use mentor_methods::recipes::RecipeExt;
use serde_json::json;
use std::path::PathBuf;

/// Evaluate a student: it answers a split's questions and its parsed answers are scored.
///
/// Modes: `label` (predict: → answer), `cot` (solve: → reasoning + answer), `vote` (N sampled
/// CoTs, majority), `self-eval-vote` (N sampled CoTs, each judged by the student itself,
/// weighted correct 20 / uncertain 1 / wrong 0.001). With a CONFIG the model is the run's trained
/// student (RUN/student/…/best) unless --model names another (e.g. the base model, for
/// "before"); without one, give --model and --data. Predictions go to RUN/eval/*.jsonl.
/// `self-eval-vote` after `vote` (same model, split and [eval] sampling settings) judges the
/// samples `vote` drew rather than drawing them again.
///
/// Examples: mentor eval svamp-sbs.toml --split test --json
///           mentor eval --model smollm2-135m --data svamp --mode cot --limit 50
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The experiment config (its run's student, data and [eval] settings).
    config: Option<PathBuf>,
    /// A model to score instead of the run's student: asset name, .gguf or HF directory.
    #[arg(long)]
    model: Option<String>,
    /// A built-in dataset name, when no CONFIG is given.
    #[arg(long)]
    data: Option<String>,
    /// label | cot | vote | self-eval-vote (default: [eval] mode, else the recipe's own).
    #[arg(long)]
    mode: Option<InferenceMode>,
    /// Which split to score. Model selection uses valid; report test once.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Score at most this many items of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Samples a question for vote modes (default: [eval] samples).
    #[arg(long)]
    samples: Option<usize>,
    /// Where the run lives; default runs/<config name> (runs/eval without a config).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Worker threads for the tensor kernels (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<Summary> {
    crate::models::set_threads(a.threads);
    let r = match (&a.config, &a.data) {
        (Some(c), _) => run::open(c, a.run_dir.clone())?,
        (None, Some(d)) => {
            if a.model.is_none() {
                bail!("--data needs --model (or give a CONFIG)");
            }
            let cfg = Config::for_data(DatasetSpec::builtin(d));
            let dir = a
                .run_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs/eval"));
            let j = serde_json::to_string(&cfg)?;
            run::open_with(cfg, dir, &j)?
        }
        (None, None) => bail!("give a CONFIG, or --model and --data"),
    };
    let mut r = r;
    if let Some(s) = a.samples {
        r.cfg.eval.samples = s;
    }
    let mode = a
        .mode
        .unwrap_or_else(|| mentor_pipeline::train::default_mode(&r));
    if a.model.is_none() {
        // the run's own student: only the tasks its recipe trained mean anything
        r.cfg
            .recipe
            .check_mode(mode)
            .map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    }
    let model = match &a.model {
        Some(m) => m.clone(),
        None => {
            let dir = mentor_pipeline::eval::trained_model(&r)?;
            dir.display().to_string()
        }
    };
    let (rep, file, secs) = mentor_pipeline::eval::eval_model(&r, &model, a.split, mode, a.limit)?;
    let human = format!(
        "{model} on {} {} ({} items, mode {}): accuracy {:.1}% {} ({} correct, {} unparseable), {} new tokens in {secs:.0}s\npredictions: {}",
        r.ds.name,
        a.split,
        rep.n,
        mode.as_str(),
        100.0 * rep.accuracy,
        mentor_core::score::format_interval(rep.ci95),
        rep.correct,
        rep.unparseable,
        rep.new_tokens,
        file.display()
    );
    Ok(Summary {
        human,
        json: json!({ "model": model, "dataset": r.ds.name, "split": a.split, "mode": mode, "n": rep.n,
                      "correct": rep.correct, "accuracy": rep.accuracy, "ci95": rep.ci95,
                      "unparseable": rep.unparseable, "new_tokens": rep.new_tokens, "seconds": secs,
                      "predictions": file }),
    })
}
