//! ELAD's rounds, the `elad` recipe's loop inside `mentor distill` (the stages themselves are
//! in `mentor_methods::elad`; every choice is documented there and in ARCHITECTURE.md).
//!
//! Round 0: the seed set (`seed_fraction` of the train pool, its first items in the seeded split
//! order) gets the teacher's chains of thought, and the student trains on them. Each later round:
//! the student scores the items not yet annotated (uncertainty of its own explanations), the top
//! `round_budget` by the configured ranking go to the teacher (a revision of the student's greedy
//! explanation, or a chain of thought from scratch), and the student retrains on everything
//! annotated so far (from the base student, or from the last round's best). After each round the
//! validation accuracy and the cumulative teacher calls and tokens make one point of the curve.
//!
//! Resumable between and inside rounds: each round's selection (every score, and which items
//! were chosen) is in the store's `selections` table before any revision is asked for; teacher
//! calls go through the store; each round trains in its own `student/round-N/`. The run stops
//! at `rounds`, at the teacher budget, when the pool is spent, or after `patience` rounds
//! without a better validation accuracy.

use crate::cmd::annotate::{annotate_jobs, base_spec};
use crate::cmd::train::{stored, train_set, Trained};
use crate::progress::items_bar;
use crate::run::Run;
use anyhow::Result;
use mentor_core::{Example, Split};
use mentor_methods::annotate::{cot_jobs, rationale_parser, AnnotateSpec};
use mentor_methods::elad::{
    revision_jobs, revision_parser, score_pool, select, ScoredItem, Uncertainty,
};
use mentor_methods::recipe::{Retrain, COT_STAGE, ELAD_SELECT_STAGE, REVISE_STAGE};
use mentor_teacher::Teacher;
use serde::Serialize;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// One point of the accuracy-per-teacher-cost curve.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RoundPoint {
    pub round: u32,
    /// Train items with a teacher text (seed CoTs + revisions) after this round.
    pub items_annotated: usize,
    pub selected: usize,
    /// Training pairs of this round's student.
    pub training_pairs: usize,
    pub teacher_calls: u64,
    pub teacher_tokens: u64,
    pub valid_accuracy: Option<f64>,
    pub model: String,
}

/// What the rounds leave: the best round's training (by validation accuracy) and the curve.
pub struct EladOutcome {
    pub best: Trained,
    pub best_round: u32,
    pub points: Vec<RoundPoint>,
    pub stopped: String,
}

/// The seed set: the first `seed_fraction` of the train pool (at least one item).
pub fn seed_items(r: &Run) -> Vec<Example> {
    let pool = r.ds.split(Split::Train);
    let n = (r.cfg.recipe.seed_fraction * pool.len() as f64).ceil() as usize;
    pool[..n.clamp(1, pool.len().max(1)).min(pool.len())].to_vec()
}

fn teacher_cost(r: &Run) -> Result<(u64, u64)> {
    let ledger = r.store.lock().unwrap().ledger()?;
    Ok(ledger.iter().fold((0, 0), |(c, t), l| {
        (
            c + l.calls_ok + l.calls_failed,
            t + l.prompt_tokens + l.completion_tokens,
        )
    }))
}

/// Whether `round` finished before (its point is recorded): a rerun neither asks its teacher
/// again (a call that failed then would change the round's training set) nor retrains it.
pub fn round_done(r: &Run, round: u32) -> Result<bool> {
    Ok(r.store
        .lock()
        .unwrap()
        .meta(&format!("elad-point-{round}"))?
        .is_some())
}

/// Train items with any teacher text (parsed or not: a raw reply was paid for all the same).
fn annotated_ids(r: &Run) -> Result<HashSet<String>> {
    let s = r.store.lock().unwrap();
    let mut ids: HashSet<String> = s
        .annotations(COT_STAGE.0, COT_STAGE.1)?
        .into_iter()
        .map(|a| a.example_id)
        .collect();
    ids.extend(
        s.annotations(REVISE_STAGE.0, REVISE_STAGE.1)?
            .into_iter()
            .map(|a| a.example_id),
    );
    Ok(ids)
}

/// This round's recorded selection, if it was made before (a resumed run): the selected items
/// with the explanation the teacher is to revise.
fn recorded_selection(r: &Run, round: u32) -> Result<Option<Vec<(String, String)>>> {
    let rows = r
        .store
        .lock()
        .unwrap()
        .selections(ELAD_SELECT_STAGE, round)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut chosen: Vec<(u64, String, String)> = rows
        .into_iter()
        .filter(|s| s.selected)
        .map(|s| {
            let v: serde_json::Value = s
                .reason
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default();
            let explanation = v["explanation"].as_str().unwrap_or_default().to_string();
            (
                v["rank"].as_u64().unwrap_or(u64::MAX),
                s.example_id,
                explanation,
            )
        })
        .collect();
    // in the order the ranking chose them (a budget cut keeps the same items)
    chosen.sort();
    Ok(Some(chosen.into_iter().map(|(_, id, e)| (id, e)).collect()))
}

/// Scores `remaining` with `model`, records every score and the selection, returns the selection.
fn select_round(
    r: &Run,
    model: &str,
    round: u32,
    remaining: &[Example],
) -> Result<Vec<(String, String)>> {
    let recipe = &r.cfg.recipe;
    let loaded = crate::models::load_for_inference(model)?;
    let probe = mentor_methods::elad::ProbeConfig {
        seed: recipe.probe.seed + recipe.seed + round as u64 * 1_000_003,
        ..recipe.probe.clone()
    };
    let bar = items_bar(0, &format!("score round {round}"));
    let mut done = 0;
    let scored: Vec<ScoredItem> =
        if recipe.selection == mentor_methods::elad::SelectionStrategy::Random && !recipe.revise {
            // nothing to probe: random order, teacher writes from scratch
            remaining
                .iter()
                .map(|e| ScoredItem {
                    id: e.id.clone(),
                    uncertainty: Uncertainty::default(),
                    explanation: String::new(),
                })
                .collect()
        } else {
            score_pool(
                &loaded.model,
                &loaded.tokenizer,
                r.ds.task,
                remaining,
                &probe,
                &mut |n| {
                    done += n;
                    bar.set_position(done as u64);
                },
            )?
        };
    bar.finish_and_clear();
    let chosen = select(
        &scored,
        recipe.selection,
        recipe.round_budget,
        recipe.seed + round as u64,
    );
    let rank: std::collections::HashMap<&str, usize> = chosen
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    // one transaction: a kill leaves the round's selection whole or absent
    let rows: Vec<mentor_store::Selection> = scored
        .iter()
        .map(|s| mentor_store::Selection {
            example_id: s.id.clone(),
            score: Some(s.uncertainty.score(recipe.selection)),
            selected: rank.contains_key(s.id.as_str()),
            reason: Some(
                json!({
                    "instability": s.uncertainty.instability,
                    "entropy": s.uncertainty.entropy,
                    "least_confidence": s.uncertainty.least_confidence,
                    "strategy": recipe.selection.as_str(),
                    "rank": rank.get(s.id.as_str()),
                    "explanation": s.explanation,
                })
                .to_string(),
            ),
        })
        .collect();
    r.store
        .lock()
        .unwrap()
        .record_selections(ELAD_SELECT_STAGE, round, &r.ds.name, &rows)?;
    let by_id: std::collections::HashMap<&str, &ScoredItem> =
        scored.iter().map(|s| (s.id.as_str(), s)).collect();
    Ok(chosen
        .iter()
        .map(|id| (id.clone(), by_id[id.as_str()].explanation.clone()))
        .collect())
}

/// Round `round`'s student trains on the annotations of rounds 0..=round only, so a resumed run
/// rebuilds each round's set exactly (its checkpoint refuses any other).
fn train_round(r: &Run, round: u32, base: &str) -> Result<Trained> {
    let mut st = stored(r)?;
    st.cots.retain(|a| a.round <= round);
    st.revisions.retain(|a| a.round <= round);
    let set =
        mentor_methods::trainset::build(&r.cfg.recipe, r.ds.task, r.ds.split(Split::Train), &st);
    tracing::info!(
        "elad round {round}: training on {} pairs from {base}",
        set.pairs.len()
    );
    train_set(
        r,
        set,
        base,
        &r.dir.join(format!("student/round-{round}")),
        &format!("elad-round-{round}"),
    )
}

/// Runs round 0 (after the seed set is annotated) and the selection rounds.
pub fn run_rounds(r: &Run, teachers: &[Arc<Teacher>]) -> Result<EladOutcome> {
    let recipe = &r.cfg.recipe;
    let pool = r.ds.split(Split::Train);
    let by_id: std::collections::HashMap<&str, &Example> =
        pool.iter().map(|e| (e.id.as_str(), e)).collect();
    let prompts = r.prompts()?;
    // One student per round, and the curve's points.
    let mut students: Vec<Trained> = vec![];
    let mut points: Vec<RoundPoint> = vec![];
    let mut stopped = format!("{} rounds done", recipe.rounds);
    let mut last_round = false;
    for round in 0..=recipe.rounds {
        let mut selected = 0;
        // A finished round (its point recorded) is neither annotated nor selected again: a
        // call that failed then and succeeded now would change its training set.
        if round > 0 && !round_done(r, round)? {
            let done = annotated_ids(r)?;
            let remaining: Vec<Example> = pool
                .iter()
                .filter(|e| !done.contains(&e.id))
                .cloned()
                .collect();
            let last_model = students.last().unwrap().model_dir.display().to_string();
            let selection = match recorded_selection(r, round)? {
                Some(s) => s,
                None if remaining.is_empty() => {
                    stopped = "the pool is spent".into();
                    break;
                }
                None => select_round(r, &last_model, round, &remaining)?,
            };
            let chosen: Vec<(Example, String)> = selection
                .iter()
                .filter_map(|(id, e)| by_id.get(id.as_str()).map(|x| ((*x).clone(), e.clone())))
                .collect();
            selected = chosen.len();
            let report = ask_teacher(r, teachers, &prompts, round, &chosen)?;
            if report.stopped.as_deref() == Some("interrupted") {
                anyhow::bail!("interrupted in round {round}; rerun the same command to resume");
            }
            let t = report.total();
            if t.done + t.already == 0 {
                // nothing new to learn from (the budget was spent): no retraining
                stopped = report
                    .stopped
                    .unwrap_or_else(|| "the teacher answered nothing".into());
                break;
            }
            if let Some(why) = report.stopped {
                // train on what this round got, then stop
                stopped = why;
                last_round = true;
            }
        }
        let base = match (round, recipe.retrain) {
            (0, _) | (_, Retrain::Restart) => r.cfg.student.model.clone(),
            (_, Retrain::Continue) => students.last().unwrap().model_dir.display().to_string(),
        };
        let trained = train_round(r, round, &base)?;
        if trained.stopped_early {
            anyhow::bail!("training interrupted; rerun the same command to resume");
        }
        let p = point(r, round, selected, &trained)?;
        tracing::info!(
            "elad round {round}: {} items annotated, {} teacher calls, {} tokens, validation accuracy {:?}",
            p.items_annotated,
            p.teacher_calls,
            p.teacher_tokens,
            p.valid_accuracy
        );
        points.push(p);
        students.push(trained);
        if last_round {
            break;
        }
        let best = best_round(&points);
        if recipe.patience > 0 && round - best >= recipe.patience {
            stopped = format!(
                "no better validation accuracy for {} round(s)",
                round - best
            );
            break;
        }
    }
    let best_round = best_round(&points);
    let best = students.swap_remove(best_round as usize);
    Ok(EladOutcome {
        best,
        best_round,
        points,
        stopped,
    })
}

/// The round with the best validation accuracy (the earliest on ties); the last round when
/// none was measured (no validation items).
fn best_round(points: &[RoundPoint]) -> u32 {
    if points.iter().all(|p| p.valid_accuracy.is_none()) {
        return points.last().map_or(0, |p| p.round);
    }
    let mut best = (0, f64::NEG_INFINITY);
    for p in points {
        if let Some(a) = p.valid_accuracy.filter(|&a| a > best.1) {
            best = (p.round, a);
        }
    }
    best.0
}

/// A round's point: what was observed when it ended, kept in the store's meta so that a resumed
/// run reports the same curve, not today's cumulative totals.
fn point(r: &Run, round: u32, selected: usize, t: &Trained) -> Result<RoundPoint> {
    let key = format!("elad-point-{round}");
    if let Some(p) = r.store.lock().unwrap().meta(&key)? {
        return Ok(serde_json::from_str(&p)?);
    }
    let (calls, tokens) = teacher_cost(r)?;
    let p = RoundPoint {
        round,
        items_annotated: annotated_ids(r)?.len(),
        selected,
        training_pairs: t.set.pairs.len(),
        teacher_calls: calls,
        teacher_tokens: tokens,
        valid_accuracy: t.stages.last().and_then(|s| s.report.best_metric),
        model: t.model_dir.display().to_string(),
    };
    r.store
        .lock()
        .unwrap()
        .set_meta(&key, &serde_json::to_string(&p)?)?;
    Ok(p)
}

/// The round's teacher stage: revisions of the chosen explanations, or (the baseline) chains
/// of thought from scratch; resumable like every teacher stage.
fn ask_teacher(
    r: &Run,
    teachers: &[Arc<Teacher>],
    prompts: &mentor_core::prompt::Prompts,
    round: u32,
    chosen: &[(Example, String)],
) -> Result<mentor_methods::annotate::AnnotateReport> {
    let recipe = &r.cfg.recipe;
    let (jobs, (stage, kind), parser, what) = if recipe.revise {
        let jobs = revision_jobs(
            prompts,
            r.ds.task,
            chosen,
            recipe.reveal_gold,
            recipe.probe.max_steps,
        );
        (jobs, REVISE_STAGE, revision_parser(r.ds.task), "revise")
    } else {
        let items: Vec<Example> = chosen.iter().map(|(e, _)| e.clone()).collect();
        let jobs = cot_jobs(prompts, r.ds.task, &items, 1);
        (jobs, COT_STAGE, rationale_parser(r.ds.task), "cots")
    };
    let jobs = jobs.map_err(anyhow::Error::msg)?;
    let spec = AnnotateSpec {
        stage: stage.into(),
        kind: kind.into(),
        round,
        ..base_spec(&r.cfg)
    };
    let name = format!("{what} round {round}");
    annotate_jobs(r, teachers, &name, &jobs, &spec, parser)
}
