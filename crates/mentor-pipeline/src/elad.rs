//! ELAD's rounds, the `elad` recipe's loop inside `mentor distill` (the stages themselves are
//! in `mentor_methods::elad`; every choice is documented there and in ARCHITECTURE.md). The
//! loop is [`crate::rounds`]; this file is ELAD's teacher work in it.
//!
//! Round 0: the seed set (`seed_fraction` of the train pool, its first items in the seeded split
//! order) gets the teacher's chains of thought, and the student trains on them. Each later round:
//! the student scores the items not yet annotated (uncertainty of its own explanations), the top
//! `round_budget` by the configured ranking go to the teacher (a revision of the student's greedy
//! explanation, or a chain of thought from scratch).
//!
//! Resumable inside a round: its selection (every score, and which items were chosen) is in the
//! store's `selections` table before any revision is asked for, and a rerun reuses it.

use crate::annotate::{annotate_jobs, base_spec};
use crate::progress::items_bar;
use crate::rounds::{Annotated, RoundTeacher};
use crate::run::Run;
use anyhow::Result;
use mentor_core::{Example, Split};
use mentor_methods::annotate::{cot_jobs, rationale_parser, AnnotateSpec};
use mentor_methods::elad::{
    revision_jobs, revision_parser, score_pool, select, ProbeParts, ScoredItem, SelectionStrategy,
    Uncertainty,
};
use mentor_methods::recipe::{COT_STAGE, ELAD_SELECT_STAGE, REVISE_STAGE};
use mentor_teacher::Teacher;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// The seed set: the first `seed_fraction` of the train pool (at least one item).
pub fn seed_items(r: &Run) -> Vec<Example> {
    let pool = r.ds.split(Split::Train);
    let n = (r.cfg.recipe.seed_fraction * pool.len() as f64).ceil() as usize;
    pool[..n.clamp(1, pool.len().max(1)).min(pool.len())].to_vec()
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

/// Probes `remaining` with `model` for what the strategy ranks by (random: only the chosen
/// items, for their explanations), records every score and the selection, returns the selection.
fn select_round(
    r: &Run,
    model: &str,
    round: u32,
    remaining: &[Example],
) -> Result<Vec<(String, String)>> {
    let recipe = &r.cfg.recipe;
    let probe = mentor_methods::elad::ProbeConfig {
        seed: recipe.probe.seed + recipe.seed + round as u64 * 1_000_003,
        ..recipe.probe.clone()
    };
    let parts = ProbeParts::for_strategy(recipe.selection);
    let select_seed = recipe.seed + round as u64;
    // The student's probe of `items`: the parts of the uncertainty `parts` asks for, and each
    // item's greedy explanation.
    let probe_items = |items: &[Example]| -> Result<Vec<ScoredItem>> {
        let loaded = crate::models::load_for_inference(model)?;
        let bar = items_bar(0, &format!("score round {round}"));
        let mut done = 0;
        let scored = score_pool(
            &loaded.model,
            &loaded.tokenizer,
            r.ds.task,
            items,
            &probe,
            parts,
            &mut |n| {
                done += n;
                bar.set_position(done as u64);
            },
        )?;
        bar.finish_and_clear();
        Ok(scored)
    };
    let (scored, chosen) = if recipe.selection == SelectionStrategy::Random {
        // The order needs no probe: a seeded shuffle of the pool. Only the chosen items are
        // probed, for the greedy explanations the teacher revises.
        let mut scored: Vec<ScoredItem> = remaining
            .iter()
            .map(|e| ScoredItem {
                id: e.id.clone(),
                uncertainty: Uncertainty::default(),
                explanation: String::new(),
            })
            .collect();
        let chosen = select(&scored, recipe.selection, recipe.round_budget, select_seed);
        if recipe.revise {
            let picked: Vec<Example> = remaining
                .iter()
                .filter(|e| chosen.contains(&e.id))
                .cloned()
                .collect();
            let probed: std::collections::HashMap<String, ScoredItem> = probe_items(&picked)?
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect();
            for s in &mut scored {
                if let Some(p) = probed.get(&s.id) {
                    *s = p.clone();
                }
            }
        }
        (scored, chosen)
    } else {
        let scored = probe_items(remaining)?;
        let chosen = select(&scored, recipe.selection, recipe.round_budget, select_seed);
        (scored, chosen)
    };
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

/// ELAD's teacher in the round loop.
pub struct Elad;

impl RoundTeacher for Elad {
    /// Scores the items not annotated yet with `model` and sends the top `round_budget` to the
    /// teacher (or the selection recorded before, on a rerun).
    fn annotate(&self, r: &Run, round: u32, model: &str) -> Result<Annotated> {
        let pool = r.ds.split(Split::Train);
        let done = annotated_ids(r)?;
        let remaining: Vec<Example> = pool
            .iter()
            .filter(|e| !done.contains(&e.id))
            .cloned()
            .collect();
        let selection = match recorded_selection(r, round)? {
            Some(s) => s,
            None if remaining.is_empty() => {
                return Ok(Annotated::Nothing("the pool is spent".into()))
            }
            None => select_round(r, model, round, &remaining)?,
        };
        let by_id: std::collections::HashMap<&str, &Example> =
            pool.iter().map(|e| (e.id.as_str(), e)).collect();
        let chosen: Vec<(Example, String)> = selection
            .iter()
            .filter_map(|(id, e)| by_id.get(id.as_str()).map(|x| ((*x).clone(), e.clone())))
            .collect();
        // built for this round only: an embedded teacher's model is freed before retraining
        let teachers = crate::teachers::for_run(r)?;
        let report = ask_teacher(r, &teachers, &r.prompts()?, round, &chosen)?;
        Annotated::from_reports(round, vec![("revise".into(), report)])
    }

    fn items_annotated(&self, r: &Run) -> Result<usize> {
        Ok(annotated_ids(r)?.len())
    }

    fn sent(&self, r: &Run, round: u32) -> Result<usize> {
        if round == 0 {
            return Ok(seed_items(r).len());
        }
        Ok(recorded_selection(r, round)?.map_or(0, |s| s.len()))
    }
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
