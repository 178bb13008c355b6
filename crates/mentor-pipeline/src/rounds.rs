//! The round loop shared by the recipes whose student feeds the next annotation (DESIGN.md §1):
//! ELAD (the student's uncertain explanations go to the teacher) and MAPD with several mining
//! rounds (the student's new mistakes go to the committee).
//!
//! Round 0's annotations are made before the loop (ELAD's seed set, MAPD's first mining pass)
//! and its student trains on them. Each later round: the recipe's [`RoundTeacher`] asks the
//! teachers about what the last round's student got wrong or was unsure of, and the student
//! retrains on the annotations of rounds 0..=round (from the base student, or from the last
//! round's best: `retrain`). After each round the validation accuracy and the cumulative
//! teacher calls and tokens make one point of the curve. The student scored on test is the best
//! round's by validation, or the last round's (`tested_round = "last"`: at the whole budget).
//!
//! Resumable between and inside rounds: teacher calls go through the store; each round trains
//! in its own `student/round-N/`; a finished round's point is kept in the store's meta, and such
//! a round is neither asked about nor retrained again. The loop stops at `rounds`, when the
//! teacher budget runs out, when the recipe has nothing left to ask, or after `patience` rounds
//! without a better validation accuracy.

use crate::run::Run;
use crate::train::{stored, train_set, Trained};
use anyhow::Result;
use mentor_core::Split;
use mentor_methods::recipe::{Retrain, TestedRound};
use serde::Serialize;

/// One point of the accuracy-per-teacher-cost curve.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RoundPoint {
    pub round: u32,
    /// Train items with a teacher text after this round.
    pub items_annotated: usize,
    /// Items this round sent to the teacher (ELAD: seed set or selection; MAPD: mistakes).
    pub selected: usize,
    /// Training pairs of this round's student.
    pub training_pairs: usize,
    pub teacher_calls: u64,
    pub teacher_tokens: u64,
    pub valid_accuracy: Option<f64>,
    pub model: String,
}

/// What the rounds leave: the training of the round to score on test (`[recipe] tested_round`:
/// the best by validation accuracy, or the last) and the curve.
pub struct RoundsOutcome {
    pub tested: Trained,
    pub tested_round: u32,
    /// The round with the best validation accuracy (the earliest on ties).
    pub best_round: u32,
    pub points: Vec<RoundPoint>,
    pub stopped: String,
}

/// What a round's teacher stage came back with.
pub enum Annotated {
    /// New teacher texts; `stopped` says why no later round can follow (the budget ran out
    /// during this one): this round trains on what it got, then the loop ends.
    New { stopped: Option<String> },
    /// Nothing new to learn from (the pool is spent, no mistakes left, the budget is gone):
    /// the loop ends without retraining.
    Nothing(String),
}

impl Annotated {
    /// What a round's teacher stages (name, report) came back with: an interruption stops the
    /// run (a rerun resumes the round), failed calls are logged, and a round whose teachers
    /// answered nothing, stored before or now, has nothing new to train on.
    pub fn from_reports(
        round: u32,
        stages: Vec<(String, mentor_methods::annotate::AnnotateReport)>,
    ) -> Result<Annotated> {
        let (mut answered, mut stopped) = (0, None);
        for (stage, rep) in stages {
            if rep.stopped.as_deref() == Some("interrupted") {
                anyhow::bail!("interrupted in round {round}; rerun the same command to resume");
            }
            let t = rep.total();
            if t.failed > 0 {
                tracing::warn!(
                    "round {round}, stage {stage}: {} calls failed ({:?})",
                    t.failed,
                    rep.failures
                );
            }
            answered += t.done + t.already;
            stopped = stopped.or(rep.stopped);
        }
        Ok(match answered {
            0 => Annotated::Nothing(
                stopped.unwrap_or_else(|| "the teachers answered nothing".into()),
            ),
            _ => Annotated::New { stopped },
        })
    }
}

/// A recipe's teacher work in rounds ≥ 1.
pub trait RoundTeacher {
    /// Round `round`'s teacher stage, informed by `model`, the last round's best student.
    fn annotate(&self, r: &Run, round: u32, model: &str) -> Result<Annotated>;
    /// Train items with a teacher text so far.
    fn items_annotated(&self, r: &Run) -> Result<usize>;
    /// Items round `round` sent to the teacher.
    fn sent(&self, r: &Run, round: u32) -> Result<usize>;
}

/// Whether `round` finished before (its point is recorded): a rerun neither asks its teacher
/// again (a call that failed then would change the round's training set) nor retrains it.
pub fn round_done(r: &Run, round: u32) -> Result<bool> {
    Ok(r.store
        .lock()
        .unwrap()
        .meta(&point_key(r, round))?
        .is_some())
}

fn point_key(r: &Run, round: u32) -> String {
    format!("{}-point-{round}", r.cfg.recipe.name.as_str())
}

/// Runs round 0 (its annotations already made) and rounds 1..=`rounds`.
pub fn run_rounds(r: &Run, rounds: u32, teacher: &dyn RoundTeacher) -> Result<RoundsOutcome> {
    let recipe = &r.cfg.recipe;
    let mut students: Vec<Trained> = vec![];
    let mut points: Vec<RoundPoint> = vec![];
    let mut stopped = match rounds {
        1 => "1 round done".to_string(),
        n => format!("{n} rounds done"),
    };
    let mut last_round = false;
    for round in 0..=rounds {
        if round > 0 && !round_done(r, round)? {
            let last_model = students.last().unwrap().model_dir.display().to_string();
            match teacher.annotate(r, round, &last_model)? {
                Annotated::Nothing(why) => {
                    stopped = why;
                    break;
                }
                Annotated::New { stopped: Some(why) } => {
                    stopped = why;
                    last_round = true;
                }
                Annotated::New { stopped: None } => {}
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
        let p = point(r, teacher, round, &trained)?;
        tracing::info!(
            "{} round {round}: {} items annotated, {} teacher calls, {} tokens, validation accuracy {}",
            recipe.name.as_str(),
            p.items_annotated,
            p.teacher_calls,
            p.teacher_tokens,
            p.valid_accuracy
                .map_or("n/a (no validation split)".to_string(), |a| format!("{:.1} %", 100.0 * a))
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
    let tested_round = tested_round(&points, recipe.tested_round);
    let tested = students.swap_remove(tested_round as usize);
    Ok(RoundsOutcome {
        tested,
        tested_round,
        best_round,
        points,
        stopped,
    })
}

/// The round whose student a finished run's summary scored on test (`rounds.tested_round`;
/// `rounds.best_round` in summaries written before there was a choice); None for a run without
/// rounds.
pub fn tested_round_of(summary: &serde_json::Value) -> Option<u64> {
    let rounds = &summary["rounds"];
    rounds["tested_round"]
        .as_u64()
        .or_else(|| rounds["best_round"].as_u64())
}

/// Round `round`'s student trains on the annotations of rounds 0..=round only, so a resumed run
/// rebuilds each round's set exactly (its checkpoint refuses any other).
fn train_round(r: &Run, round: u32, base: &str) -> Result<Trained> {
    let mut st = stored(r)?;
    for v in [
        &mut st.cots,
        &mut st.self_evals,
        &mut st.mined,
        &mut st.feedback,
        &mut st.reviews,
        &mut st.revisions,
    ] {
        v.retain(|a| a.round <= round);
    }
    let name = r.cfg.recipe.name.as_str();
    let set = mentor_methods::recipes::training_set(
        &r.cfg.recipe,
        r.ds.task,
        r.ds.split(Split::Train),
        &st,
    );
    tracing::info!(
        "{name} round {round}: training on {} pairs from {base}",
        set.pairs.len()
    );
    train_set(
        r,
        set,
        base,
        &r.dir.join(format!("student/round-{round}")),
        &format!("{name}-round-{round}"),
    )
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

/// The round whose student is scored on test.
fn tested_round(points: &[RoundPoint], which: TestedRound) -> u32 {
    match which {
        TestedRound::Best => best_round(points),
        TestedRound::Last => points.last().map_or(0, |p| p.round),
    }
}

/// Cumulative teacher calls and tokens, from the ledger.
fn teacher_cost(r: &Run) -> Result<(u64, u64)> {
    let ledger = r.store.lock().unwrap().ledger()?;
    Ok(ledger.iter().fold((0, 0), |(c, t), l| {
        (
            c + l.calls_ok + l.calls_failed,
            t + l.prompt_tokens + l.completion_tokens,
        )
    }))
}

/// A round's point: what was observed when it ended, kept in the store's meta so that a resumed
/// run reports the same curve, not today's cumulative totals.
fn point(r: &Run, teacher: &dyn RoundTeacher, round: u32, t: &Trained) -> Result<RoundPoint> {
    let key = point_key(r, round);
    if let Some(p) = r.store.lock().unwrap().meta(&key)? {
        return Ok(serde_json::from_str(&p)?);
    }
    let (calls, tokens) = teacher_cost(r)?;
    let p = RoundPoint {
        round,
        items_annotated: teacher.items_annotated(r)?,
        selected: teacher.sent(r, round)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn points(valid: &[Option<f64>]) -> Vec<RoundPoint> {
        valid
            .iter()
            .enumerate()
            .map(|(i, &a)| RoundPoint {
                round: i as u32,
                items_annotated: 25 * (i + 1),
                selected: 25,
                training_pairs: 25 * (i + 1),
                teacher_calls: 25 * (i as u64 + 1),
                teacher_tokens: 4000 * (i as u64 + 1),
                valid_accuracy: a,
                model: format!("round-{i}"),
            })
            .collect()
    }

    /// A small validation set ties often: `best` then keeps the earliest round (round 0's
    /// student is the same whatever the selection rule), `last` the student of the whole budget.
    #[test]
    fn the_tested_round_is_the_best_on_validation_or_the_last() {
        let tied = points(&[Some(0.45), Some(0.40), Some(0.45), Some(0.43)]);
        assert_eq!(tested_round(&tied, TestedRound::Best), 0);
        assert_eq!(tested_round(&tied, TestedRound::Last), 3);
        let rising = points(&[Some(0.30), Some(0.35), Some(0.50), Some(0.45)]);
        assert_eq!(tested_round(&rising, TestedRound::Best), 2);
        assert_eq!(tested_round(&rising, TestedRound::Last), 3);
        // without validation items, both score the last round
        let unmeasured = points(&[None, None]);
        assert_eq!(tested_round(&unmeasured, TestedRound::Best), 1);
        // a run stopped early by patience: its last point is the last round it trained
        assert_eq!(tested_round(&rising[..2], TestedRound::Last), 1);
    }

    #[test]
    fn a_summary_without_a_tested_round_names_its_best_round() {
        let old = serde_json::json!({"rounds": {"best_round": 1}});
        assert_eq!(tested_round_of(&old), Some(1));
        let new = serde_json::json!({"rounds": {"best_round": 0, "tested_round": 3}});
        assert_eq!(tested_round_of(&new), Some(3));
        assert_eq!(
            tested_round_of(&serde_json::json!({"accuracy_after": 0.4})),
            None
        );
    }
}
