//! `mentor train`: the student stage of a config's recipe.

use crate::output::Summary;
use crate::run::{self};
use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;

/// Train the student on the training set a config's recipe builds from the run store.
///
/// Run `mentor annotate CONFIG` first (or `mentor distill CONFIG`, which does both). The
/// student (`[student] model`, full or LoRA) trains with `[train]` settings in
/// RUN/student/stage-N/: `checkpoint/` is written every `save_every` steps and on Ctrl-C, and a
/// rerun resumes from it bit for bit; `best/` (an HF directory) is the validation-selected model
/// — by accuracy on up to `[eval] valid_limit` validation items, never on test. What it trains
/// on is written first to RUN/student/pairs.jsonl (a pair a line: task, stage, weight, prompt,
/// target; ELAD's and MAPD's rounds: RUN/student/round-N/pairs.jsonl).
///
/// --dry-run builds the training set and stops: RUN/student/pairs.jsonl, the pairs per task
/// and the length of their targets (MAPD: and from which teacher), nothing trained.
///
/// Examples: mentor train svamp-sbs.toml --json
///           mentor train mapd.toml --dry-run     # what would the student learn, from whom?
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The experiment config.
    config: PathBuf,
    /// Where the run lives; default runs/<config name>.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Worker threads for the tensor kernels (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    /// Build the training set, write it to RUN/student/pairs.jsonl and print what it holds;
    /// train nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(a: Args) -> Result<Summary> {
    crate::models::set_threads(a.threads);
    let r = run::open(&a.config, a.run_dir.clone())?;
    if a.dry_run {
        return dry_run(&r);
    }
    let t = mentor_pipeline::train::train_student(&r)?;
    let st = &t.set.stats;
    let mut human = format!(
        "trained {} ({}) on {} pairs {:?} in {}\n",
        r.cfg.student.model,
        r.cfg.recipe.name.as_str(),
        t.set.pairs.len(),
        st.pairs,
        r.dir.join("student").display()
    );
    for s in &t.stages {
        human += &format!(
            "stage {}: {} examples, {} steps (resumed from {:?}), train loss {}, best step {:?} ({})\n",
            s.stage,
            s.examples,
            s.report.steps,
            s.report.resumed_from,
            s.report.final_train_loss.map_or("n/a".into(), |l| format!("{l:.4}")),
            s.report.best_step,
            s.report.best_metric.map_or("n/a".into(), |m| format!("{m:.4}"))
        );
    }
    human += &format!("student: {}", t.model_dir.display());
    Ok(Summary {
        human,
        json: json!({ "run_dir": r.dir, "model": t.model_dir, "training_set": st, "stages": t.stages, "stopped_early": t.stopped_early }),
    })
}

/// The training set without the training: written out, counted per task with the median and
/// shortest target lengths (in characters), and MAPD's pairs per teacher.
fn dry_run(r: &run::Run) -> Result<Summary> {
    use mentor_core::Split;
    let set = mentor_pipeline::train::training_set(r, r.ds.split(Split::Train))?;
    let path = mentor_pipeline::train::write_pairs(&r.dir.join("student"), &set)?;
    let mut per_task: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for p in &set.pairs {
        per_task
            .entry(p.task.as_str())
            .or_default()
            .push(p.target.chars().count());
    }
    let mut human = format!(
        "{} pairs for recipe {} (nothing trained), written to {}\n",
        set.pairs.len(),
        r.cfg.recipe.name.as_str(),
        path.display()
    );
    let mut tasks = serde_json::Map::new();
    for (task, lens) in per_task {
        let (n, shortest) = (lens.len(), lens.iter().min().copied().unwrap_or(0));
        let median = mentor_pipeline::compare::median_chars(lens).unwrap_or(0);
        human +=
            &format!("  {task}: {n} pairs, target chars median {median}, shortest {shortest}\n");
        tasks.insert(
            task.to_string(),
            json!({ "pairs": n, "target_chars_median": median, "target_chars_min": shortest }),
        );
    }
    if let Some(rv) = &set.stats.review {
        for (teacher, t) in &rv.per_teacher {
            human += &format!(
                "  from {teacher}: {} rationale pairs ({} of its {} rationales accepted), {} feedback pairs\n",
                t.rationale_pairs, t.accepted, t.rationales, t.feedback_pairs
            );
        }
    }
    Ok(Summary {
        human: human.trim_end().to_string(),
        json: json!({ "run_dir": r.dir, "pairs_file": path, "tasks": tasks, "training_set": set.stats }),
    })
}
