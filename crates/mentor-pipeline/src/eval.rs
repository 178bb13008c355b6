//! Evaluation as the pipeline runs it: a model scored on a split of the run's dataset in an
//! inference mode, predictions written to RUN/eval/ and the accuracy to the store.

use crate::progress::items_bar;
use crate::run::Run;
use anyhow::{bail, Result};
use mentor_core::Split;
use mentor_methods::evaluate::{evaluate_samples, EvalReport, InferenceMode};
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
    // self-eval-vote judges the samples a vote evaluation of this model drew, when it drew
    // them with these settings: the two modes then differ only in the judging
    let given = (mode == InferenceMode::SelfEvalVote)
        .then(|| vote_samples(r, model, split, &items))
        .flatten();
    if given.is_some() {
        tracing::info!(
            "self-eval-vote: judging the {} samples a question of the `vote` evaluation (same model, split and sampling settings)",
            r.cfg.eval.samples
        );
    }
    let rep = evaluate_samples(
        &loaded.model,
        &loaded.tokenizer,
        r.ds.task,
        &items,
        mode,
        &r.cfg.eval,
        given,
        &mut |n| bar.inc(n as u64),
    )?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let file = write_predictions(&r.dir, model, split, mode, &rep)?;
    if matches!(mode, InferenceMode::Vote | InferenceMode::SelfEvalVote) {
        std::fs::write(
            sampling_file(&file),
            serde_json::to_string(&sampling_settings(r))?,
        )?;
    }
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

/// Where a run's predictions of `model` on `split` in `mode` go:
/// RUN/eval/<model>.<split>.<mode>.jsonl.
fn predictions_file(run_dir: &Path, model: &str, split: Split, mode: InferenceMode) -> PathBuf {
    run_dir
        .join("eval")
        .join(format!("{}.{}.{}.jsonl", tag(model), split, mode.as_str()))
}

/// What decides the samples of `vote` / `self-eval-vote`, kept beside their predictions.
fn sampling_settings(r: &Run) -> serde_json::Value {
    let e = &r.cfg.eval;
    serde_json::json!({
        "samples": e.samples, "temperature": e.temperature, "top_p": e.top_p,
        "max_new_tokens": e.max_new_tokens, "seed": e.seed,
    })
}

/// The file beside a predictions file that says how its samples were drawn.
fn sampling_file(predictions: &Path) -> PathBuf {
    predictions.with_extension("sampling.json")
}

/// The samples of an earlier `vote` evaluation of `model` on these items, if it drew them with
/// the run's present sampling settings; each item's in order.
fn vote_samples(
    r: &Run,
    model: &str,
    split: Split,
    items: &[mentor_core::Example],
) -> Option<Vec<Vec<String>>> {
    let file = predictions_file(&r.dir, model, split, InferenceMode::Vote);
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sampling_file(&file)).ok()?).ok()?;
    if settings != sampling_settings(r) {
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .ok()?;
    if rows.len() != items.len() {
        return None;
    }
    let mut out = vec![];
    for (row, ex) in rows.iter().zip(items) {
        if row["id"].as_str() != Some(ex.id.as_str()) {
            return None;
        }
        let outputs: Vec<String> = row["votes"]
            .as_array()?
            .iter()
            .map(|v| v["output"].as_str().map(String::from))
            .collect::<Option<_>>()?;
        if outputs.len() != r.cfg.eval.samples {
            return None;
        }
        out.push(outputs);
    }
    Some(out)
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
    let file = predictions_file(dir, model, split, mode);
    crate::train::write_jsonl(&file, &rep.items)?;
    Ok(file)
}
