//! `mentor ledger`: what a run's teachers cost.

use crate::output::Summary;
use anyhow::{bail, Result};
use mentor_store::{Store, STORE_FILE};
use serde_json::json;
use std::path::PathBuf;

/// Teacher calls, tokens and cost per teacher, from a run's store.
///
/// Example: mentor ledger runs/svamp-sbs --json
#[derive(clap::Args)]
pub struct Args {
    /// The run directory (holding mentor.sqlite).
    run: PathBuf,
}

pub fn run(a: Args) -> Result<Summary> {
    if !a.run.join(STORE_FILE).is_file() {
        bail!(
            "{} has no run store ({STORE_FILE}); is it a run directory?",
            a.run.display()
        );
    }
    let store = Store::open_run_dir(&a.run)?;
    let rows = store.ledger()?;
    let mut human = format!(
        "{:<16} {:>8} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10}\n",
        "teacher", "ok", "cut", "failed", "prompt tok", "output tok", "cost $", "mean ms"
    );
    let (mut calls, mut tokens, mut cost) = (0, 0, 0.0);
    for r in &rows {
        human += &format!(
            "{:<16} {:>8} {:>8} {:>8} {:>12} {:>12} {:>10.4} {:>10.0}\n",
            r.teacher,
            r.calls_ok,
            r.calls_truncated,
            r.calls_failed,
            r.prompt_tokens,
            r.completion_tokens,
            r.cost_usd,
            r.mean_latency_ms
        );
        calls += r.calls_ok + r.calls_failed;
        tokens += r.prompt_tokens + r.completion_tokens;
        cost += r.cost_usd;
    }
    let (n_batch, usd_batch) = rows.iter().fold((0, 0.0), |(n, u), r| {
        (n + r.calls_batch, u + r.cost_usd_batch)
    });
    let mut saving = None;
    if n_batch > 0 {
        let online = usd_batch / mentor_teacher::prices::BATCH_DISCOUNT;
        saving = Some(online - usd_batch);
        human += &format!(
            "{n_batch} of the answered calls came through a batch API for ${usd_batch:.4}; online they \
             would have cost about ${online:.4} (batches bill at half price), a saving of ${:.4}\n",
            online - usd_batch
        );
    }
    if rows.is_empty() {
        human = "no teacher calls recorded in this run\n".into();
    }
    Ok(Summary {
        human,
        json: json!({ "teachers": rows, "total": { "calls": calls, "tokens": tokens, "cost_usd": cost,
                   "calls_batch": n_batch, "cost_usd_batch": usd_batch, "batch_saving_usd": saving } }),
    })
}
