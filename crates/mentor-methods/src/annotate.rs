//! The annotation stage: ask teachers about dataset items — chains of thought, self-evaluations
//! of them, reviews — and store what they said with provenance.
//!
//! Work is a list of [`Job`]s (an item, a sample index, the prompt); each teacher that a job names
//! (all, by default) makes one unit (teacher, item, sample index). Units already annotated in the run
//! store are skipped, so a rerun resumes; a unit whose call is in the ledger but whose annotation
//! is not (a crash between the two) is answered from the cache, not paid again. Replies are
//! parsed after the ledger has them; an unparseable reply is stored raw with `parse_ok = false`
//! and counted. The budget or a stop request ends scheduling; calls already in flight finish and
//! are recorded.

use mentor_core::extract::extract;
use mentor_core::prompt::Prompts;
use mentor_core::text::{split_rationale, truncate_at_follow_on, FOLLOW_ON_MARKERS};
use mentor_core::{parse_verdict, score_prediction, Example, NumericRule, TaskKind};
use mentor_store::Annotation;
use mentor_teacher::{ChatRequest, ItemRef, Message, SharedStore, Teacher, TeacherError};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How to ask: the stage's name in the store and the sampling settings of its requests.
#[derive(Debug, Clone)]
pub struct AnnotateSpec {
    pub stage: String,
    pub kind: String,
    /// Chains of thought per item and teacher (distinct sample indices, seeded), for [`cot_jobs`].
    pub samples: u32,
    pub temperature: Option<f64>,
    pub max_tokens: u32,
    /// Sample i is sent with seed `seed + i` where the backend honours seeds.
    pub seed: u64,
    /// The annotations' round (ELAD's selection round, MAPD's mining round; 0 elsewhere). A
    /// unit is done when it is stored for this round.
    pub round: u32,
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
            round: 0,
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
    /// Replies cut at the token limit (`max_tokens`), parseable or not: the fix is a larger
    /// limit, not a better parser. Never trained on as if complete.
    pub truncated: u64,
    /// Replies whose parsed answer matches the gold label.
    pub correct: u64,
    /// The batch route (`batch = true`): requests submitted in new batches, re-attached from a
    /// stopped run, returned, and failed (expired, errored or missing: resubmitted in a new batch
    /// or asked online).
    pub batch_requested: u64,
    pub batch_reattached: u64,
    pub batch_returned: u64,
    pub batch_failed: u64,
    /// Failed rows sent again in a new batch (`batch_resubmit = "batch"`).
    pub batch_resubmitted: u64,
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
            t.truncated += x.truncated;
            t.correct += x.correct;
            t.tokens += x.tokens;
            t.cost_usd += x.cost_usd;
            t.batch_requested += x.batch_requested;
            t.batch_reattached += x.batch_reattached;
            t.batch_returned += x.batch_returned;
            t.batch_failed += x.batch_failed;
            t.batch_resubmitted += x.batch_resubmitted;
        }
        t
    }
}

/// One question for the teachers about one dataset item.
#[derive(Debug, Clone)]
pub struct Job {
    pub example: Example,
    /// The annotation's sample index: unique per item within a stage.
    pub sample: u32,
    pub system: String,
    pub user: String,
    /// Only this teacher does the job (peer review); None = every teacher.
    pub teacher: Option<String>,
    /// Stored in the annotation's `parsed` next to what the parser read (e.g. which chain of
    /// thought a self-evaluation judged).
    pub context: serde_json::Value,
}

/// Reads a reply: (`parsed` JSON to store, whether the reply could be parsed).
pub type Parser = Arc<dyn Fn(&Example, &str) -> (serde_json::Value, bool) + Send + Sync>;

/// `samples` chains of thought per item (sample indices 0..samples).
pub fn cot_jobs(
    prompts: &Prompts,
    task: TaskKind,
    items: &[Example],
    samples: u32,
) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::with_capacity(items.len() * samples as usize);
    for ex in items {
        let (system, user) = prompts
            .cot(task, ex)
            .map_err(|e| format!("prompt template `cot`: {e}"))?;
        for s in 0..samples {
            jobs.push(Job {
                example: ex.clone(),
                sample: s,
                system: system.clone(),
                user: user.clone(),
                teacher: None,
                context: serde_json::Value::Null,
            });
        }
    }
    Ok(jobs)
}

/// Self-evaluations of a chain of thought: `sample = cot_index × SELF_EVAL_STRIDE + m`.
pub const SELF_EVAL_STRIDE: u32 = 1000;

pub use crate::trainset::JudgedCot;

/// `per_cot` self-evaluations of each chain of thought (Mind's Mirror's M).
pub fn self_eval_jobs(
    prompts: &Prompts,
    task: TaskKind,
    cots: &[JudgedCot],
    per_cot: u32,
) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::with_capacity(cots.len() * per_cot as usize);
    for c in cots {
        let (system, user) = prompts
            .self_eval(task, &c.example, &c.text)
            .map_err(|e| format!("prompt template `self_eval`: {e}"))?;
        for m in 0..per_cot {
            jobs.push(Job {
                example: c.example.clone(),
                sample: c.cot_index * SELF_EVAL_STRIDE + m,
                system: system.clone(),
                user: user.clone(),
                teacher: None,
                context: serde_json::json!({ "cot_index": c.cot_index, "cot_correct": c.correct }),
            });
        }
    }
    Ok(jobs)
}

/// A mined student mistake: the item, what the student wrote, the answer read from it, and the
/// mining round that found it (a question still wrong after training is a new mistake).
#[derive(Debug, Clone)]
pub struct Mistake {
    pub example: Example,
    pub output: String,
    /// The parsed answer as text ("unparseable" when none could be read).
    pub answer: String,
    pub round: u32,
}

/// Stores the student's answers to `items` (stage `mine`, parsed and scored against gold) under
/// `source`, as mining round `round`; answers already stored are kept. Returns how many were new.
pub fn record_student_answers(
    store: &SharedStore,
    dataset: &str,
    task: TaskKind,
    answers: &[(Example, String)],
    source: &str,
    round: u32,
) -> Result<usize, mentor_store::StoreError> {
    let (stage, kind) = crate::recipe::MINE_STAGE;
    let mut s = store.lock().unwrap();
    let mut new = 0;
    for (ex, text) in answers {
        let (parsed, parse_ok) = parse_rationale(task, ex, text);
        new += s.add_annotation(&Annotation {
            dataset: dataset.into(),
            example_id: ex.id.clone(),
            stage: stage.into(),
            kind: kind.into(),
            source: source.into(),
            round,
            sample_index: 0,
            call_id: None,
            text: text.clone(),
            parsed: Some(parsed),
            parse_ok,
        })? as usize;
    }
    Ok(new)
}

/// The mistakes among `items`: stored student answers that are wrong or unparseable, by mining
/// round, then in the order of `items`.
pub fn mistakes(items: &[Example], mined: &[Annotation]) -> Vec<Mistake> {
    let mut by_round: BTreeMap<u32, std::collections::HashMap<&str, &Annotation>> = BTreeMap::new();
    for a in mined {
        by_round
            .entry(a.round)
            .or_default()
            .insert(a.example_id.as_str(), a);
    }
    let mut out = vec![];
    for (&round, by_id) in &by_round {
        for ex in items {
            let Some(a) = by_id.get(ex.id.as_str()) else {
                continue;
            };
            let p = a.parsed.as_ref();
            if p.and_then(|p| p["correct"].as_bool()) == Some(true) {
                continue;
            }
            let answer = p
                .and_then(|p| crate::evaluate::answer_text(&p["answer"]))
                .unwrap_or_else(|| "unparseable".into());
            out.push(Mistake {
                example: ex.clone(),
                output: a.text.clone(),
                answer,
                round,
            });
        }
    }
    out
}

/// MAPD feedback: every teacher explains each mistake, the gold answer given as a hint.
pub fn feedback_jobs(prompts: &Prompts, mistakes: &[Mistake]) -> Result<Vec<Job>, String> {
    mistakes
        .iter()
        .map(|m| {
            let (system, user) = prompts
                .feedback(&m.example, &m.output, &m.answer)
                .map_err(|e| format!("prompt template `feedback`: {e}"))?;
            Ok(Job {
                example: m.example.clone(),
                sample: 0,
                system,
                user,
                teacher: None,
                context: serde_json::Value::Null,
            })
        })
        .collect()
}

/// MAPD peer review: each teacher (`committee`, in order) scores every *other* teacher's
/// rationale of an item; the job's sample index is the author's position in `committee`.
pub fn review_jobs(
    prompts: &Prompts,
    items: &[Example],
    rationales: &[Annotation],
    committee: &[String],
) -> Result<Vec<Job>, String> {
    let by_key: std::collections::HashMap<(&str, &str), &Annotation> = rationales
        .iter()
        .filter(|a| a.sample_index == 0)
        .map(|a| ((a.example_id.as_str(), a.source.as_str()), a))
        .collect();
    let mut jobs = vec![];
    for ex in items {
        for (ai, author) in committee.iter().enumerate() {
            let Some(r) = by_key.get(&(ex.id.as_str(), author.as_str())) else {
                continue;
            };
            let (system, user) = prompts
                .review(ex, truncate_at_follow_on(&r.text, FOLLOW_ON_MARKERS))
                .map_err(|e| format!("prompt template `review`: {e}"))?;
            for reviewer in committee.iter().filter(|t| *t != author) {
                jobs.push(Job {
                    example: ex.clone(),
                    sample: ai as u32,
                    system: system.clone(),
                    user: user.clone(),
                    teacher: Some(reviewer.clone()),
                    context: serde_json::json!({ "author": author }),
                });
            }
        }
    }
    Ok(jobs)
}

/// The parser of peer reviews: `{"score": 1–5 or null}` from the last bracketed group.
pub fn review_parser() -> Parser {
    Arc::new(|_, text| {
        let s = mentor_core::review::parse_review_score(text);
        (serde_json::json!({ "score": s }), s.is_some())
    })
}

/// The parser of feedback: free text, always kept.
pub fn feedback_parser() -> Parser {
    Arc::new(|_, text| (serde_json::json!({}), !text.trim().is_empty()))
}

/// The request `teacher` is sent for one unit: the stage's request with the teacher's own
/// sampling settings applied — except that a stage drawing several samples an item keeps its
/// temperature, since a teacher set to (say) 0 would give K identical chains of thought that
/// deduplicate into one.
pub fn teacher_request(
    teacher: &Teacher,
    job: &Job,
    dataset: &str,
    spec: &AnnotateSpec,
) -> ChatRequest {
    let seeded = teacher.backend().capabilities().seed;
    let mut req = teacher.configure(request_for(job, dataset, spec, seeded));
    if spec.samples > 1 && spec.temperature.is_some() {
        req.temperature = spec.temperature;
    }
    req
}

/// The request for one unit.
pub fn request_for(job: &Job, dataset: &str, spec: &AnnotateSpec, seeded: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::system(job.system.clone()),
            Message::user(job.user.clone()),
        ],
        temperature: spec.temperature,
        top_p: None,
        max_tokens: Some(spec.max_tokens),
        stop: vec![],
        seed: seeded.then_some(spec.seed + job.sample as u64),
        sample_index: job.sample,
        item: Some(ItemRef {
            dataset: dataset.into(),
            example_id: job.example.id.clone(),
            purpose: spec.kind.clone(),
        }),
    }
}

/// Parses a teacher's chain of thought into the annotation stored for it.
pub fn parse_rationale(task: TaskKind, ex: &Example, text: &str) -> (serde_json::Value, bool) {
    let cut = truncate_at_follow_on(text, FOLLOW_ON_MARKERS);
    let split = split_rationale(cut);
    let extracted = extract(task, cut, ex, NumericRule::Auto);
    let score = score_prediction(task, ex, cut, NumericRule::Auto);
    let parsed = serde_json::json!({
        "answer": extracted.answer,
        "correct": score.correct,
        "rationale": split.rationale,
    });
    (parsed, extracted.answer.is_some())
}

/// The parser of chains of thought for a task kind.
pub fn rationale_parser(task: TaskKind) -> Parser {
    Arc::new(move |ex, text| parse_rationale(task, ex, text))
}

/// The parser of self-evaluations: `{"verdict": …}` (null when no verdict could be read).
pub fn self_eval_parser() -> Parser {
    Arc::new(|_, text| {
        let v = parse_verdict(text);
        (serde_json::json!({ "verdict": v }), v.is_some())
    })
}

/// Units already annotated for this stage: (source, example id, sample).
fn done_units(
    store: &SharedStore,
    spec: &AnnotateSpec,
) -> Result<HashSet<(String, String, u32)>, mentor_store::StoreError> {
    let s = store.lock().unwrap();
    Ok(s.annotations(&spec.stage, &spec.kind)?
        .into_iter()
        .filter(|a| a.round == spec.round)
        .map(|a| (a.source, a.example_id, a.sample_index))
        .collect())
}

/// Runs the stage. `on_progress` is called after every finished unit.
#[allow(clippy::too_many_arguments)]
pub async fn annotate(
    store: SharedStore,
    teachers: &[Arc<Teacher>],
    dataset: &str,
    jobs: &[Job],
    spec: &AnnotateSpec,
    parser: Parser,
    stop: Arc<AtomicBool>,
    mut on_progress: impl FnMut(&AnnotateReport),
) -> Result<AnnotateReport, mentor_store::StoreError> {
    let done = done_units(&store, spec)?;
    let mut report = AnnotateReport::default();
    let mut units = Vec::new();
    for (ti, t) in teachers.iter().enumerate() {
        let tally = report.teachers.entry(t.name().to_string()).or_default();
        for (ji, job) in jobs.iter().enumerate() {
            if job.teacher.as_deref().is_some_and(|n| n != t.name()) {
                continue;
            }
            if done.contains(&(t.name().to_string(), job.example.id.clone(), job.sample)) {
                tally.already += 1;
            } else {
                tally.todo += 1;
                units.push((ti, ji));
            }
        }
    }
    on_progress(&report);
    // the batch route first: its results land in the cache, where the loop below finds them
    for (ti, t) in teachers.iter().enumerate() {
        let Some(polling) = t.opts.batch else {
            continue;
        };
        let reqs: Vec<_> = units
            .iter()
            .filter(|(i, _)| *i == ti)
            .map(|&(_, ji)| teacher_request(t, &jobs[ji], dataset, spec))
            .collect();
        if reqs.is_empty() {
            continue;
        }
        let name = t.name().to_string();
        // round 0, then (batch_resubmits) new batches for the rows that failed; what still
        // fails after the last goes online
        for round in 0..=t.opts.batch_resubmits {
            let out = t
                .prefetch_batch(&reqs, polling, &stop, |id, st, elapsed| {
                    tracing::info!(
                        teacher = %name,
                        "batch {id}: {} — {}/{} done, {} failed, {:.0}s",
                        st.status, st.completed, st.total, st.failed, elapsed.as_secs_f64()
                    );
                })
                .await;
            let tally = report
                .teachers
                .get_mut(t.name())
                .expect("every teacher has a tally");
            let b = match out {
                Ok(b) => b,
                Err(TeacherError::Store(e)) => return Err(e),
                Err(e) => {
                    report.stopped = Some(format!("batch route: {e}"));
                    return Ok(report);
                }
            };
            if round > 0 {
                tally.batch_resubmitted += b.requested;
            } else {
                tally.batch_requested += b.requested;
            }
            tally.batch_reattached += b.reattached;
            tally.batch_returned += b.returned;
            tally.batch_failed += b.failed;
            report.failures.extend(b.failures);
            // interrupted: the batches stay open for the rerun; a budget stop leaves the rest
            // to the loop below, which stops at the same limit and counts what is unsent
            if let Some(why) = b.stopped.as_ref().filter(|_| stop.load(Ordering::SeqCst)) {
                report.stopped = Some(format!("teacher `{}`: {why}", t.name()));
                return Ok(report);
            }
            if b.failed == 0 || b.stopped.is_some() {
                break;
            }
        }
    }
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
            let Some((ti, ji)) = queue.next() else {
                break;
            };
            let teacher = teachers[ti].clone();
            let job = jobs[ji].clone();
            let req = teacher_request(&teacher, &job, dataset, spec);
            let (store, budget_hit, spec, dataset, parser) = (
                store.clone(),
                budget_hit.clone(),
                spec.clone(),
                dataset.to_string(),
                parser.clone(),
            );
            running.spawn(async move {
                let out = teacher.complete(&req).await;
                if let Err(TeacherError::Budget(_)) = &out {
                    budget_hit.store(true, Ordering::SeqCst);
                }
                let stored = match &out {
                    Ok(c) => {
                        let (mut parsed, parse_ok) = parser(&job.example, &c.text);
                        if let (Some(p), Some(ctx)) =
                            (parsed.as_object_mut(), job.context.as_object())
                        {
                            p.extend(ctx.clone());
                        }
                        if let (Some(p), true) = (parsed.as_object_mut(), c.truncated()) {
                            p.insert("truncated".into(), serde_json::Value::Bool(true));
                        }
                        let parsed = Some(parsed);
                        let a = Annotation {
                            dataset,
                            example_id: job.example.id.clone(),
                            stage: spec.stage.clone(),
                            kind: spec.kind.clone(),
                            source: teacher.name().to_string(),
                            round: spec.round,
                            sample_index: job.sample,
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
                tally.truncated += c.truncated() as u64;
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
    for (ti, _) in queue {
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

/// Runs a recipe's teacher stages (`stages`, from `recipes::RecipeExt::teacher_stages`) over `items` in order (chains of thought, then
/// self-evaluations of the distinct ones), each resumable. `on_progress(stage, report)`.
/// Returns each stage's name and report; stops after a stage that was stopped early.
#[allow(clippy::too_many_arguments)]
pub async fn annotate_recipe(
    store: SharedStore,
    teachers: &[Arc<Teacher>],
    dataset: &str,
    task: TaskKind,
    items: &[Example],
    prompts: &Prompts,
    recipe: &crate::recipe::Recipe,
    stages: &[crate::recipe::TeacherStage],
    base: &AnnotateSpec,
    stop: Arc<AtomicBool>,
    mut on_progress: impl FnMut(&str, u64, &AnnotateReport),
) -> Result<Vec<(String, AnnotateReport)>, RecipeAnnotateError> {
    use crate::recipe::{
        TeacherStage, COT_STAGE, FEEDBACK_STAGE, MINE_STAGE, REVIEW_STAGE, SELF_EVAL_STAGE,
    };
    let mut out = vec![];
    let committee: Vec<String> = teachers.iter().map(|t| t.name().to_string()).collect();
    // MAPD works on the mistakes of its mining round (`base.round`) only
    let round = base.round;
    let this_round = |stage: (&str, &str)| -> Result<Vec<Annotation>, RecipeAnnotateError> {
        let mut v = store.lock().unwrap().annotations(stage.0, stage.1)?;
        v.retain(|a| a.round == round);
        Ok(v)
    };
    let mined = || -> Result<Vec<Mistake>, RecipeAnnotateError> {
        Ok(mistakes(items, &this_round(MINE_STAGE)?))
    };
    let spec_of = |(stage, kind): (&str, &str)| AnnotateSpec {
        stage: stage.into(),
        kind: kind.into(),
        samples: 1,
        ..base.clone()
    };
    // the chains of thought an item the self-evaluations judge: the CoT stage's K
    let k = stages
        .iter()
        .find_map(|s| match s {
            TeacherStage::Cots { samples } => Some(*samples),
            _ => None,
        })
        .unwrap_or(1);
    for &stage in stages {
        let (name, jobs, spec, parser) = match stage {
            TeacherStage::Cots { samples } => {
                let spec = AnnotateSpec {
                    samples,
                    temperature: recipe.cot_temperature().or(base.temperature),
                    ..spec_of(COT_STAGE)
                };
                let jobs =
                    cot_jobs(prompts, task, items, samples).map_err(RecipeAnnotateError::Prompt)?;
                ("cots", jobs, spec, rationale_parser(task))
            }
            TeacherStage::SelfEvals { per_cot } => {
                let cots = store
                    .lock()
                    .unwrap()
                    .annotations(COT_STAGE.0, COT_STAGE.1)?;
                let cots = crate::trainset::recipe_cots(k, &cots);
                let (distinct, _) = crate::trainset::distinct_cots(items, &cots);
                let spec = AnnotateSpec {
                    samples: per_cot,
                    // Several judgements of one CoT are only different when sampled.
                    temperature: base.temperature.or(Some(recipe.cot_temperature)),
                    ..spec_of(SELF_EVAL_STAGE)
                };
                let jobs = self_eval_jobs(prompts, task, &distinct, per_cot)
                    .map_err(RecipeAnnotateError::Prompt)?;
                ("self-evals", jobs, spec, self_eval_parser())
            }
            TeacherStage::Feedback => {
                let jobs =
                    feedback_jobs(prompts, &mined()?).map_err(RecipeAnnotateError::Prompt)?;
                ("feedback", jobs, spec_of(FEEDBACK_STAGE), feedback_parser())
            }
            TeacherStage::MistakeRationales => {
                let m: Vec<Example> = mined()?.into_iter().map(|m| m.example).collect();
                let jobs = cot_jobs(prompts, task, &m, 1).map_err(RecipeAnnotateError::Prompt)?;
                (
                    "rationales",
                    jobs,
                    spec_of(COT_STAGE),
                    rationale_parser(task),
                )
            }
            TeacherStage::Reviews => {
                let m: Vec<Example> = mined()?.into_iter().map(|m| m.example).collect();
                let rats = this_round(COT_STAGE)?;
                let jobs = review_jobs(prompts, &m, &rats, &committee)
                    .map_err(RecipeAnnotateError::Prompt)?;
                ("reviews", jobs, spec_of(REVIEW_STAGE), review_parser())
            }
        };
        let units: u64 = jobs
            .iter()
            .map(|j| {
                if j.teacher.is_some() {
                    1
                } else {
                    teachers.len() as u64
                }
            })
            .sum();
        let report = annotate(
            store.clone(),
            teachers,
            dataset,
            &jobs,
            &spec,
            parser,
            stop.clone(),
            |r| on_progress(name, units, r),
        )
        .await?;
        let stopped = report.stopped.is_some();
        out.push((name.to_string(), report));
        if stopped {
            break;
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeAnnotateError {
    #[error("{0}")]
    Prompt(String),
    #[error(transparent)]
    Store(#[from] mentor_store::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str) -> Example {
        Example {
            id: id.into(),
            question: format!("What is {id}?"),
            answer: "7".into(),
            choices: vec![],
            explanation: None,
        }
    }

    fn ann(id: &str, source: &str, text: &str, parsed: serde_json::Value) -> Annotation {
        Annotation {
            dataset: "d".into(),
            example_id: id.into(),
            stage: "s".into(),
            kind: "k".into(),
            source: source.into(),
            round: 0,
            sample_index: 0,
            call_id: None,
            text: text.into(),
            parsed: Some(parsed),
            parse_ok: true,
        }
    }

    #[test]
    fn mistakes_are_wrong_or_unparseable_student_answers() {
        let items = [ex("a"), ex("b"), ex("c"), ex("d")];
        let num = |v: f64| serde_json::json!({"type": "number", "value": {"value": v, "text": v.to_string()}});
        let mined = [
            ann(
                "a",
                "student",
                "It is 7.",
                serde_json::json!({"answer": num(7.0), "correct": true}),
            ),
            ann(
                "b",
                "student",
                "It is 8.",
                serde_json::json!({"answer": num(8.0), "correct": false}),
            ),
            ann(
                "c",
                "student",
                "No idea",
                serde_json::json!({"answer": null, "correct": false}),
            ),
        ];
        let m = mistakes(&items, &mined);
        let got: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.example.id.as_str(), m.answer.as_str()))
            .collect();
        // d was never answered: not a mistake (it is mined on the next run).
        assert_eq!(got, [("b", "8"), ("c", "unparseable")]);
        // Mining again after training: b is right now, a went wrong; c is still wrong and is a
        // mistake again, of round 1, with its new answer.
        let mut again = mined.to_vec();
        for (id, text, answer, correct) in [
            ("a", "It is 6.", num(6.0), false),
            ("b", "It is 7.", num(7.0), true),
            ("c", "It is 9.", num(9.0), false),
        ] {
            let mut x = ann(
                id,
                "student",
                text,
                serde_json::json!({"answer": answer, "correct": correct}),
            );
            x.round = 1;
            again.push(x);
        }
        let found = mistakes(&items, &again);
        let got: Vec<(u32, &str, &str)> = found
            .iter()
            .map(|m| (m.round, m.example.id.as_str(), m.answer.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "b", "8"),
                (0, "c", "unparseable"),
                (1, "a", "6"),
                (1, "c", "9")
            ]
        );
    }

    #[test]
    fn every_rationale_is_reviewed_by_each_other_teacher() {
        let committee = ["big".to_string(), "mid".into(), "small".into()];
        let rats = [
            ann("a", "big", "7. The answer is 7.", serde_json::json!({})),
            ann("a", "small", "8. The answer is 8.", serde_json::json!({})),
        ];
        let jobs = review_jobs(&Prompts::default(), &[ex("a")], &rats, &committee).unwrap();
        let got: Vec<(u32, &str)> = jobs
            .iter()
            .map(|j| (j.sample, j.teacher.as_deref().unwrap()))
            .collect();
        assert_eq!(got, [(0, "mid"), (0, "small"), (2, "big"), (2, "mid")]);
        assert!(
            jobs[0].user.contains("Correct answer: 7")
                && jobs[0]
                    .user
                    .contains("Proposed solution: 7. The answer is 7.")
        );
        assert_eq!(jobs[2].context["author"], "small");
        assert_eq!(review_parser()(&ex("a"), "ok [4/5]").0["score"], 4.0);
        assert!(!review_parser()(&ex("a"), "ok [9]").1);
    }

    /// A teacher's own temperature applies to single-sample stages; a stage sampling K chains
    /// of thought keeps its temperature, or K samples at 0 collapse into one.
    #[test]
    fn sampling_stages_keep_their_temperature_over_the_teachers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(std::sync::Mutex::new(
            mentor_store::Store::open(dir.path().join("s.sqlite")).unwrap(),
        ));
        let mut opts = mentor_teacher::TeacherOptions::new("cold");
        opts.temperature = Some(0.0);
        let cold = Teacher::new(
            opts,
            Arc::new(mentor_teacher::replay::ReplayBackend::new("r")),
            store,
            Arc::new(mentor_teacher::Budget::default()),
        );
        let job = Job {
            example: ex("1"),
            sample: 2,
            system: "s".into(),
            user: "u".into(),
            teacher: None,
            context: serde_json::Value::Null,
        };
        let k = AnnotateSpec {
            samples: 5,
            temperature: Some(0.7),
            ..AnnotateSpec::default()
        };
        assert_eq!(teacher_request(&cold, &job, "d", &k).temperature, Some(0.7));
        let one = AnnotateSpec { samples: 1, ..k };
        assert_eq!(
            teacher_request(&cold, &job, "d", &one).temperature,
            Some(0.0)
        );
    }
}
