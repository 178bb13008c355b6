//! `mentor annotate`: the teacher stage of a config's recipe.

use crate::config::RecipeName;
use crate::output::Summary;
use crate::progress::items_bar;
use crate::{run, teachers};
use anyhow::{bail, Result};
use mentor_core::prompt::Prompts;
use mentor_core::Split;
use mentor_methods::annotate::{annotate, request_for, AnnotateReport, AnnotateSpec};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Run the teacher stage of a config's recipe: every configured teacher writes chains of thought
/// for the items (K per item for minds-mirror), parsed and stored with provenance.
///
/// Safe to Ctrl-C or kill at any point: every reply is in the run store's ledger before it is
/// parsed, and a rerun resumes where it stopped without paying for any call twice (first Ctrl-C
/// finishes the calls in flight; a second one quits at once). The [budget] table caps calls,
/// tokens and dollars for the whole run, across reruns.
///
/// Example: mentor annotate exp.toml --dry-run && mentor annotate exp.toml --json
#[derive(clap::Args)]
pub struct Args {
    /// The experiment config.
    config: PathBuf,
    /// Where the run lives; default runs/<config name>.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Estimate what the run would send and cost, from token counts; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Which split to annotate.
    #[arg(long, default_value = "train")]
    split: Split,
    /// Annotate at most this many items of the split.
    #[arg(long)]
    limit: Option<usize>,
}

/// The annotation spec a recipe implies.
pub fn spec_for(cfg: &crate::config::Config) -> AnnotateSpec {
    let samples = if cfg.recipe.name == RecipeName::MindsMirror {
        cfg.recipe.cots_per_question as u32
    } else {
        1
    };
    let temperature = cfg
        .teachers
        .values()
        .find_map(|t| t.temperature)
        .or(if samples > 1 { Some(0.7) } else { None });
    let max_tokens = cfg
        .teachers
        .values()
        .find_map(|t| t.max_tokens)
        .unwrap_or(512);
    AnnotateSpec {
        samples,
        temperature,
        max_tokens,
        seed: cfg.train.seed,
        ..AnnotateSpec::default()
    }
}

pub fn run(a: Args) -> Result<Summary> {
    let r = run::open(&a.config, a.run_dir.clone())?;
    let mut items = r.ds.split(a.split).to_vec();
    if let Some(n) = a.limit {
        items.truncate(n);
    }
    if items.is_empty() {
        bail!(
            "the {} split of `{}` is empty: nothing to annotate",
            a.split,
            r.ds.name
        );
    }
    let budget = teachers::budget(&r.cfg, &r.store)?;
    let teachers = teachers::build(&r.cfg, &r.ds, &r.store, &budget)?;
    let spec = spec_for(&r.cfg);
    let prompts = Prompts::default();

    if a.dry_run {
        return dry_run(&r, &teachers, &items, &prompts, &spec);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let report = rt.block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: finishing the calls in flight (Ctrl-C again to quit now); rerun to resume");
                s.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let total = (items.len() * teachers.len()) as u64 * spec.samples as u64;
        let bar = items_bar(total, "annotate");
        let result = annotate(r.store.clone(), &teachers, &r.ds.name, r.ds.task, &items, &prompts, &spec, stop.clone(), |rep: &AnnotateReport| {
            let t = rep.total();
            bar.set_position(t.already + t.done + t.failed + t.not_sent);
            bar.set_message(format!("done {} cached {} failed {} ${:.4}", t.done + t.already, t.cached, t.failed, t.cost_usd));
        })
        .await;
        bar.finish_and_clear();
        result
    })?;
    summarise(&r, &report, items.len(), &spec)
}

fn summarise(
    r: &run::Run,
    report: &AnnotateReport,
    n_items: usize,
    spec: &AnnotateSpec,
) -> Result<Summary> {
    let t = report.total();
    let ledger = r.store.lock().unwrap().ledger()?;
    let mut human = format!(
        "annotated {} items × {} sample(s) with {} teacher(s) in {}\n",
        n_items,
        spec.samples,
        report.teachers.len(),
        r.dir.display()
    );
    human += &format!(
        "{:<14} {:>7} {:>7} {:>7} {:>7} {:>9} {:>12} {:>8}\n",
        "teacher", "done", "cached", "failed", "unsent", "unparsed", "gold-correct", "$"
    );
    let mut per_teacher = serde_json::Map::new();
    for (name, x) in &report.teachers {
        let answered = x.done + x.already;
        human += &format!(
            "{:<14} {:>7} {:>7} {:>7} {:>7} {:>9} {:>12} {:>8.4}\n",
            name, answered, x.cached, x.failed, x.not_sent, x.unparseable, x.correct, x.cost_usd
        );
        per_teacher.insert(name.clone(), serde_json::to_value(x)?);
    }
    if let Some(why) = &report.stopped {
        human += &format!("stopped early: {why}; rerun to continue\n");
    }
    for f in &report.failures {
        human += &format!("failure: {f}\n");
    }
    // gold-correct counts only this run's new annotations; the store holds all of them.
    let (n_ann, n_correct, n_unparsed) = {
        let store = r.store.lock().unwrap();
        let anns = store.annotations(&spec.stage, &spec.kind)?;
        let correct = anns
            .iter()
            .filter(|a| a.parsed.as_ref().and_then(|p| p["correct"].as_bool()) == Some(true))
            .count();
        let unparsed = anns.iter().filter(|a| !a.parse_ok).count();
        (anns.len(), correct, unparsed)
    };
    human += &format!(
        "store: {n_ann} rationales, {n_correct} match gold ({:.1}%), {n_unparsed} unparseable (kept raw)",
        if n_ann > 0 { 100.0 * n_correct as f64 / n_ann as f64 } else { 0.0 }
    );
    Ok(Summary {
        human,
        json: json!({
            "run_dir": r.dir, "dataset": r.ds.name, "items": n_items, "samples": spec.samples,
            "teachers": per_teacher, "stopped": report.stopped, "failures": report.failures,
            "total": t,
            "annotations": { "rationales": n_ann, "gold_correct": n_correct, "unparseable": n_unparsed,
                             "gold_accuracy": if n_ann > 0 { n_correct as f64 / n_ann as f64 } else { 0.0 } },
            "ledger": ledger,
        }),
    })
}

fn dry_run(
    r: &run::Run,
    teachers: &[Arc<mentor_teacher::Teacher>],
    items: &[mentor_core::Example],
    prompts: &Prompts,
    spec: &AnnotateSpec,
) -> Result<Summary> {
    let done: std::collections::HashSet<(String, String, u32)> = r
        .store
        .lock()
        .unwrap()
        .annotations(&spec.stage, &spec.kind)?
        .into_iter()
        .map(|a| (a.source, a.example_id, a.sample_index))
        .collect();
    let mut human = String::from("dry run: nothing sent\n");
    let mut rows = serde_json::Map::new();
    let mut total_usd = 0.0;
    for t in teachers {
        let (mut calls, mut cached, mut p_tok, mut c_tok, mut usd) = (0u64, 0u64, 0u64, 0u64, 0.0);
        for ex in items {
            for s in 0..spec.samples {
                if done.contains(&(t.name().to_string(), ex.id.clone(), s)) {
                    continue;
                }
                let req = request_for(
                    prompts,
                    r.ds.task,
                    &r.ds.name,
                    ex,
                    spec,
                    s,
                    t.backend().capabilities().seed,
                )
                .map_err(anyhow::Error::msg)?;
                let req = t.configure(req);
                if t.cached(&req)?.is_some() {
                    cached += 1;
                    continue;
                }
                let (p, c, d) = t.estimate(&req);
                calls += 1;
                p_tok += p;
                c_tok += c;
                usd += d;
            }
        }
        total_usd += usd;
        human += &format!("{:<14} {calls} calls to send ({cached} cached), ~{p_tok} prompt + ≤{c_tok} completion tokens, ≤ ${usd:.4}\n", t.name());
        rows.insert(t.name().into(), json!({ "calls": calls, "cached": cached, "prompt_tokens": p_tok, "max_completion_tokens": c_tok, "max_cost_usd": usd }));
    }
    human += &format!("total ≤ ${total_usd:.4} (completion tokens at max_tokens; prompt tokens at 4 characters a token)");
    Ok(Summary {
        human,
        json: json!({ "dry_run": true, "teachers": rows, "max_cost_usd": total_usd }),
    })
}
