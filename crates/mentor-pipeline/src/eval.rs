//! Evaluation as the pipeline runs it: a model scored on a split of the run's dataset in an
//! inference mode, predictions written to RUN/eval/ and the accuracy to the store.

use crate::progress::items_bar;
use crate::run::Run;
use anyhow::{bail, Context, Result};
use mentor_core::Split;
use mentor_methods::evaluate::{evaluate, EvalReport, InferenceMode};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
