//! Annotation as the pipeline runs it: a recipe's teacher stages over a run's items (MAPD's
//! mining first), one list of jobs, on a small runtime that a first Ctrl-C stops cleanly, with a
//! progress bar per stage.

use crate::progress::items_bar;
use crate::run;
use anyhow::{bail, Result};
use mentor_methods::annotate::{annotate_recipe, AnnotateReport, AnnotateSpec};
use mentor_methods::recipes::RecipeExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What MAPD's mining asks the student in `round`: the teacher's chain-of-thought request for
/// the untrained student of round 0, the `solve:` prompt it was trained on after that.
pub fn mining_prompt(
    prompts: &mentor_core::prompt::Prompts,
    kind: mentor_core::TaskKind,
    e: &mentor_core::Example,
    round: u32,
) -> Result<String> {
    use mentor_methods::trainset::{student_prompt, StudentTask};
    if round == 0 {
        let (_, user) = prompts
            .cot(kind, e)
            .map_err(|e| anyhow::anyhow!("prompt template `cot`: {e}"))?;
        Ok(user)
    } else {
        Ok(student_prompt(StudentTask::Cot, kind, e, ""))
    }
}

/// The request settings shared by a recipe's teacher stages.
pub fn base_spec(cfg: &crate::config::Config) -> AnnotateSpec {
    let temperature = cfg.annotating_teachers().find_map(|(_, t)| t.temperature);
    let max_tokens = cfg
        .annotating_teachers()
        .find_map(|(_, t)| t.max_tokens)
        .unwrap_or(512);
    AnnotateSpec {
        temperature,
        max_tokens,
        seed: cfg.recipe.teacher_seed,
        ..AnnotateSpec::default()
    }
}

/// What to tell a user whose teacher replies were cut at the token limit: per stage and teacher,
/// how many, the limit, the setting to raise, and for a paid teacher what re-asking those items
/// at twice the limit would cost at most. Empty when nothing was cut.
pub fn truncation_notes(
    cfg: &crate::config::Config,
    task: mentor_core::TaskKind,
    stage: &str,
    rep: &AnnotateReport,
) -> Vec<String> {
    let default_limit = base_spec(cfg).max_tokens;
    rep.teachers
        .iter()
        .filter(|(_, t)| t.truncated > 0)
        .map(|(name, t)| {
            let tc = cfg.teachers.get(name);
            let limit = tc
                .and_then(|t| crate::teachers::reply_limit(t, task))
                .unwrap_or(default_limit);
            let replies = t.done + t.already;
            let mut note = format!(
                "teacher `{name}`, stage {stage}: {} of {replies} replies were cut at the token limit ({limit} tokens) and are not trained on; raise `[teachers.{name}] max_tokens`",
                t.truncated
            );
            if let Some(price) = tc
                .and_then(crate::teachers::pricing)
                .map(|p| p.output_per_mtok)
                .filter(|p| *p > 0.0)
            {
                let usd = t.truncated as f64 * 2.0 * limit as f64 * price / 1e6;
                note += &format!(" (re-asking them at {} tokens costs at most ${usd:.2} in output)", 2 * limit);
            }
            note
        })
        .collect()
}

/// MAPD's mistake mining, round `round`: the answers of `student` (a model spec) to `items` into
/// the store, at temperature 0.3 / top-p 0.9, or the dataset's recorded answers in round 0
/// when `mistakes_from = "recorded"`. Items already answered in this round are kept.
pub fn mine(
    r: &run::Run,
    items: &[mentor_core::Example],
    round: u32,
    student: &str,
) -> Result<usize> {
    use mentor_methods::annotate::record_student_answers;
    use mentor_methods::recipe::{MistakesFrom, MINE_STAGE};
    let done: std::collections::HashSet<String> = r
        .store
        .lock()
        .unwrap()
        .annotations(MINE_STAGE.0, MINE_STAGE.1)?
        .into_iter()
        .filter(|a| a.round == round)
        .map(|a| a.example_id)
        .collect();
    let todo: Vec<&mentor_core::Example> = items.iter().filter(|e| !done.contains(&e.id)).collect();
    if todo.is_empty() {
        return Ok(0);
    }
    // recorded answers are the untrained student's: later rounds mine the trained one
    let from = match round {
        0 => r.cfg.recipe.mistakes_from,
        _ => MistakesFrom::Student,
    };
    let (answers, source) = match from {
        MistakesFrom::Recorded => {
            let by_id: std::collections::HashMap<&str, &mentor_data::RecordedOutput> =
                r.ds.recorded
                    .iter()
                    .map(|o| (o.example_id.as_str(), o))
                    .collect();
            let answers: Vec<_> = todo
                .iter()
                .filter_map(|e| {
                    by_id
                        .get(e.id.as_str())
                        .map(|o| ((*e).clone(), o.text.clone()))
                })
                .collect();
            if answers.is_empty() {
                bail!(
                    "recipe.mistakes_from = \"recorded\", but `{}` has no recorded student answers",
                    r.ds.name
                );
            }
            let source = by_id
                .values()
                .next()
                .map(|o| o.source.clone())
                .unwrap_or_default();
            (answers, source)
        }
        MistakesFrom::Student => {
            use mentor_model::SamplingParams;
            let loaded = crate::models::load_for_inference(student)?;
            // Round 0's untrained student answers the bare request (few-shot examples are for
            // teachers); a trained student is asked with `solve:`, the prompt it was trained on
            // and is scored with.
            let prompts = r.cfg.prompts()?;
            let mut reqs = vec![];
            for (i, e) in todo.iter().enumerate() {
                let user = mining_prompt(&prompts, r.ds.task, e, round)?;
                let ids = mentor_methods::student::prompt_ids(&loaded.tokenizer, &user)?;
                let params = SamplingParams {
                    max_new_tokens: r.cfg.eval.max_new_tokens,
                    temperature: 0.3,
                    top_p: 0.9,
                    seed: r.cfg.recipe.seed + round as u64 * 1_000_003 + i as u64,
                    ..Default::default()
                };
                reqs.push((ids, params));
            }
            let bar = items_bar(reqs.len() as u64, &format!("mine round {round}"));
            let gens = mentor_model::generate(
                &loaded.model,
                &loaded.tokenizer,
                &reqs,
                r.cfg.eval.batch,
                &mut |n| bar.inc(n as u64),
            )?;
            bar.finish_and_clear();
            let answers = todo
                .iter()
                .zip(gens)
                .map(|(e, g)| ((*e).clone(), g.text))
                .collect();
            (answers, "student".to_string())
        }
    };
    Ok(record_student_answers(
        &r.store, &r.ds.name, r.ds.task, &answers, &source, round,
    )?)
}

/// Runs the recipe's teacher stages over `items` with a progress bar per stage; Ctrl-C finishes
/// the calls in flight and stops (a second Ctrl-C quits at once).
pub fn annotate_items(
    r: &run::Run,
    teachers: &[Arc<mentor_teacher::Teacher>],
    items: &[mentor_core::Example],
) -> Result<Vec<(String, AnnotateReport)>> {
    annotate_round(r, teachers, items, 0, &r.cfg.student.model)
}

/// [`annotate_items`] as round `round`; MAPD first mines the mistakes of `student` (a model spec).
pub fn annotate_round(
    r: &run::Run,
    teachers: &[Arc<mentor_teacher::Teacher>],
    items: &[mentor_core::Example],
    round: u32,
    student: &str,
) -> Result<Vec<(String, AnnotateReport)>> {
    if r.cfg.recipe.name == mentor_methods::recipe::RecipeName::Mapd {
        let n = mine(r, items, round, student)?;
        tracing::info!("stage mine (round {round}): {n} new student answers stored");
    }
    let prompts = r.prompts()?;
    let base = AnnotateSpec {
        round,
        ..base_spec(&r.cfg)
    };
    let mut bar = StageBar::default();
    let stages = r.cfg.recipe.teacher_stages();
    let stages = interruptible(|stop| {
        Box::pin(annotate_recipe(
            r.store.clone(),
            teachers,
            &r.ds.name,
            r.ds.task,
            items,
            &prompts,
            &r.cfg.recipe,
            &stages,
            &base,
            stop,
            |stage: &str, units: u64, rep: &AnnotateReport| bar.update(stage, units, rep),
        ))
    })??;
    Ok(stages)
}

/// Runs one list of teacher jobs (`name` for the progress bar) through the annotation stage,
/// resumable and interruptible as [`annotate_items`].
pub fn annotate_jobs(
    r: &run::Run,
    teachers: &[Arc<mentor_teacher::Teacher>],
    name: &str,
    jobs: &[mentor_methods::annotate::Job],
    spec: &AnnotateSpec,
    parser: mentor_methods::annotate::Parser,
) -> Result<AnnotateReport> {
    let units = jobs.len() as u64 * teachers.len() as u64;
    let mut bar = StageBar::default();
    let report = interruptible(|stop| {
        Box::pin(mentor_methods::annotate::annotate(
            r.store.clone(),
            teachers,
            &r.ds.name,
            jobs,
            spec,
            parser,
            stop,
            |rep: &AnnotateReport| bar.update(name, units, rep),
        ))
    })??;
    Ok(report)
}

/// Runs an annotation future on a small runtime; the first Ctrl-C sets its stop flag (calls in
/// flight finish and are recorded), a second quits at once.
fn interruptible<'a, T>(
    body: impl FnOnce(Arc<AtomicBool>) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>,
) -> Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    Ok(rt.block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: finishing the calls in flight (Ctrl-C again to quit now); rerun to resume");
                s.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        body(stop).await
    }))
}

/// One progress bar per teacher stage, replaced when the stage changes.
#[derive(Default)]
struct StageBar(Option<(String, indicatif::ProgressBar)>);

impl StageBar {
    fn update(&mut self, stage: &str, units: u64, rep: &AnnotateReport) {
        if self.0.as_ref().is_none_or(|(s, _)| s != stage) {
            if let Some((_, b)) = self.0.take() {
                b.finish_and_clear();
            }
            self.0 = Some((stage.to_string(), items_bar(units, stage)));
        }
        let b = &self.0.as_ref().unwrap().1;
        let t = rep.total();
        b.set_position(t.already + t.done + t.failed + t.not_sent);
        b.set_message(format!(
            "done {} cached {} failed {} ${:.4}",
            t.done + t.already,
            t.cached,
            t.failed,
            t.cost_usd
        ));
    }
}

impl Drop for StageBar {
    fn drop(&mut self) {
        if let Some((_, b)) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds after the first mine the trained student with `solve:`, the prompt it learned
    /// and is scored with, not the teacher's request.
    #[test]
    fn later_mining_rounds_ask_with_the_trained_prompt() {
        let prompts = mentor_core::prompt::Prompts::default();
        let e = mentor_core::Example {
            id: "1".into(),
            question: "Tom has 3 apples and eats 1. How many are left?".into(),
            answer: "2".into(),
            choices: vec![],
            explanation: None,
        };
        let kind = mentor_core::TaskKind::Numeric;
        let first = mining_prompt(&prompts, kind, &e, 0).unwrap();
        let later = mining_prompt(&prompts, kind, &e, 1).unwrap();
        assert!(!first.starts_with("solve:"), "{first}");
        assert!(
            later.starts_with("solve: ") && later.contains("3 apples"),
            "{later}"
        );
        assert_eq!(later, mining_prompt(&prompts, kind, &e, 4).unwrap());
    }
}
