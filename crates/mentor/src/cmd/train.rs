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
/// — by accuracy on up to `[eval] valid_limit` validation items, never on test.
///
/// Example: mentor train svamp-sbs.toml --json
#[derive(clap::Args)]
pub struct Args {
    /// The experiment config.
    config: PathBuf,
    /// Where the run lives; default runs/<config name>.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Worker threads for the tensor kernels (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<Summary> {
    crate::models::set_threads(a.threads);
    let r = run::open(&a.config, a.run_dir.clone())?;
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
