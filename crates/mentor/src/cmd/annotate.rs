//! `mentor annotate`: the teacher stage of a config's recipe.

use crate::output::Summary;
use crate::{run, teachers};
use anyhow::{bail, Result};
use mentor_core::Split;
use mentor_methods::annotate::{cot_jobs, AnnotateReport, AnnotateSpec};
use mentor_methods::recipe::COT_STAGE;
use mentor_methods::recipes::RecipeExt;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Run the teacher stages of a config's recipe: every configured teacher writes chains of thought
/// for the items (K per item for minds-mirror, then M self-evaluations of each distinct one),
/// parsed and stored with provenance. Unparseable replies are kept raw and counted.
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
    /// Ask again for the replies that were cut at the token limit (raise `[teachers.NAME]
    /// max_tokens` first: with the same limit the same request is answered from the cache).
    /// The rest of the run's annotations are kept; the cut calls stay in the ledger.
    #[arg(long)]
    retry_truncated: bool,
    /// Send the requests through the provider's batch API (as `[teachers.NAME] batch = true`
    /// for every OpenAI and Anthropic teacher): about half the price, answered within 24 hours. Stop and
    /// rerun at will: the run re-attaches to its batches and submits nothing twice.
    #[arg(long)]
    batch: bool,
}

pub fn run(a: Args) -> Result<Summary> {
    let mut r = run::open(&a.config, a.run_dir.clone())?;
    if a.batch {
        use mentor_pipeline::config::TeacherKind;
        let http: Vec<_> = r
            .cfg
            .teachers
            .values_mut()
            .filter(|t| matches!(t.kind, TeacherKind::Openai | TeacherKind::Anthropic))
            .collect();
        if http.is_empty() {
            bail!("--batch: the config has no OpenAI or Anthropic teacher to batch");
        }
        for t in http {
            t.batch = true;
        }
    }
    let mut items = r.ds.split(a.split).to_vec();
    if r.cfg.recipe.name == mentor_methods::recipe::RecipeName::Elad && a.split == Split::Train {
        // the rest of the pool is the rounds' to choose (`mentor distill`), under the budget
        items = mentor_pipeline::elad::seed_items(&r);
        tracing::info!(
            "recipe elad: annotating its seed set ({} items); `mentor distill` runs the rounds",
            items.len()
        );
    }
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
    if r.cfg.recipe.teacher_stages().is_empty() {
        bail!(
            "recipe `{}` asks the teachers nothing (label_source = \"gold\"); nothing to annotate",
            r.cfg.recipe.name.as_str()
        );
    }
    if a.retry_truncated {
        let n = r.store.lock().unwrap().forget_truncated_annotations()?;
        tracing::info!("--retry-truncated: {n} replies cut at the token limit will be asked again");
        if n > 0 && r.dir.join("student").exists() {
            tracing::warn!(
                "the training set changes: remove {} (or train in a new run directory) before training again",
                r.dir.join("student").display()
            );
        }
    }
    let budget = teachers::budget(&r.cfg, &r.store)?;
    let teachers = teachers::build(&r.cfg, &r.ds, &r.store, &budget)?;
    if a.dry_run {
        return dry_run(&r, &teachers, &items);
    }
    let stages = mentor_pipeline::annotate::annotate_items(&r, &teachers, &items)?;
    summarise(&r, &stages, items.len())
}

fn summarise(r: &run::Run, stages: &[(String, AnnotateReport)], n_items: usize) -> Result<Summary> {
    let ledger = r.store.lock().unwrap().ledger()?;
    let mut human = format!(
        "annotated {} items of `{}` for recipe {} in {}\n",
        n_items,
        r.ds.name,
        r.cfg.recipe.name.as_str(),
        r.dir.display()
    );
    let mut stage_json = serde_json::Map::new();
    for (stage, report) in stages {
        human += &format!(
            "{stage}:\n  {:<14} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>12} {:>8}\n",
            "teacher", "done", "cached", "failed", "unsent", "unparsed", "cut", "gold-correct", "$"
        );
        let mut per_teacher = serde_json::Map::new();
        for (name, x) in &report.teachers {
            human += &format!(
                "  {:<14} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>12} {:>8.4}\n",
                name,
                x.done + x.already,
                x.cached,
                x.failed,
                x.not_sent,
                x.unparseable,
                x.truncated,
                x.correct,
                x.cost_usd
            );
            per_teacher.insert(name.clone(), serde_json::to_value(x)?);
        }
        for (name, x) in &report.teachers {
            if x.batch_requested + x.batch_reattached > 0 {
                human += &format!(
                    "  {name} via batch API: {} requested, {} re-attached, {} returned, {} failed ({} resubmitted in a new batch, the rest asked online)\n",
                    x.batch_requested, x.batch_reattached, x.batch_returned, x.batch_failed, x.batch_resubmitted
                );
            }
        }
        if let Some(why) = &report.stopped {
            human += &format!("  stopped early: {why}; rerun to continue\n");
        }
        for f in &report.failures {
            human += &format!("  failure: {f}\n");
        }
        let notes = mentor_pipeline::annotate::truncation_notes(&r.cfg, r.ds.task, stage, report);
        for n in &notes {
            human += &format!("  warning: {n}\n");
        }
        stage_json.insert(
            stage.clone(),
            json!({ "teachers": per_teacher, "total": report.total(), "stopped": report.stopped, "failures": report.failures, "warnings": notes }),
        );
    }
    // What the store holds for the recipe (all runs so far), as training will see it.
    let set = mentor_pipeline::train::training_set(r, r.ds.split(Split::Train))?;
    let st = &set.stats;
    if st.review.is_none() {
        human += &format!(
            "store: {} chains of thought, {} unparseable (kept raw), {} wrong, {} duplicates; {} kept for training",
            st.cots, st.cots_unparseable, st.cots_wrong, st.cots_duplicate, st.cots_kept
        );
    }
    if st.self_evals > 0 {
        human += &format!(
            "\nself-evaluations: {} ({} unparseable, kept raw); verdicts {:?}; agreement with gold {}",
            st.self_evals,
            st.self_evals_unparseable,
            st.verdicts,
            st.verdict_agreement.map_or("n/a".into(), |a| format!("{:.1}%", 100.0 * a))
        );
    }
    if let Some(rv) = &st.review {
        human += &format!(
            "\npeer review: {} mistakes, {} with an accepted rationale; {} reviews ({} invalid, kept raw); reviewer agreement {}",
            rv.mistakes,
            rv.mistakes_with_accepted,
            rv.reviews,
            rv.reviews_invalid,
            rv.reviewer_agreement.map_or("n/a".into(), |a| format!("{:.1}%", 100.0 * a))
        );
        for (t, x) in &rv.per_teacher {
            human += &format!(
                "\n  {t:<12} rationales {:>4}  accepted {:>4} ({:.1}%)  accepted & gold-correct {:>4}  rejected & gold-correct {:>4}  feedback {:>4}",
                x.rationales, x.accepted, 100.0 * x.acceptance_rate, x.accepted_correct, x.rejected_correct, x.feedback
            );
        }
    }
    let first = stages.first().map(|(_, r)| r.total()).unwrap_or_default();
    // Every chain of thought in the store, whichever split it was asked for.
    let (n_ann, n_correct, n_unparsed) = {
        let store = r.store.lock().unwrap();
        let anns = store.annotations(COT_STAGE.0, COT_STAGE.1)?;
        let correct = anns
            .iter()
            .filter(|a| a.parsed.as_ref().and_then(|p| p["correct"].as_bool()) == Some(true))
            .count();
        (
            anns.len(),
            correct,
            anns.iter().filter(|a| !a.parse_ok).count(),
        )
    };
    Ok(Summary {
        human,
        json: json!({
            "run_dir": r.dir, "dataset": r.ds.name, "recipe": r.cfg.recipe.name.as_str(), "items": n_items,
            "stages": stage_json,
            // The first stage (chains of thought), and why any stage stopped or failed.
            "total": first,
            "stopped": stages.iter().find_map(|(_, r)| r.stopped.clone()),
            "failures": stages.iter().flat_map(|(_, r)| r.failures.clone()).collect::<Vec<_>>(),
            "training_set": st,
            "accepted": st.review.as_ref().map(|rv| rv.per_teacher.iter().map(|(t, x)| (t.clone(), x.accepted)).collect::<std::collections::BTreeMap<_, _>>()),
            "mistakes_with_accepted": st.review.as_ref().map(|rv| rv.mistakes_with_accepted),
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
) -> Result<Summary> {
    use mentor_methods::recipe::TeacherStage;
    let prompts = r.prompts()?;
    let base = mentor_pipeline::annotate::base_spec(&r.cfg);
    let stages = r.cfg.recipe.teacher_stages();
    let cot_samples = match stages.first() {
        Some(TeacherStage::Cots { samples }) => *samples,
        _ => 1,
    };
    let spec = AnnotateSpec {
        samples: cot_samples,
        ..base.clone()
    };
    let jobs = cot_jobs(&prompts, r.ds.task, items, cot_samples).map_err(anyhow::Error::msg)?;
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
    let (mut total_usd, mut total_batch) = (0.0, 0.0);
    let mut unknown = vec![];
    for t in teachers {
        let (mut calls, mut cached, mut p_tok, mut c_tok, mut usd) = (0u64, 0u64, 0u64, 0u64, 0.0);
        for job in &jobs {
            if done.contains(&(t.name().to_string(), job.example.id.clone(), job.sample)) {
                continue;
            }
            let req = mentor_methods::annotate::teacher_request(t, job, &r.ds.name, &spec);
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
        // Self-evaluations: one per (CoT, m), each prompt carrying its CoT (≤ max_tokens); those
        // this teacher already answered (a resumed run) are not sent again.
        if let Some(TeacherStage::SelfEvals { per_cot }) = stages.get(1) {
            let (stage, kind) = mentor_methods::recipe::SELF_EVAL_STAGE;
            let judged = r
                .store
                .lock()
                .unwrap()
                .annotations(stage, kind)?
                .into_iter()
                .filter(|a| a.source == t.name())
                .count() as u64;
            let n = (jobs.len() as u64 * *per_cot as u64).saturating_sub(judged);
            let (p, c) = (
                n * (p_tok / calls.max(1) + base.max_tokens as u64),
                n * base.max_tokens as u64,
            );
            let scale = if p_tok + c_tok > 0 {
                usd / (p_tok + c_tok) as f64
            } else {
                0.0
            };
            calls += n;
            p_tok += p;
            c_tok += c;
            usd += scale * (p + c) as f64;
        }
        let batch_usd = t.opts.pricing.batch_cost(p_tok, c_tok);
        human += &format!(
            "{:<14} {calls} calls to send ({cached} cached), ~{p_tok} prompt + ≤{c_tok} completion tokens, ",
            t.name()
        );
        if t.opts.price_known {
            total_usd += usd;
            total_batch += batch_usd;
            human += &format!("≤ ${usd:.4} online, ≤ ${batch_usd:.4} through the batch API\n");
        } else {
            unknown.push(t.name().to_string());
            human += "cost unknown (no price for this model: set price_in_per_mtok / price_out_per_mtok)\n";
        }
        let known = |x: f64| {
            if t.opts.price_known {
                json!(x)
            } else {
                json!(null)
            }
        };
        rows.insert(t.name().into(), json!({ "calls": calls, "cached": cached, "prompt_tokens": p_tok, "max_completion_tokens": c_tok,
                                              "max_cost_usd": known(usd), "max_batch_cost_usd": known(batch_usd) }));
    }
    human += &format!("total ≤ ${total_usd:.4} online, ≤ ${total_batch:.4} batch (completion tokens at max_tokens; prompt tokens at 4 characters a token)");
    if !unknown.is_empty() {
        human += &format!(", plus the unknown cost of {}", unknown.join(", "));
    }
    Ok(Summary {
        human,
        json: json!({ "dry_run": true, "teachers": rows, "max_cost_usd": total_usd, "max_batch_cost_usd": total_batch,
                      "prices_as_of": mentor_teacher::prices::PRICES_AS_OF, "cost_unknown": unknown }),
    })
}
