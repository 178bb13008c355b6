//! Training as the pipeline runs it: the recipe's training set from the run store, the student
//! trained on it stage by stage (resumable, validation-selected, Ctrl-C saves a checkpoint), with
//! progress, metrics into the store and validation accuracy in the recipe's inference mode.

use crate::progress::items_bar;
use crate::run::Run;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use mentor_core::{Example, Split};
use mentor_methods::evaluate::{evaluate, InferenceMode, ItemResult};
use mentor_methods::recipe::{
    RecipeName, COT_STAGE, FEEDBACK_STAGE, MINE_STAGE, REVIEW_STAGE, REVISE_STAGE, SELF_EVAL_STAGE,
};
use mentor_methods::recipes::RecipeExt;
use mentor_methods::student::{train_stages, StageReport};
use mentor_methods::trainset::{Stored, StudentTask, TrainingSet};
use mentor_model::{Llama, TextTokenizer};
use mentor_train::{EvalLog, Hooks, StepLog};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The recipe's training set over `items`, from the teachers' annotations in the run store.
pub fn training_set(r: &Run, items: &[Example]) -> Result<TrainingSet> {
    Ok(mentor_methods::recipes::training_set(
        &r.cfg.recipe,
        r.ds.task,
        items,
        &stored(r)?,
    ))
}

/// Everything the teachers (and the mined student) said, from the run store.
pub fn stored(r: &Run) -> Result<Stored> {
    let store = r.store.lock().unwrap();
    let get = |(stage, kind): (&str, &str)| store.annotations(stage, kind);
    Ok(Stored {
        cots: get(COT_STAGE)?,
        self_evals: get(SELF_EVAL_STAGE)?,
        mined: get(MINE_STAGE)?,
        feedback: get(FEEDBACK_STAGE)?,
        reviews: get(REVIEW_STAGE)?,
        revisions: get(REVISE_STAGE)?,
    })
}

/// The inference mode a recipe's student is scored in unless `[eval] mode` says otherwise.
pub fn default_mode(r: &Run) -> InferenceMode {
    r.cfg.eval.mode.unwrap_or(r.cfg.recipe.default_mode())
}

pub struct Trained {
    pub set: TrainingSet,
    pub stages: Vec<StageReport>,
    /// The validation-selected model of the last stage (HF directory with tokenizer).
    pub model_dir: PathBuf,
    pub stopped_early: bool,
}

/// Progress, metrics into the store, validation accuracy by generation, Ctrl-C.
struct CliHooks<'a> {
    bar: ProgressBar,
    stage: u32,
    r: &'a Run,
    run_id: i64,
    tok: &'a TextTokenizer,
    valid_items: &'a [Example],
    mode: InferenceMode,
    stop: Arc<AtomicBool>,
    /// The stage's directory: each validation's answers go to `valid/step-N.jsonl` in it.
    dir: PathBuf,
    /// The last validation's answers, until `on_eval` learns their step.
    last_valid: Option<Vec<ItemResult>>,
}

/// The file a validation's answers are kept in, under a stage's directory.
fn valid_answers_file(stage_dir: &std::path::Path, step: u64) -> PathBuf {
    stage_dir.join("valid").join(format!("step-{step}.jsonl"))
}

/// The progress line's step part: the gold loss (`–` on an on-policy step that had no gold
/// batch: all its micro-batches were the student's own samples), the KD term when there is one.
fn step_message(log: &StepLog) -> String {
    let loss = if log.loss.is_finite() {
        format!("loss {:.4}", log.loss)
    } else {
        "loss –".to_string()
    };
    let kd = match log.kd_loss {
        Some(k) => format!(" kd {k:.4}"),
        None => String::new(),
    };
    format!("{loss}{kd} lr {:.2e} {:.1}s/step", log.lr, log.seconds)
}

/// The median length in characters of the answers (0 for none): a student that stops reasoning
/// shows as a fall in it long before it shows in accuracy on a few dozen questions.
fn median_answer_chars(items: &[ItemResult]) -> usize {
    crate::compare::median_chars(items.iter().map(|i| i.output.chars().count()).collect())
        .unwrap_or(0)
}

impl Hooks for CliHooks<'_> {
    fn on_step(&mut self, log: &StepLog, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(log.step);
        self.bar.set_message(step_message(log));
        let mut s = self.r.store.lock().unwrap();
        if log.loss.is_finite() {
            let _ = s.log_metric(
                Some(self.run_id),
                Some(log.step),
                Some("train"),
                "loss",
                log.loss,
            );
        }
        if let Some(kd) = log.kd_loss.filter(|l| l.is_finite()) {
            let _ = s.log_metric(Some(self.run_id), Some(log.step), Some("train"), "kd", kd);
        }
        for (task, l) in &log.task_loss {
            let _ = s.log_metric(
                Some(self.run_id),
                Some(log.step),
                Some("train"),
                &format!("loss/{task}"),
                *l,
            );
        }
    }

    fn on_eval(&mut self, log: &EvalLog) {
        let mut s = self.r.store.lock().unwrap();
        if log.loss.is_finite() {
            let _ = s.log_metric(
                Some(self.run_id),
                Some(log.step),
                Some("valid"),
                "loss",
                log.loss,
            );
        }
        if let Some(a) = log.accuracy {
            let _ = s.log_metric(
                Some(self.run_id),
                Some(log.step),
                Some("valid"),
                "accuracy",
                a,
            );
        }
        let mut answers = String::new();
        if let Some(items) = self.last_valid.take() {
            let chars = median_answer_chars(&items);
            let _ = s.log_metric(
                Some(self.run_id),
                Some(log.step),
                Some("valid"),
                "answer_chars",
                chars as f64,
            );
            answers = format!(", answers {chars} chars (median)");
            // what each checkpoint answered: kept so the choice between them can be read later
            if let Err(e) = write_jsonl(&valid_answers_file(&self.dir, log.step), &items) {
                tracing::warn!("could not keep the validation answers: {e:#}");
            }
        }
        crate::progress::println_above(
            &self.bar,
            format!(
                "stage {} step {}: valid loss {} accuracy {}{answers}{}",
                self.stage,
                log.step,
                if log.loss.is_finite() {
                    format!("{:.4}", log.loss)
                } else {
                    "n/a".into()
                },
                log.accuracy.map_or("n/a".into(), |a| format!("{:.3}", a)),
                if log.best { " (best so far)" } else { "" }
            ),
        );
    }

    fn validate(&mut self, model: &Llama) -> candle_core::Result<Option<f64>> {
        if self.valid_items.is_empty() {
            return Ok(None);
        }
        let rep = evaluate(
            model,
            self.tok,
            self.r.ds.task,
            self.valid_items,
            self.mode,
            &self.r.cfg.eval,
            &mut |_| {},
        )?;
        self.last_valid = Some(rep.items);
        Ok(Some(rep.accuracy))
    }

    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The file in a student directory that lists what it was trained on.
pub const PAIRS_FILE: &str = "pairs.jsonl";

/// Writes the training set as `dir/pairs.jsonl`, one pair a line (example, task, stage,
/// weight, prompt, target), so that what a student learnt from can be read back after the run.
pub fn write_pairs(dir: &std::path::Path, set: &TrainingSet) -> Result<PathBuf> {
    let path = dir.join(PAIRS_FILE);
    write_jsonl(&path, &set.pairs)?;
    Ok(path)
}

/// `rows` as JSON lines at `path`, its directory created.
pub(crate) fn write_jsonl<T: serde::Serialize>(path: &std::path::Path, rows: &[T]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?,
    );
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Builds the training set and trains the configured student on it, resumably.
pub fn train_student(r: &Run) -> Result<Trained> {
    let set = training_set(r, r.ds.split(Split::Train))?;
    train_set(
        r,
        set,
        &r.cfg.student.model,
        &r.dir.join("student"),
        r.cfg.recipe.name.as_str(),
    )
}

/// What became of the teachers' replies, for a training set that came out empty: each count
/// that removed something, and what to do about it.
fn why_empty(st: &mentor_methods::trainset::TrainSetStats, filter_correct: bool) -> String {
    if st.cots == 0 && st.self_evals == 0 && st.review.is_none() {
        return format!(
            "no teacher reply is stored for its {} questions; run `mentor annotate` (or the whole `mentor distill`) first",
            st.items
        );
    }
    let mut parts = vec![format!(
        "{} questions, {} chains of thought stored",
        st.items, st.cots
    )];
    if st.cots_truncated > 0 {
        parts.push(format!(
            "{} cut at the teacher's token limit (raise `[teachers.NAME] max_tokens`)",
            st.cots_truncated
        ));
    }
    if st.cots_unparseable > 0 {
        parts.push(format!("{} with no readable answer", st.cots_unparseable));
    }
    if filter_correct && st.cots_wrong > 0 {
        parts.push(format!(
            "{} reaching a wrong answer (left out: `filter_correct = true`)",
            st.cots_wrong
        ));
    }
    if st.cots_duplicate > 0 {
        parts.push(format!("{} duplicates", st.cots_duplicate));
    }
    if let Some(rv) = &st.review {
        parts.push(format!(
            "{} mistakes, {} with an accepted rationale",
            rv.mistakes, rv.mistakes_with_accepted
        ));
    }
    parts.join("; ")
}

/// Trains `base` (a model spec) on `set` in `out_dir/stage-N`, resumably; `name` labels the
/// training run in the store.
pub fn train_set(
    r: &Run,
    set: TrainingSet,
    base: &str,
    out_dir: &std::path::Path,
    name: &str,
) -> Result<Trained> {
    if set.pairs.is_empty() {
        bail!(
            "the training set of recipe `{}` is empty: {}",
            r.cfg.recipe.name.as_str(),
            why_empty(&set.stats, r.cfg.recipe.filter_correct)
        );
    }
    write_pairs(out_dir, &set)?;
    let (student, tok, _) =
        crate::models::load_student(base, r.cfg.student.tuning(), r.cfg.train.seed)?;
    let teacher = kd_teacher(r, &tok)?;
    let mut train_cfg = r.cfg.train.clone();
    train_cfg.kd = r.cfg.recipe.kd.as_ref().map(|k| k.settings());
    // Validation loss on the gold label task where the recipe has one; accuracy in the
    // recipe's inference mode on up to `valid_limit` items selects the best checkpoint.
    let valid_items: Vec<Example> =
        r.ds.split(Split::Valid)
            .iter()
            .take(r.cfg.eval.valid_limit)
            .cloned()
            .collect();
    let valid_pairs: Vec<_> = if set.pairs.iter().any(|p| p.task == StudentTask::Label) {
        let label_only = mentor_methods::recipe::Recipe {
            name: RecipeName::Standard,
            label_source: mentor_methods::recipe::LabelSource::Gold,
            ..r.cfg.recipe.clone()
        };
        mentor_methods::recipes::training_set(
            &label_only,
            r.ds.task,
            r.ds.split(Split::Valid),
            &Stored::default(),
        )
        .pairs
    } else {
        vec![]
    };
    let mode = default_mode(r);
    let last_stage = set.pairs.iter().map(|p| p.stage).max().unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let s = stop.clone();
        let _ = ctrlc_once(move || {
            tracing::warn!(
                "interrupted: stopping after this step and writing a checkpoint; rerun to resume"
            );
            s.store(true, Ordering::SeqCst);
        });
    }
    let config_json = serde_json::to_string(
        &json!({ "student": r.cfg.student, "recipe": r.cfg.recipe, "train": r.cfg.train }),
    )?;
    let run_id = r
        .store
        .lock()
        .unwrap()
        .start_training_run(name, &config_json)?;
    let mut bars = vec![];
    let stages = train_stages(
        &student,
        teacher.as_ref(),
        &tok,
        &set.pairs,
        &valid_pairs,
        &train_cfg,
        out_dir,
        &mut |stage| {
            let bar = items_bar(0, &format!("train {stage}"));
            bars.push(bar.clone());
            Box::new(CliHooks {
                bar,
                stage,
                r,
                run_id,
                tok: &tok,
                valid_items: if stage == last_stage {
                    &valid_items
                } else {
                    &[]
                },
                mode,
                stop: stop.clone(),
                dir: mentor_methods::student::stage_dir(out_dir, stage),
                last_valid: None,
            })
        },
    );
    for b in bars {
        b.finish_and_clear();
    }
    let stages = match stages {
        Ok(s) => s,
        Err(e) => {
            let _ = r
                .store
                .lock()
                .unwrap()
                .finish_training_run(run_id, false, None, None, None);
            return Err(anyhow!(e).context("training"));
        }
    };
    let last = stages.last().context("no training stage ran")?;
    let stopped_early = last.report.stopped_early;
    let model_dir = last.dir.join("best");
    r.store.lock().unwrap().finish_training_run(
        run_id,
        !stopped_early,
        Some(&model_dir.display().to_string()),
        last.report.best_step,
        last.report.best_metric,
    )?;
    Ok(Trained {
        set,
        stages,
        model_dir,
        stopped_early,
    })
}

/// The model of `[recipe] kd`'s teacher, loaded for inference beside the student, after checking
/// that it reads the student's tokens: token-level distillation compares the two models'
/// distributions over one vocabulary.
fn kd_teacher(r: &Run, student_tok: &TextTokenizer) -> Result<Option<Llama>> {
    use crate::config::TeacherKind;
    let Some(kd) = &r.cfg.recipe.kd else {
        return Ok(None);
    };
    let t = r
        .cfg
        .teachers
        .get(&kd.teacher)
        .with_context(|| format!("[recipe] kd: no [teachers.{}] in the config", kd.teacher))?;
    if t.kind != TeacherKind::Local {
        bail!(
            "[recipe] kd: teacher `{}` is `{:?}`; token-level distillation needs its logits, so an embedded (`kind = \"local\"`) model",
            kd.teacher,
            t.kind
        );
    }
    let spec = t
        .model
        .clone()
        .unwrap_or_else(|| crate::teachers::DEFAULT_LOCAL_TEACHER.into());
    tracing::info!(
        "kd: loading teacher `{}` ({spec}) for its logits",
        kd.teacher
    );
    let m = crate::models::load_quantized_for_inference(&spec)?;
    if !m.tokenizer.same_vocabulary(student_tok) {
        bail!(
            "[recipe] kd: teacher `{}` ({spec}, {} tokens) and student `{}` ({} tokens) do not share a tokenizer; pick a pair of one family (Qwen2.5-Coder-1.5B → Qwen2.5-Coder-0.5B)",
            kd.teacher,
            m.tokenizer.vocab_size(),
            r.cfg.student.model,
            student_tok.vocab_size()
        );
    }
    Ok(Some(m.model))
}

/// Runs `f` on the first Ctrl-C (a second one quits at once with 130).
fn ctrlc_once(f: impl FnOnce() + Send + 'static) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                f();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_without_gold_batches_shows_no_nan() {
        let mut log = StepLog {
            step: 3,
            epoch: 0.1,
            lr: 1e-4,
            loss: 0.53761,
            task_loss: Default::default(),
            grad_norm: 1.0,
            tokens: 100,
            seconds: 2.04,
            kd_loss: None,
            on_policy_batches: None,
        };
        assert_eq!(step_message(&log), "loss 0.5376 lr 1.00e-4 2.0s/step");
        log.kd_loss = Some(0.8123);
        log.loss = f64::NAN;
        log.on_policy_batches = Some(4);
        assert_eq!(step_message(&log), "loss – kd 0.8123 lr 1.00e-4 2.0s/step");
    }

    #[test]
    fn an_empty_training_set_says_what_removed_the_replies() {
        use mentor_methods::trainset::TrainSetStats;
        let none = TrainSetStats {
            items: 8,
            ..Default::default()
        };
        assert!(why_empty(&none, false).contains("run `mentor annotate`"));
        let cut = TrainSetStats {
            items: 8,
            cots: 2,
            cots_truncated: 2,
            cots_wrong: 1,
            ..Default::default()
        };
        let why = why_empty(&cut, false);
        assert!(
            why.contains("2 cut at the teacher's token limit") && why.contains("max_tokens"),
            "{why}"
        );
        assert!(!why.contains("wrong answer"), "{why}");
        assert!(why_empty(&cut, true).contains("1 reaching a wrong answer"));
    }
}
