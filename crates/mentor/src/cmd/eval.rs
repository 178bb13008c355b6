//! `mentor eval`: score a student on a split in one of four inference modes.

use crate::config::Config;
use crate::output::Summary;
use crate::progress::items_bar;
use crate::run::{self, Run};
use anyhow::{bail, Context, Result};
use mentor_core::Split;
use mentor_data::DatasetSpec;
use mentor_methods::evaluate::{evaluate, EvalReport, InferenceMode};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Evaluate a student: it answers a split's questions and its parsed answers are scored.
///
/// Modes: `label` (predict: → answer), `cot` (solve: → reasoning + answer), `vote` (N sampled
/// CoTs, majority), `self-eval-vote` (N sampled CoTs, each judged by the student itself,
/// weighted correct 20 / uncertain 1 / wrong 0.001). With a CONFIG the model is the run's trained
/// student (RUN/student/…/best) unless --model names another (e.g. the base model, for
/// "before"); without one, give --model and --data. Predictions go to RUN/eval/*.jsonl.
///
/// Examples: mentor eval svamp-sbs.toml --split test --json
///           mentor eval --model smollm2-135m --data svamp --mode cot --limit 50
#[derive(clap::Args)]
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
    let mode = a.mode.unwrap_or_else(|| super::train::default_mode(&r));
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
            let dir = trained_model(&r)?;
            dir.display().to_string()
        }
    };
    let (rep, file, secs) = eval_model(&r, &model, a.split, mode, a.limit)?;
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

/// The run's trained student: the last training stage's `best/`.
pub fn trained_model(r: &Run) -> Result<PathBuf> {
    crate::models::run_student(&r.dir)
}

/// Scores `model` on `split` of the run's dataset; predictions are written to RUN/eval/ and the
/// accuracy to the store. Returns the report, the predictions file and the seconds taken.
pub fn eval_model(
    r: &Run,
    model: &str,
    split: Split,
    mode: InferenceMode,
    limit: Option<usize>,
) -> Result<(EvalReport, PathBuf, f64)> {
    let mut items = r.ds.split(split).to_vec();
    if let Some(n) = limit {
        items.truncate(n);
    }
    if items.is_empty() {
        bail!("the {split} split of `{}` is empty", r.ds.name);
    }
    let loaded = crate::models::load_for_inference(model)?;
    let per_item = match mode {
        InferenceMode::Label | InferenceMode::Cot => 1,
        InferenceMode::Vote => r.cfg.eval.samples,
        InferenceMode::SelfEvalVote => 2 * r.cfg.eval.samples,
    };
    let bar = items_bar(
        (items.len() * per_item) as u64,
        &format!("eval {}", mode.as_str()),
    );
    let started = Instant::now();
    let rep = evaluate(
        &loaded.model,
        &loaded.tokenizer,
        r.ds.task,
        &items,
        mode,
        &r.cfg.eval,
        &mut |n| bar.inc(n as u64),
    )?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let file = write_predictions(&r.dir, model, split, mode, &rep)?;
    let mut s = r.store.lock().unwrap();
    s.log_metric(
        None,
        None,
        Some(split.as_str()),
        &format!("eval/{}/{}", mode.as_str(), tag(model)),
        rep.accuracy,
    )?;
    Ok((rep, file, secs))
}

fn tag(model: &str) -> String {
    model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_predictions(
    dir: &Path,
    model: &str,
    split: Split,
    mode: InferenceMode,
    rep: &EvalReport,
) -> Result<PathBuf> {
    let eval_dir = dir.join("eval");
    std::fs::create_dir_all(&eval_dir)?;
    let file = eval_dir.join(format!("{}.{}.{}.jsonl", tag(model), split, mode.as_str()));
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&file).with_context(|| file.display().to_string())?,
    );
    for it in &rep.items {
        writeln!(f, "{}", serde_json::to_string(it)?)?;
    }
    f.flush()?;
    Ok(file)
}
