//! `mentor distill`: the whole loop of a recipe, each stage resumable, leaving its results in the
//! run directory. The no-config quickstart waits for the embedded teacher.

use crate::config::{default_run_dir, Config};
use crate::output::Summary;
use crate::{run, teachers};
use anyhow::{Context, Result};
use mentor_core::{extract::extract, score_prediction, ScoreSummary, Split};
use mentor_data::{assets, Dataset, DatasetSpec};
use mentor_store::{Annotation, Store};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Run the whole loop: data → teachers → filter → train → evaluate → report.
///
/// With no CONFIG it runs the embedded quickstart: fetch the default assets if missing, take a
/// slice of CommonsenseQA (dev, split by a fixed seed), and distil the packaged teacher into
/// SmolLM2-135M. With a CONFIG (see `mentor init`) it runs that recipe. Reruns resume from the run
/// directory's store.
///
/// With a CONFIG, every stage runs: data → the recipe's teacher stages (resumable, never paying
/// a call twice) → training set → training (resumable) → the student before and after on the
/// test split → RUN/summary.json. Without one (the quickstart), the embedded teacher is not
/// built yet: data and recorded teacher outputs are imported, the other stages listed as pending.
///
/// Examples: mentor distill examples/svamp-step-by-step.toml --json
///           mentor distill --quick --run-dir runs/demo --json
#[derive(clap::Args)]
pub struct Args {
    /// An experiment config (TOML); none runs the embedded quickstart.
    config: Option<PathBuf>,
    /// A ~3 minute version of the quickstart (fewer examples).
    #[arg(long)]
    quick: bool,
    /// Multiply the quickstart's example counts (e.g. 4 for a longer, more telling run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Where the run lives (store, checkpoints, report); default runs/<config name>.
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

/// Stages of the loop that the current build cannot run yet.
const PENDING: &[&str] = &[
    "annotate (teachers)",
    "train (student engine)",
    "eval (student engine)",
    "report",
];

pub fn run(a: Args) -> Result<Summary> {
    crate::models::set_threads(a.threads);
    if let Some(path) = &a.config {
        let run_dir = a
            .run_dir
            .clone()
            .unwrap_or_else(|| default_run_dir(Some(path)));
        return run_recipe(path, run_dir, &a);
    }
    let run_dir = a
        .run_dir
        .clone()
        .unwrap_or_else(|| default_run_dir(a.config.as_deref()));
    let (cfg, config_json) = match &a.config {
        Some(path) => {
            let cfg = Config::load(path)?;
            let j = serde_json::to_string(&cfg)?;
            (cfg, j)
        }
        None => {
            let per_split = ((if a.quick { 40.0 } else { 200.0 }) * a.scale)
                .round()
                .max(1.0) as usize;
            let spec = DatasetSpec {
                limit: Some(per_split),
                ..DatasetSpec::builtin("csqa")
            };
            if !a.no_fetch {
                let wanted: Vec<_> = assets::ASSETS.iter().filter(|x| x.default).collect();
                tracing::info!(
                    "stage assets: making sure the default assets are in {}",
                    assets::mentor_home().display()
                );
                super::fetch_assets::fetch(&wanted)?;
            }
            let j = json!({ "quickstart": true, "quick": a.quick, "scale": a.scale, "data": spec })
                .to_string();
            (Config::for_data(spec), j)
        }
    };
    let r = run::open_with(cfg, run_dir.clone(), &config_json)?;
    let ds = &r.ds;
    let recorded = import_recorded(&mut r.store.lock().unwrap(), ds)?;
    for p in PENDING {
        tracing::warn!("stage {p}: not built yet in this version of mentor; skipped");
    }

    let summary = json!({
        "run_dir": run_dir,
        "dataset": ds.name, "task": ds.task,
        "splits": { "train": ds.counts()[0], "valid": ds.counts()[1], "test": ds.counts()[2] },
        "split_method": ds.split_method, "seed": ds.seed,
        "skipped_rows": ds.skipped.len(),
        "recorded_teacher": recorded,
        "stages_done": ["assets", "data", "recorded-import"],
        "stages_pending": PENDING,
        "teacher": { "calls": 0, "tokens": 0, "cost_usd": 0.0 },
    });
    write_summary(&run_dir, &summary)?;
    let [tr, va, te] = ds.counts();
    let mut human = format!(
        "run {}: {} ({}) train {tr} / valid {va} / test {te}\n",
        run_dir.display(),
        ds.name,
        ds.task
    );
    if let Some(rec) = recorded.as_object().filter(|o| !o.is_empty()) {
        human += &format!(
            "recorded teacher accuracy: {}\n",
            serde_json::Value::Object(rec.clone())
        );
    }
    human += &format!(
        "pending (not built yet): {}\nsummary: {}",
        PENDING.join(", "),
        run_dir.join("summary.json").display()
    );
    Ok(Summary {
        human,
        json: summary,
    })
}

/// The whole loop of a configured recipe.
fn run_recipe(path: &Path, run_dir: PathBuf, a: &Args) -> Result<Summary> {
    let mut cfg = Config::load(path)?;
    if let Some(seed) = a.seed {
        cfg.train.seed = seed;
        cfg.recipe.seed = seed;
        cfg.eval.seed = seed;
    }
    let config_json = serde_json::to_string(&cfg)?;
    let r = run::open_with(cfg, run_dir.clone(), &config_json)?;
    r.cfg.recipe.built().map_err(anyhow::Error::msg)?;
    let recorded = import_recorded(&mut r.store.lock().unwrap(), &r.ds)?;
    let mut teacher_stages = serde_json::Map::new();
    if !r.cfg.recipe.teacher_stages().is_empty() {
        let budget = teachers::budget(&r.cfg, &r.store)?;
        let teachers = teachers::build(&r.cfg, &r.ds, &r.store, &budget)?;
        let items = r.ds.split(Split::Train).to_vec();
        for (stage, rep) in super::annotate::annotate_items(&r, &teachers, &items)? {
            if let Some(why) = &rep.stopped {
                anyhow::bail!("teacher stage {stage} stopped early ({why}); rerun to resume");
            }
            if rep.total().failed > 0 {
                tracing::warn!(
                    "teacher stage {stage}: {} calls failed ({:?}); they are retried on rerun",
                    rep.total().failed,
                    rep.failures
                );
            }
            teacher_stages.insert(stage, serde_json::to_value(rep.total())?);
        }
    }
    let mode = super::train::default_mode(&r);
    let before = if a.no_before {
        None
    } else {
        let (rep, _, _) =
            super::eval::eval_model(&r, &r.cfg.student.model, Split::Test, mode, a.eval_limit)?;
        Some(rep)
    };
    let trained = super::train::train_student(&r)?;
    if trained.stopped_early {
        anyhow::bail!("training interrupted; rerun the same command to resume");
    }
    let model = trained.model_dir.display().to_string();
    let (after, predictions, _) =
        super::eval::eval_model(&r, &model, Split::Test, mode, a.eval_limit)?;
    let ledger = r.store.lock().unwrap().ledger()?;
    let (calls, tokens, cost) = ledger.iter().fold((0, 0, 0.0), |(c, t, d), l| {
        (
            c + l.calls_ok + l.calls_failed,
            t + l.prompt_tokens + l.completion_tokens,
            d + l.cost_usd,
        )
    });
    let acc = |e: &mentor_methods::evaluate::EvalReport| json!({ "n": e.n, "correct": e.correct, "accuracy": e.accuracy, "ci95": e.ci95, "unparseable": e.unparseable });
    let stages: Vec<_> = trained.stages.iter().map(|s| json!({
        "stage": s.stage, "examples": s.examples, "steps": s.report.steps, "best_step": s.report.best_step,
        "best_valid_metric": s.report.best_metric, "final_train_loss": s.report.final_train_loss, "final_valid_loss": s.report.final_valid_loss,
    })).collect();
    let summary = json!({
        "run_dir": run_dir, "recipe": r.cfg.recipe.name.as_str(), "dataset": r.ds.name, "task": r.ds.task,
        "splits": { "train": r.ds.counts()[0], "valid": r.ds.counts()[1], "test": r.ds.counts()[2] },
        "recorded_teacher": recorded,
        "teacher_stages": teacher_stages,
        "teacher": { "calls": calls, "tokens": tokens, "cost_usd": cost },
        "training_set": trained.set.stats,
        "training": stages,
        "student": model,
        "eval_mode": mode,
        "accuracy_before": before.as_ref().map(acc),
        "accuracy_after": acc(&after),
        "predictions": predictions,
    });
    write_summary(&run_dir, &summary)?;
    let pct = |e: &mentor_methods::evaluate::EvalReport| {
        format!(
            "{:.1}% ± {:.1} (n={})",
            100.0 * e.accuracy,
            100.0 * e.ci95,
            e.n
        )
    };
    let human = format!(
        "run {}: {} on {} ({})\nteacher: {calls} calls, {tokens} tokens, ${cost:.4}\ntraining set: {:?}\ntest accuracy ({}): before {} → after {}\nstudent: {model}\nsummary: {}",
        run_dir.display(),
        r.cfg.recipe.name.as_str(),
        r.ds.name,
        r.ds.task,
        trained.set.stats.pairs,
        mode.as_str(),
        before.as_ref().map_or("not measured".into(), pct),
        pct(&after),
        run_dir.join("summary.json").display()
    );
    Ok(Summary {
        human,
        json: summary,
    })
}

/// Stores recorded teacher outputs as annotations (parsed answer, correctness) and returns the
/// recorded teacher's accuracy per split.
fn import_recorded(store: &mut Store, ds: &Dataset) -> Result<serde_json::Value> {
    if ds.recorded.is_empty() {
        return Ok(json!({}));
    }
    let split_of: std::collections::HashMap<&str, (Split, &mentor_core::Example)> =
        ds.iter().map(|(s, e)| (e.id.as_str(), (s, e))).collect();
    let mut per_split: std::collections::BTreeMap<Split, Vec<mentor_core::Score>> =
        Default::default();
    for r in &ds.recorded {
        let Some(&(split, ex)) = split_of.get(r.example_id.as_str()) else {
            continue;
        };
        let score = score_prediction(ds.task, ex, &r.text, Default::default());
        let extracted = extract(ds.task, &r.text, ex, Default::default());
        store.add_annotation(&Annotation {
            dataset: ds.name.clone(),
            example_id: ex.id.clone(),
            stage: "recorded".into(),
            kind: "rationale".into(),
            source: format!("recorded:{}", r.source),
            round: 0,
            sample_index: 0,
            call_id: None,
            text: r.text.clone(),
            parsed: Some(json!({ "answer": extracted.answer, "correct": score.correct })),
            parse_ok: score.parsed,
        })?;
        per_split.entry(split).or_default().push(score);
    }
    let mut out = serde_json::Map::new();
    for (split, scores) in per_split {
        let s = ScoreSummary::from_scores(&scores);
        out.insert(
            split.to_string(),
            json!({ "n": s.n, "accuracy": s.accuracy, "unparseable": s.unparseable }),
        );
    }
    Ok(serde_json::Value::Object(out))
}

fn write_summary(run_dir: &Path, summary: &serde_json::Value) -> Result<()> {
    let path = run_dir.join("summary.json");
    let tmp = run_dir.join("summary.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(summary)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
