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
    Ok(Some(
        rows.into_iter()
            .filter(|s| s.selected)
            .map(|s| {
                let explanation = s
                    .reason
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                    .and_then(|v| v["explanation"].as_str().map(String::from))
                    .unwrap_or_default();
                (s.example_id, explanation)
            })
            .collect(),
    ))
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
        seed: recipe.seed + round as u64 * 1_000_003,
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
    let chosen_set: HashSet<&str> = chosen.iter().map(String::as_str).collect();
    let mut store = r.store.lock().unwrap();
    for s in &scored {
        let reason = json!({
            "instability": s.uncertainty.instability,
            "entropy": s.uncertainty.entropy,
            "least_confidence": s.uncertainty.least_confidence,
            "strategy": recipe.selection.as_str(),
            "explanation": s.explanation,
        });
        store.record_selection(
            ELAD_SELECT_STAGE,
            round,
            &r.ds.name,
            &s.id,
            Some(s.uncertainty.score(recipe.selection)),
            chosen_set.contains(s.id.as_str()),
            Some(&reason.to_string()),
        )?;
    }
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
    let mut points = vec![];
    // A point is what was observed when its round ended, kept in the store's meta: a resumed
    // run reports the same curve, not today's cumulative totals.
    let point = |round, selected, t: &Trained| -> Result<RoundPoint> {
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
    };
    let first = train_round(r, 0, &r.cfg.student.model)?;
    if first.stopped_early {
        anyhow::bail!("training interrupted; rerun the same command to resume");
    }
    points.push(point(0, 0, &first)?);
    let mut best = (first, 0u32);
    let mut last_model = best.0.model_dir.display().to_string();
    let mut since_best = 0;
    let mut stopped = format!("{} rounds done", recipe.rounds);
    let prompts = r.cfg.prompts()?;
    for round in 1..=recipe.rounds {
        let done = annotated_ids(r)?;
        let remaining: Vec<Example> = pool
            .iter()
            .filter(|e| !done.contains(&e.id))
            .cloned()
            .collect();
        let selection = match recorded_selection(r, round)? {
            Some(s) => s,
            None if remaining.is_empty() => {
                stopped = "the pool is spent".into();
                break;
            }
            None => select_round(r, &last_model, round, &remaining)?,
        };
        let by_id: std::collections::HashMap<&str, &Example> =
            pool.iter().map(|e| (e.id.as_str(), e)).collect();
        let selected: Vec<(Example, String)> = selection
            .iter()
            .filter_map(|(id, expl)| by_id.get(id.as_str()).map(|e| ((*e).clone(), expl.clone())))
            .collect();
        let base = base_spec(&r.cfg);
        let report = if recipe.revise {
            let jobs = revision_jobs(
                &prompts,
                r.ds.task,
                &selected,
                recipe.reveal_gold,
                recipe.probe.max_steps,
            )
            .map_err(anyhow::Error::msg)?;
            let spec = AnnotateSpec {
                stage: REVISE_STAGE.0.into(),
                kind: REVISE_STAGE.1.into(),
                round,
                ..base
            };
            annotate_jobs(
                r,
                teachers,
                &format!("revise round {round}"),
                &jobs,
                &spec,
                revision_parser(r.ds.task),
            )?
        } else {
            let items: Vec<Example> = selected.iter().map(|(e, _)| e.clone()).collect();
            let jobs = cot_jobs(&prompts, r.ds.task, &items, 1).map_err(anyhow::Error::msg)?;
            let spec = AnnotateSpec {
                stage: COT_STAGE.0.into(),
                kind: COT_STAGE.1.into(),
                round,
                ..base
            };
            annotate_jobs(
                r,
                teachers,
                &format!("cots round {round}"),
                &jobs,
                &spec,
                rationale_parser(r.ds.task),
            )?
        };
        if report.stopped.as_deref() == Some("interrupted") {
            anyhow::bail!("interrupted in round {round}; rerun the same command to resume");
        }
        let base_model = match recipe.retrain {
            Retrain::Restart => r.cfg.student.model.clone(),
            Retrain::Continue => last_model.clone(),
        };
        let trained = train_round(r, round, &base_model)?;
        if trained.stopped_early {
            anyhow::bail!("training interrupted; rerun the same command to resume");
        }
        let p = point(round, selected.len(), &trained)?;
        tracing::info!(
            "elad round {round}: {} items annotated, {} teacher calls, {} tokens, validation accuracy {:?}",
            p.items_annotated,
            p.teacher_calls,
            p.teacher_tokens,
            p.valid_accuracy
        );
        let better = p.valid_accuracy.unwrap_or(f64::NEG_INFINITY)
            > points
                .iter()
                .filter_map(|q: &RoundPoint| q.valid_accuracy)
                .fold(f64::NEG_INFINITY, f64::max);
        last_model = trained.model_dir.display().to_string();
        points.push(p);
        if better {
            best = (trained, round);
            since_best = 0;
        } else {
            since_best += 1;
        }
        if let Some(why) = report.stopped {
            stopped = why;
            break;
        }
        if recipe.patience > 0 && since_best >= recipe.patience {
            stopped = format!("no better validation accuracy for {since_best} round(s)");
            break;
        }
    }
    let (best, best_round) = best;
    Ok(EladOutcome {
        best,
        best_round,
        points,
        stopped,
    })
}
