//! The annotation stage: ask teachers for chains of thought about dataset items.
//!
//! Work is a list of units (teacher, item, sample index). Units already annotated in the run
//! store are skipped, so a rerun resumes; a unit whose call is in the ledger but whose annotation
//! is not (a crash between the two) is answered from the cache, not paid again. Replies are
//! parsed after the ledger has them; an unparseable reply is stored raw with `parse_ok = false`
//! and counted. The budget or a stop request ends scheduling; calls already in flight finish and
//! are recorded.

use mentor_core::extract::extract;
use mentor_core::prompt::Prompts;
use mentor_core::text::{split_rationale, truncate_at_follow_on, FOLLOW_ON_MARKERS};
use mentor_core::{score_prediction, Example, NumericRule, TaskKind};
use mentor_store::Annotation;
use mentor_teacher::{ChatRequest, ItemRef, Message, SharedStore, Teacher, TeacherError};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What to ask for.
#[derive(Debug, Clone)]
pub struct AnnotateSpec {
    pub stage: String,
    pub kind: String,
    /// Chains of thought per item and teacher (distinct sample indices, seeded).
    pub samples: u32,
    pub temperature: Option<f64>,
    pub max_tokens: u32,
    /// Sample i is sent with seed `seed + i` where the backend honours seeds.
    pub seed: u64,
}

impl Default for AnnotateSpec {
    fn default() -> Self {
        AnnotateSpec {
            stage: "annotate".into(),
            kind: "rationale".into(),
            samples: 1,
            temperature: None,
            max_tokens: 512,
            seed: 0,
        }
    }
}

/// Counts per teacher, for the progress bar and the summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TeacherTally {
    /// Units this run had to do (not annotated before).
    pub todo: u64,
    /// Annotated before this run started (resumed).
    pub already: u64,
    pub done: u64,
    /// Of `done`, answered from the ledger without sending.
    pub cached: u64,
    pub failed: u64,
    /// Not sent because the budget was reached or the run was stopped.
    pub not_sent: u64,
    /// Replies from which no answer could be parsed (kept raw).
    pub unparseable: u64,
    /// Replies whose parsed answer matches the gold label.
    pub correct: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AnnotateReport {
    pub teachers: BTreeMap<String, TeacherTally>,
    /// Why scheduling stopped early, if it did (`budget reached: …`, `interrupted`).
    pub stopped: Option<String>,
    /// First few failure reasons, for the user.
    pub failures: Vec<String>,
}

impl AnnotateReport {
    pub fn total(&self) -> TeacherTally {
        let mut t = TeacherTally::default();
        for x in self.teachers.values() {
            t.todo += x.todo;
            t.already += x.already;
            t.done += x.done;
            t.cached += x.cached;
            t.failed += x.failed;
            t.not_sent += x.not_sent;
            t.unparseable += x.unparseable;
            t.correct += x.correct;
            t.tokens += x.tokens;
            t.cost_usd += x.cost_usd;
        }
        t
    }
}

/// The request for one unit.
pub fn request_for(
    prompts: &Prompts,
    task: TaskKind,
    dataset: &str,
    ex: &Example,
    spec: &AnnotateSpec,
    sample: u32,
    seeded: bool,
) -> Result<ChatRequest, String> {
    let (system, user) = prompts
        .cot(task, ex)
        .map_err(|e| format!("prompt template: {e}"))?;
    Ok(ChatRequest {
        messages: vec![Message::system(system), Message::user(user)],
        temperature: spec.temperature,
        top_p: None,
        max_tokens: Some(spec.max_tokens),
        stop: vec![],
        seed: seeded.then_some(spec.seed + sample as u64),
        sample_index: sample,
        item: Some(ItemRef {
            dataset: dataset.into(),
            example_id: ex.id.clone(),
            purpose: spec.kind.clone(),
        }),
    })
}

/// Parses a teacher's chain of thought into the annotation stored for it.
pub fn parse_rationale(
    task: TaskKind,
    ex: &Example,
    text: &str,
) -> (Option<serde_json::Value>, bool) {
    let cut = truncate_at_follow_on(text, FOLLOW_ON_MARKERS);
    let split = split_rationale(cut);
    let extracted = extract(task, cut, ex, NumericRule::Auto);
    let score = score_prediction(task, ex, cut, NumericRule::Auto);
    let parsed = serde_json::json!({
        "answer": extracted.answer,
        "correct": score.correct,
        "rationale": split.rationale,
    });
    (Some(parsed), extracted.answer.is_some())
}

/// Units already annotated for this stage: (source, example id, sample).
fn done_units(
    store: &SharedStore,
    spec: &AnnotateSpec,
) -> Result<HashSet<(String, String, u32)>, mentor_store::StoreError> {
    let s = store.lock().unwrap();
    Ok(s.annotations(&spec.stage, &spec.kind)?
        .into_iter()
        .map(|a| (a.source, a.example_id, a.sample_index))
        .collect())
}

/// Runs the stage. `on_progress` is called after every finished unit.
pub async fn annotate(
    store: SharedStore,
    teachers: &[Arc<Teacher>],
    dataset: &str,
    task: TaskKind,
    items: &[Example],
    prompts: &Prompts,
    spec: &AnnotateSpec,
    stop: Arc<AtomicBool>,
    mut on_progress: impl FnMut(&AnnotateReport),
) -> Result<AnnotateReport, mentor_store::StoreError> {
    let done = done_units(&store, spec)?;
    let mut report = AnnotateReport::default();
    let mut units = Vec::new();
    for (ti, t) in teachers.iter().enumerate() {
        let tally = report.teachers.entry(t.name().to_string()).or_default();
        for (ei, ex) in items.iter().enumerate() {
            for s in 0..spec.samples {
                if done.contains(&(t.name().to_string(), ex.id.clone(), s)) {
                    tally.already += 1;
                } else {
                    tally.todo += 1;
                    units.push((ti, ei, s));
                }
            }
        }
    }
    on_progress(&report);
    let concurrency: usize = teachers
        .iter()
        .map(|t| t.opts.max_in_flight)
        .sum::<usize>()
        .max(1);
    let budget_hit = Arc::new(AtomicBool::new(false));
    let mut queue = units.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < concurrency
            && !stop.load(Ordering::SeqCst)
            && !budget_hit.load(Ordering::SeqCst)
        {
            let Some((ti, ei, s)) = queue.next() else {
                break;
            };
            let teacher = teachers[ti].clone();
            let ex = items[ei].clone();
            let seeded = teacher.backend().capabilities().seed;
            let req = match request_for(prompts, task, dataset, &ex, spec, s, seeded) {
                Ok(r) => teacher.configure(r),
                Err(msg) => {
                    // A broken template fails every unit the same way: stop at once and say so.
                    report.stopped = Some(msg);
                    stop.store(true, Ordering::SeqCst);
                    break;
                }
            };
            let (store, budget_hit, spec, dataset) = (
                store.clone(),
                budget_hit.clone(),
                spec.clone(),
                dataset.to_string(),
            );
            running.spawn(async move {
                let out = teacher.complete(&req).await;
                if let Err(TeacherError::Budget(_)) = &out {
                    budget_hit.store(true, Ordering::SeqCst);
                }
                let stored = match &out {
                    Ok(c) => {
                        let (parsed, parse_ok) = parse_rationale(task, &ex, &c.text);
                        let a = Annotation {
                            dataset,
                            example_id: ex.id.clone(),
                            stage: spec.stage.clone(),
                            kind: spec.kind.clone(),
                            source: teacher.name().to_string(),
                            round: 0,
                            sample_index: s,
                            call_id: Some(c.call_id),
                            text: c.text.clone(),
                            parsed: parsed.clone(),
                            parse_ok,
                        };
                        store
                            .lock()
                            .unwrap()
                            .add_annotation(&a)
                            .map(|_| (parse_ok, parsed))
                    }
                    Err(_) => Ok((false, None)),
                };
                (teacher.name().to_string(), out, stored)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (name, out, stored) = joined.expect("annotation task panicked");
        let (parse_ok, parsed) = stored?;
        let tally = report.teachers.get_mut(&name).unwrap();
        match out {
            Ok(c) => {
                tally.done += 1;
                tally.cached += c.cached as u64;
                if !c.cached {
                    tally.tokens += c.prompt_tokens + c.completion_tokens;
                    tally.cost_usd += c.cost_usd;
                }
                tally.unparseable += (!parse_ok) as u64;
                tally.correct += parsed
                    .as_ref()
                    .and_then(|p| p["correct"].as_bool())
                    .unwrap_or(false) as u64;
            }
            Err(TeacherError::Budget(b)) => {
                tally.not_sent += 1;
                report.stopped.get_or_insert_with(|| b.to_string());
            }
            Err(TeacherError::Failed { reason, .. }) => {
                tally.failed += 1;
                if report.failures.len() < 5 {
                    report.failures.push(format!("{name}: {reason}"));
                }
            }
            Err(TeacherError::Store(e)) => return Err(e),
        }
        on_progress(&report);
    }
    // Whatever was never scheduled is reported, not silently dropped.
    for (ti, _, _) in queue {
        report
            .teachers
            .get_mut(teachers[ti].name())
            .unwrap()
            .not_sent += 1;
    }
    if stop.load(Ordering::SeqCst) && report.stopped.is_none() {
        report.stopped = Some("interrupted".into());
    }
    on_progress(&report);
    Ok(report)
}
