//! `mentor compare`: paired statistics between runs scored on the same test questions.

use crate::output::Summary;
use anyhow::{bail, Context, Result};
use mentor_report::compare::{compare, Comparison, RunScores};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Compare students scored on the same test questions, with paired statistics
///
/// Each RUN is a run directory that `mentor distill` finished (it reads RUN/summary.json and the
/// per-question test predictions it names). Runs must have been scored on the same questions,
/// dataset and inference mode; anything else is refused with the difference named.
///
/// Per run: accuracy and its 95% Wilson interval [lo, hi]. Runs are grouped into variants (the
/// variant a `mentor sweep` cell belongs to, a config key with --group-by, else each run is its
/// own); per variant over seeds: mean ± sd. Per pair of variants, runs paired by seed: the 2×2
/// table (both right / only A / only B / both wrong) and McNemar's exact p per seed, and the
/// mean paired difference B − A with two 95% intervals: a paired bootstrap over questions
/// (one resample of question indices applied to every seed; seeded, --resamples) and a
/// t-interval over the seeds' differences.
///
/// Examples: mentor compare runs/standard runs/sbs
///           mentor compare runs/row1/* --baseline standard-gold --markdown
///           mentor compare runs/a-s0 runs/a-s1 runs/b-s0 runs/b-s1 --group-by recipe.name --json
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run directories (at least two).
    #[arg(required = true, num_args = 2..)]
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
}

pub fn run(a: Args) -> Result<Summary> {
    let c = compare_runs(
        &a.runs,
        a.group_by.as_deref(),
        a.baseline.as_deref(),
        a.resamples,
        a.bootstrap_seed,
    )?;
    Ok(Summary {
        human: c.render(a.markdown),
        json: serde_json::to_value(&c)?,
    })
}

/// What one finished run says about itself, for comparing.
struct Scored {
    scores: RunScores,
    dataset: String,
    mode: String,
}

/// Loads and compares `runs` (run directories).
pub fn compare_runs(
    runs: &[PathBuf],
    group_by: Option<&str>,
    baseline: Option<&str>,
    resamples: usize,
    bootstrap_seed: u64,
) -> Result<Comparison> {
    if runs.len() < 2 {
        bail!("give at least two runs to compare");
    }
    let scored: Vec<Scored> = runs
        .iter()
        .map(|r| load_run(r, group_by))
        .collect::<Result<_>>()?;
    let first = &scored[0];
    for s in &scored[1..] {
        if s.dataset != first.dataset {
            bail!(
                "run {} was scored on dataset `{}`, {} on `{}`: compare runs of one dataset",
                s.scores.name,
                s.dataset,
                first.scores.name,
                first.dataset
            );
        }
        if s.mode != first.mode {
            bail!(
                "run {} was scored in inference mode `{}`, {} in `{}`: compare runs scored in one mode",
                s.scores.name,
                s.mode,
                first.scores.name,
                first.mode
            );
        }
    }
    let scores: Vec<RunScores> = scored.into_iter().map(|s| s.scores).collect();
    Ok(compare(&scores, baseline, resamples, bootstrap_seed)?)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: is it a run that `mentor distill` finished?",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// The value at a dotted key of a JSON object, as text.
fn dotted(v: &Value, key: &str) -> Option<String> {
    let mut cur = v;
    for part in key.split('.') {
        cur = cur.get(part)?;
    }
    Some(match cur {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn load_run(dir: &Path, group_by: Option<&str>) -> Result<Scored> {
    let summary = read_json(&dir.join("summary.json"))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string());
    let config = summary.get("config").cloned().unwrap_or(Value::Null);
    let variant = match group_by {
        Some(key) => dotted(&config, key).with_context(|| {
            format!(
                "{}: its config has no key `{key}` to group by (runs from before configs were kept in summary.json cannot be grouped by key)",
                dir.display()
            )
        })?,
        None => read_json(&dir.join(crate::cmd::sweep::CELL_FILE))
            .ok()
            .and_then(|c| c["variant"].as_str().map(String::from))
            .unwrap_or_else(|| name.clone()),
    };
    let seed = summary["seed"]
        .as_u64()
        .or_else(|| config["train"]["seed"].as_u64());
    let preds = summary["predictions"]
        .as_str()
        .map(PathBuf::from)
        .with_context(|| format!("{}/summary.json names no predictions file", dir.display()))?;
    // the summary's path is as the run saw it (maybe relative to another directory)
    let preds = if preds.exists() {
        preds
    } else {
        dir.join("eval").join(preds.file_name().unwrap_or_default())
    };
    let text = std::fs::read_to_string(&preds)
        .with_context(|| format!("cannot read the predictions {}", preds.display()))?;
    let (mut ids, mut correct) = (vec![], vec![]);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not valid JSON", preds.display(), i + 1))?;
        let (Some(id), Some(ok)) = (v["id"].as_str(), v["correct"].as_bool()) else {
            bail!("{}:{}: no `id` or `correct`", preds.display(), i + 1);
        };
        ids.push(id.to_string());
        correct.push(ok);
    }
    let valid_accuracy = summary["training"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|s| s["best_valid_metric"].as_f64());
    Ok(Scored {
        scores: RunScores {
            name,
            variant,
            seed,
            ids,
            correct,
            valid_accuracy,
        },
        dataset: summary["dataset"].as_str().unwrap_or("?").to_string(),
        mode: summary["eval_mode"].as_str().unwrap_or("?").to_string(),
    })
}
