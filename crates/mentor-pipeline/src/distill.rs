//! The whole loop of a recipe as the pipeline runs it — data, teacher stages (or rounds), the
//! untrained student scored, training, the trained student scored, examples, summary and report —
//! each stage resumable, everything left in the run directory.

use crate::config::Config;
use crate::{run, teachers};
use anyhow::{Context, Result};
use mentor_core::{extract::extract, score_prediction, ScoreSummary, Split};
use mentor_data::Dataset;
use mentor_methods::evaluate::EvalReport;
use mentor_methods::recipe::RecipeName;
use mentor_methods::recipes::RecipeExt;
use mentor_methods::trainset::{StudentTask, TrainPair};
use mentor_store::{Annotation, Store};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `mentor distill` may change about a configured run.
#[derive(Debug, Clone, Default)]
pub struct DistillOptions {
    /// Override the config's seeds (training, recipe draws, sampling); the teacher's stays.
    pub seed: Option<u64>,
    /// Skip scoring the untrained student.
    pub no_before: bool,
    /// Score at most this many test items (before and after).
    pub eval_limit: Option<usize>,
}

/// A finished run: its summary (also RUN/summary.json) and a few lines for a person.
pub struct Distilled {
    pub summary: serde_json::Value,
    pub human: String,
}

/// The quickstart's config (also shipped as `examples/quickstart.toml`).
pub const QUICKSTART: &str = include_str!("../../../examples/quickstart.toml");

/// The quickstart's config, resized: `--quick` takes a quarter of the questions, `--scale`
/// multiplies them (every split limit it sets, and the validation items scored in training).
pub fn quickstart_config(quick: bool, scale: f64) -> Result<Config> {
    if !(scale.is_finite() && scale > 0.0) {
        anyhow::bail!("--scale must be a positive number, not {scale}");
    }
    let mut cfg = Config::parse(QUICKSTART, Path::new("examples/quickstart.toml"))?;
    let factor = scale * if quick { 0.25 } else { 1.0 };
    let resize = |n: usize| (n as f64 * factor).round().max(4.0) as usize;
    let d = &mut cfg.data;
    for limit in [
        &mut d.limit,
        &mut d.train_limit,
        &mut d.valid_limit,
        &mut d.test_limit,
    ] {
        *limit = limit.map(resize);
    }
    cfg.eval.valid_limit = resize(cfg.eval.valid_limit);
    if quick {
        cfg.train.epochs = 1.0;
        cfg.train.eval_every = 2;
        cfg.eval.valid_limit = cfg.eval.valid_limit.min(12);
    }
    Ok(cfg)
}

/// The whole loop of a configured recipe in `run_dir`; rerun, it resumes.
pub fn distill(cfg: Config, run_dir: PathBuf, a: &DistillOptions) -> Result<Distilled> {
    Ok(distill_scored(cfg, run_dir, a)?.0)
}

/// [`distill`], also returning the trained student's test scores question by question (what
/// the `[baseline]` comparison pairs).
fn distill_scored(
    mut cfg: Config,
    run_dir: PathBuf,
    a: &DistillOptions,
) -> Result<(Distilled, EvalReport)> {
    if let Some(seed) = a.seed {
        cfg.train.seed = seed;
        cfg.recipe.seed = seed;
        cfg.eval.seed = seed;
    }
    let config_json = serde_json::to_string(&cfg)?;
    let r = run::open_with(cfg, run_dir.clone(), &config_json)?;
    // wall-clock seconds per stage of this invocation (a resumed stage counts what it redid)
    // and the process's peak resident memory when each stage ended (it only grows: the stage
    // where it jumps is the one that needed it)
    let mut timings = serde_json::Map::new();
    let mut peak_rss = serde_json::Map::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &str| {
        timings.insert(name.into(), json!(clock.elapsed().as_secs_f64()));
        if let Some(mb) = peak_rss_mb() {
            peak_rss.insert(name.into(), json!(mb));
        }
        clock = std::time::Instant::now();
    };
    let recorded = import_recorded(&mut r.store.lock().unwrap(), &r.ds)?;
    let mut teacher_stages = serde_json::Map::new();
    // what the user must see on screen and in summary.json (e.g. replies cut at the limit)
    let mut warnings: Vec<String> = vec![];
    let elad = r.cfg.recipe.name == RecipeName::Elad;
    // rounds after round 0, where the student feeds the next annotation (crate::rounds)
    let rounds = match r.cfg.recipe.name {
        RecipeName::Elad => Some(r.cfg.recipe.rounds),
        RecipeName::Mapd if r.cfg.recipe.mining_rounds > 1 => Some(r.cfg.recipe.mining_rounds - 1),
        _ => None,
    };
    if !r.cfg.recipe.teacher_stages().is_empty() {
        // dropped at the end of this block: an embedded teacher's model (GBs) is freed before
        // the student trains (the rounds build their own)
        let teachers = teachers::for_run(&r)?;
        // Round 0 is annotated here, once (a finished round is never asked again): ELAD's seed
        // set, MAPD's first mining pass; the later rounds ask in crate::rounds
        let items = if rounds.is_some() && crate::rounds::round_done(&r, 0)? {
            vec![]
        } else if elad {
            crate::elad::seed_items(&r)
        } else {
            r.ds.split(Split::Train).to_vec()
        };
        for (stage, rep) in crate::annotate::annotate_items(&r, &teachers, &items)? {
            if let Some(why) = &rep.stopped {
                anyhow::bail!("teacher stage {stage} stopped early ({why}); rerun to resume");
            }
            if rep.total().failed > 0 {
                tracing::warn!(
                    "teacher stage {stage}: {} calls failed ({:?}); they are retried on rerun",
                    rep.total().failed,
                    rep.failures
                );
            }
            for note in crate::annotate::truncation_notes(&r.cfg, r.ds.task, &stage, &rep) {
                tracing::warn!("{note}");
                warnings.push(note);
            }
            teacher_stages.insert(stage, serde_json::to_value(rep.total())?);
        }
    }
    lap("teachers");
    let mode = crate::train::default_mode(&r);
    let before = if a.no_before {
        None
    } else {
        let (rep, _, _) =
            crate::eval::eval_model(&r, &r.cfg.student.model, Split::Test, mode, a.eval_limit)?;
        Some(rep)
    };
    lap("eval_before");
    let mut curve = None;
    let trained = if let Some(n) = rounds {
        let o = if elad {
            crate::rounds::run_rounds(&r, n, &crate::elad::Elad)?
        } else {
            crate::rounds::run_rounds(&r, n, &crate::mapd::Mapd)?
        };
        let mut c = json!({
            "recipe": r.cfg.recipe.name.as_str(),
            "best_round": o.best_round,
            "tested_round": o.tested_round,
            "stopped": o.stopped,
            "points": o.points,
        });
        if elad {
            c["selection"] = json!(r.cfg.recipe.selection.as_str());
            c["revise"] = json!(r.cfg.recipe.revise);
        }
        curve = Some(c);
        o.tested
    } else {
        crate::train::train_student(&r)?
    };
    if trained.stopped_early {
        anyhow::bail!("training interrupted; rerun the same command to resume");
    }
    let model = trained.model_dir.display().to_string();
    lap("train");
    let (after, predictions, _) =
        crate::eval::eval_model(&r, &model, Split::Test, mode, a.eval_limit)?;
    lap("eval_after");
    // the honest comparison: the same student on the same questions' gold labels alone
    let baseline = if r.cfg.baseline.standard {
        let (b, scored) = distill_scored(
            standard_baseline(&r.cfg),
            run_dir.join("baseline-standard"),
            &DistillOptions {
                no_before: true,
                ..a.clone()
            },
        )?;
        Some((b.summary, scored))
    } else {
        None
    };
    lap("baseline");
    let seed = r.cfg.train.seed;
    let mut paired = serde_json::Map::new();
    if let Some(before) = &before {
        paired.insert(
            "distilled_vs_untrained".into(),
            paired_diff(before, &after, seed),
        );
    }
    if let Some((_, standard)) = &baseline {
        paired.insert(
            "distilled_vs_standard".into(),
            paired_diff(standard, &after, seed),
        );
    }
    let ledger = r.store.lock().unwrap().ledger()?;
    let (calls, tokens, cost) = ledger.iter().fold((0, 0, 0.0), |(c, t, d), l| {
        (
            c + l.calls_ok + l.calls_failed,
            t + l.prompt_tokens + l.completion_tokens,
            d + l.cost_usd,
        )
    });
    let acc = |e: &mentor_methods::evaluate::EvalReport| json!({ "n": e.n, "correct": e.correct, "accuracy": e.accuracy, "ci95": e.ci95, "unparseable": e.unparseable });
    // validation accuracy on few questions picks noise: say how many, and the best score's
    // interval, so the report can show how certain the choice of checkpoint was
    let valid_n = r.ds.split(Split::Valid).len().min(r.cfg.eval.valid_limit);
    let stages: Vec<_> = trained.stages.iter().map(|s| json!({
        "stage": s.stage, "examples": s.examples, "steps": s.report.steps, "best_step": s.report.best_step,
        "best_valid_metric": s.report.best_metric, "final_train_loss": s.report.final_train_loss, "final_valid_loss": s.report.final_valid_loss,
        "valid_n": valid_n,
        "best_valid_ci95": s.report.best_metric.filter(|m| valid_n > 0 && (0.0..=1.0).contains(m))
            .map(|m| mentor_core::score::wilson_interval((m * valid_n as f64).round() as usize, valid_n)),
        "truncated_examples": s.report.truncated_examples,
    })).collect();
    let summary = json!({
        "run_dir": run_dir, "recipe": r.cfg.recipe.name.as_str(), "dataset": r.ds.name, "task": r.ds.task,
        "splits": { "train": r.ds.counts()[0], "valid": r.ds.counts()[1], "test": r.ds.counts()[2] },
        "recorded_teacher": recorded,
        "teacher_stages": teacher_stages,
        "teacher": { "calls": calls, "tokens": tokens, "cost_usd": cost },
        "training_set": trained.set.stats,
        "training": stages,
        "student": model,
        "eval_mode": mode,
        "accuracy_before": before.as_ref().map(acc),
        "accuracy_after": acc(&after),
        "baseline_standard": baseline.as_ref().map(|(b, standard)| json!({
            "run_dir": b["run_dir"], "accuracy": acc(standard), "training_set": b["training_set"],
            "training": b["training"],
        })),
        "paired": if paired.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(paired.clone()) },
        "predictions": predictions,
        "rounds": curve,
        // what `mentor compare` and `mentor sweep` read: the exact config and the code
        "warnings": warnings,
        "seed": r.cfg.train.seed,
        "config": serde_json::from_str::<serde_json::Value>(&config_json)?,
        "mentor": crate::build_info(),
    });
    let examples = side_by_side(&r, &model, &trained.set.pairs, 3)?;
    let mut summary = summary;
    summary["examples"] = json!(examples.len());
    lap("examples");
    summary["seconds"] = json!(timings);
    summary["peak_rss_mb"] = json!(peak_rss);
    summary["report"] = json!(run_dir.join("report.html"));
    write_summary(&run_dir, &summary)?;
    let report = crate::report::write_report(&run_dir)?;
    let pct = |e: &mentor_methods::evaluate::EvalReport| {
        format!(
            "{:.1}% {} (n={})",
            100.0 * e.accuracy,
            mentor_core::score::format_interval(e.ci95),
            e.n
        )
    };
    let mut human = format!(
        "run {}: {} on {} ({})\nteacher: {calls} calls, {tokens} tokens, ${cost:.4}\ntraining set: {:?}\ntest accuracy ({}): before {} → after {}\nstudent: {model}\nsummary: {}\nreport: {}",
        run_dir.display(),
        r.cfg.recipe.name.as_str(),
        r.ds.name,
        r.ds.task,
        trained.set.stats.pairs,
        mode.as_str(),
        before.as_ref().map_or("not measured".into(), pct),
        pct(&after),
        run_dir.join("summary.json").display(),
        report.display()
    );
    if let Some((_, standard)) = &baseline {
        human += &format!(
            "\nstandard fine-tuning on the gold labels (same questions, no teacher): {}",
            pct(standard)
        );
    }
    for (name, what) in [
        ("distilled_vs_untrained", "distilled − untrained"),
        ("distilled_vs_standard", "distilled − standard"),
    ] {
        if let Some(d) = paired.get(name) {
            human += &format!(
                "\n{what}: {:+.1} points [{:+.1}, {:+.1}] paired over {} questions (McNemar p {})",
                100.0 * d["diff"].as_f64().unwrap_or(0.0),
                100.0 * d["ci95"][0].as_f64().unwrap_or(0.0),
                100.0 * d["ci95"][1].as_f64().unwrap_or(0.0),
                d["n"],
                match d["mcnemar_p"].as_f64().unwrap_or(1.0) {
                    p if p < 0.001 => "< 0.001".to_string(),
                    p => format!("= {p:.3}"),
                }
            );
        }
    }
    for w in &warnings {
        human += &format!("\nwarning: {w}");
    }
    Ok((Distilled { summary, human }, after))
}

/// The process's peak resident set so far, in MB (Linux: `VmHWM` of /proc/self/status).
fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// The `[baseline] standard` run's config: the same data, student, training and evaluation, the
/// `standard` recipe on gold labels, no teacher and no token-level distillation.
fn standard_baseline(cfg: &Config) -> Config {
    let mut b = cfg.clone();
    // the label is written as the distilled student's is: only the teacher differs
    b.recipe = mentor_methods::recipe::Recipe {
        name: RecipeName::Standard,
        label_source: mentor_methods::recipe::LabelSource::Gold,
        choice_label: cfg.recipe.choice_label,
        seed: cfg.recipe.seed,
        ..Default::default()
    };
    b.teachers.clear();
    b.baseline = Default::default();
    b
}

/// `b − a` over the test questions both scored (by id): the mean difference with its paired
/// bootstrap 95 % interval, the 2×2 table and McNemar's exact p.
fn paired_diff(a: &EvalReport, b: &EvalReport, seed: u64) -> serde_json::Value {
    use mentor_core::stats::{mcnemar_exact, paired_bootstrap, PairTable};
    let a_by_id: std::collections::HashMap<&str, bool> =
        a.items.iter().map(|i| (i.id.as_str(), i.correct)).collect();
    let (va, vb): (Vec<bool>, Vec<bool>) = b
        .items
        .iter()
        .filter_map(|i| a_by_id.get(i.id.as_str()).map(|&x| (x, i.correct)))
        .unzip();
    let t = PairTable::new(&va, &vb);
    let iv = paired_bootstrap(&[(&va, &vb)], 10_000, seed);
    json!({
        "n": t.n(), "diff": iv.estimate, "ci95": [iv.lo, iv.hi],
        "mcnemar_p": mcnemar_exact(t.only_a, t.only_b), "table": t,
        "excludes_zero": iv.lo > 0.0 || iv.hi < 0.0,
    })
}

/// Teacher and trained student side by side on up to `n` training questions (the only ones with
/// a teacher text): the student answers each pair's prompt greedily. Written to
/// `RUN/examples.jsonl` for the report.
fn side_by_side(
    r: &run::Run,
    model: &str,
    pairs: &[TrainPair],
    n: usize,
) -> Result<Vec<mentor_report::SideBySide>> {
    // prefer what the teacher wrote (rationales, chains of thought) over labels
    let rank = |t: StudentTask| match t {
        StudentTask::Rationale | StudentTask::Cot => 0,
        StudentTask::Feedback => 1,
        _ => 2,
    };
    let mut picked: Vec<&TrainPair> = vec![];
    for want in 0..3 {
        for p in pairs.iter().filter(|p| rank(p.task) == want) {
            if picked.len() < n && !picked.iter().any(|q| q.example_id == p.example_id) {
                picked.push(p);
            }
        }
    }
    if picked.is_empty() {
        return Ok(vec![]);
    }
    let loaded = crate::models::load_for_inference(model)?;
    let reqs = picked
        .iter()
        .map(|p| {
            let ids = mentor_methods::student::prompt_ids(&loaded.tokenizer, &p.prompt)?;
            let params = mentor_model::SamplingParams {
                max_new_tokens: r.cfg.eval.max_new_tokens,
                temperature: 0.0,
                ..Default::default()
            };
            Ok((ids, params))
        })
        .collect::<Result<Vec<_>>>()?;
    let gens = mentor_model::generate(
        &loaded.model,
        &loaded.tokenizer,
        &reqs,
        reqs.len(),
        &mut |_| {},
    )?;
    let by_id: std::collections::HashMap<&str, &mentor_core::Example> =
        r.ds.iter().map(|(_, e)| (e.id.as_str(), e)).collect();
    let mut out = vec![];
    let mut lines = String::new();
    for (p, g) in picked.iter().zip(gens) {
        let ex = by_id.get(p.example_id.as_str());
        let e = mentor_report::SideBySide {
            id: p.example_id.clone(),
            question: p.prompt.clone(),
            gold: ex.map(|e| e.answer.to_string()).unwrap_or_default(),
            teacher: p.target.clone(),
            student: g.text,
        };
        lines += &serde_json::to_string(&e)?;
        lines.push('\n');
        out.push(e);
    }
    mentor_model::load::write_atomic(&r.dir.join("examples.jsonl"), lines.as_bytes())?;
    Ok(out)
}

/// Stores recorded teacher outputs as annotations (parsed answer, correctness) and returns the
/// recorded teacher's accuracy per split.
fn import_recorded(store: &mut Store, ds: &Dataset) -> Result<serde_json::Value> {
    if ds.recorded.is_empty() {
        return Ok(json!({}));
    }
    let split_of: std::collections::HashMap<&str, (Split, &mentor_core::Example)> =
        ds.iter().map(|(s, e)| (e.id.as_str(), (s, e))).collect();
    let mut per_split: std::collections::BTreeMap<Split, Vec<mentor_core::Score>> =
        Default::default();
    for r in &ds.recorded {
        let Some(&(split, ex)) = split_of.get(r.example_id.as_str()) else {
            continue;
        };
        let score = score_prediction(ds.task, ex, &r.text, Default::default());
        let extracted = extract(ds.task, &r.text, ex, Default::default());
        store.add_annotation(&Annotation {
            dataset: ds.name.clone(),
            example_id: ex.id.clone(),
            stage: "recorded".into(),
            kind: "rationale".into(),
            source: format!("recorded:{}", r.source),
            round: 0,
            sample_index: 0,
            call_id: None,
            text: r.text.clone(),
            parsed: Some(json!({ "answer": extracted.answer, "correct": score.correct })),
            parse_ok: score.parsed,
        })?;
        per_split.entry(split).or_default().push(score);
    }
    let mut out = serde_json::Map::new();
    for (split, scores) in per_split {
        let s = ScoreSummary::from_scores(&scores);
        out.insert(
            split.to_string(),
            json!({ "n": s.n, "accuracy": s.accuracy, "unparseable": s.unparseable }),
        );
    }
    Ok(serde_json::Value::Object(out))
}

fn write_summary(run_dir: &Path, summary: &serde_json::Value) -> Result<()> {
    let path = run_dir.join("summary.json");
    let tmp = run_dir.join("summary.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(summary)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mentor_methods::evaluate::{InferenceMode, ItemResult};
    use mentor_methods::recipe::ChoiceLabel;

    fn report(items: &[(&str, bool)]) -> EvalReport {
        let correct = items.iter().filter(|(_, c)| *c).count();
        EvalReport {
            mode: InferenceMode::Label,
            n: items.len(),
            correct,
            unparseable: 0,
            accuracy: correct as f64 / items.len() as f64,
            ci95: [0.0, 1.0],
            new_tokens: 0,
            items: items
                .iter()
                .map(|(id, c)| ItemResult {
                    id: id.to_string(),
                    output: String::new(),
                    answer: None,
                    correct: *c,
                    votes: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn quick_and_scale_resize_every_split_the_quickstart_sets() {
        let full = quickstart_config(false, 1.0).unwrap();
        let quick = quickstart_config(true, 1.0).unwrap();
        let twice = quickstart_config(false, 2.0).unwrap();
        let d = |c: &Config| {
            [
                c.data.limit,
                c.data.train_limit,
                c.data.valid_limit,
                c.data.test_limit,
            ]
        };
        let set: Vec<usize> = d(&full).into_iter().flatten().collect();
        assert!(!set.is_empty(), "the quickstart limits its splits");
        for (f, (q, t)) in d(&full).iter().zip(d(&quick).iter().zip(d(&twice).iter())) {
            match f {
                Some(f) => {
                    assert_eq!(q.unwrap(), (*f as f64 / 4.0).round().max(4.0) as usize);
                    assert_eq!(t.unwrap(), 2 * f);
                }
                None => assert!(q.is_none() && t.is_none()),
            }
        }
        assert!(quick.eval.valid_limit <= full.eval.valid_limit);
        assert_eq!(quick.train.epochs, 1.0);
    }

    #[test]
    fn the_standard_baseline_learns_the_same_labels_without_the_teacher() {
        let cfg = quickstart_config(false, 1.0).unwrap();
        assert_eq!(cfg.recipe.choice_label, ChoiceLabel::Text);
        let b = standard_baseline(&cfg);
        assert_eq!(b.recipe.name, RecipeName::Standard);
        assert_eq!(b.recipe.choice_label, cfg.recipe.choice_label);
        assert!(b.teachers.is_empty());
        assert_eq!(
            (b.train.epochs, b.train.lr),
            (cfg.train.epochs, cfg.train.lr)
        );
        assert_eq!(b.data, cfg.data);
        assert_eq!(b.student.model, cfg.student.model);
    }

    #[test]
    fn paired_diff_is_b_minus_a_over_the_questions_both_scored() {
        // b is in another order and has a question a lacks: pairs are matched by id
        let a = report(&[("q1", true), ("q2", false), ("q3", false), ("q4", false)]);
        let b = report(&[
            ("q4", true),
            ("q3", true),
            ("q9", true),
            ("q2", false),
            ("q1", true),
        ]);
        let d = paired_diff(&a, &b, 0);
        assert_eq!(d["n"], 4);
        assert!((d["diff"].as_f64().unwrap() - 0.5).abs() < 1e-12, "{d}");
        assert_eq!(
            d["table"],
            json!({ "both_right": 1, "only_a": 0, "only_b": 2, "both_wrong": 1 })
        );
        let p = d["mcnemar_p"].as_f64().unwrap();
        assert!((p - 0.5).abs() < 1e-12, "{p}");
        let back = paired_diff(&b, &a, 0);
        assert!((back["diff"].as_f64().unwrap() + 0.5).abs() < 1e-12);
    }
}
