//! `mentor compare`: paired statistics between runs scored on the same test questions.

use crate::output::Summary;
use anyhow::Result;
use std::path::PathBuf;

/// Compare students scored on the same test questions, with paired statistics
///
/// Each RUN is a run directory that `mentor distill` finished (it reads RUN/summary.json and the
/// per-question test predictions it names), or a predictions file (RUN/eval/*.jsonl, e.g. the
/// untrained student's from `mentor eval CONFIG --model NAME --run-dir RUN`): it is named after
/// its run directory and has no seed, so it pairs with every seed of the other variant; a
/// validation's answers (RUN/student/stage-N/valid/step-K.jsonl) compare two checkpoints. Runs
/// must have been scored on the same questions, dataset and inference mode; anything else is
/// refused with the difference named. With --across-modes, variants scored in different modes
/// (a CoT student in `cot`, a label student in `label`) are compared on which questions each
/// answers right; the table then shows each run's mode.
///
/// Per run: accuracy and its 95% Wilson interval [lo, hi], the median length of its answers
/// in characters (a student that stopped reasoning answers in a sentence), and what it cost
/// where known; then, where runs kept their training logs, validation accuracy at each
/// validated step with the checkpoint kept marked (on a few dozen questions, often a draw);
/// where runs were taught by a teacher, the teacher's side: its chains of thought that reach
/// gold, and its self-evaluation verdicts' agreement with gold and Cohen's κ (0 is chance);
/// in `--mode self-eval-vote`, the student's own verdicts on its samples against whether each
/// sample is right (a student that judges at chance can only repeat `vote`).
/// Runs are grouped into variants (the variant a `mentor sweep` cell belongs to, a config key
/// with --group-by, else each run is its own); per variant over seeds: mean ± sd. Per pair of
/// variants, runs paired by seed: the 2×2 table (both right / only A / only B / both wrong)
/// and McNemar's exact p per seed, and the
/// mean paired difference B − A with two 95% intervals: a paired bootstrap over questions
/// (one resample of question indices applied to every seed; seeded, --resamples) and a
/// t-interval over the seeds' differences; then a verdict: B beats / ties / loses to A as the
/// bootstrap interval lies above zero / holds it / lies below, "p < 0.05 in every seed"
/// where McNemar's test separates them in each seed on its own in that direction, else "p <
/// 0.05 in k of n seeds" (and whether the t-interval over seeds holds 0: one seed can carry a
/// pooled interval), and "seeds disagree" where one seed's B is significantly better and
/// another's significantly worse (the pooled interval then averages opposite results: read the
/// seeds, not the verdict).
///
/// Examples: mentor compare runs/standard runs/sbs
///           mentor compare runs/row1/* --baseline standard-gold --markdown
///           mentor compare runs/row3/*-s* --mode vote
///           mentor compare runs/row3/*-s* --mode cot,vote --baseline @cot   # does voting help?
///           mentor compare runs/untrained/eval/smollm2-135m.test.cot.jsonl runs/row2/*-s*
///           mentor compare runs/a/student/stage-0/valid/step-{20,40}.jsonl   # two checkpoints
///           mentor compare runs/a-s0 runs/a-s1 runs/b-s0 runs/b-s1 --group-by recipe.name --json
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run directories or predictions files (at least two, or one with two modes).
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Group runs into variants by this config key (dotted, e.g. recipe.name or recipe.alpha).
    #[arg(long)]
    group_by: Option<String>,
    /// Compare every variant with this one only (default: every pair of variants).
    #[arg(long)]
    baseline: Option<String>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 10_000)]
    resamples: usize,
    /// Seed of the bootstrap's resampling.
    #[arg(long, default_value_t = 0)]
    bootstrap_seed: u64,
    /// Print Markdown tables (for EXPERIMENTS.md) instead of plain ones.
    #[arg(long)]
    markdown: bool,
    /// Allow variants scored in different inference modes (the seeds of one variant still share
    /// theirs).
    #[arg(long)]
    across_modes: bool,
    /// Read every run's test predictions in this inference mode (label, cot, vote,
    /// self-eval-vote) instead of the one it was scored in: what `mentor eval RUN/config.toml
    /// --run-dir RUN --split test --mode M` (or a sweep's `eval_modes`) wrote beside it. Several,
    /// comma-separated (`--mode cot,vote`): each run once per mode, as variants VARIANT@MODE
    /// compared across modes; `--baseline @cot` then pairs each variant's modes with its `cot`.
    #[arg(long, value_delimiter = ',')]
    mode: Vec<String>,
}

pub fn run(a: Args) -> Result<Summary> {
    let c = mentor_pipeline::compare::compare_runs(
        &a.runs,
        a.group_by.as_deref(),
        a.baseline.as_deref(),
        a.resamples,
        a.bootstrap_seed,
        a.across_modes,
        &a.mode,
    )?;
    Ok(Summary {
        human: c.render(a.markdown),
        json: serde_json::to_value(&c)?,
    })
}
