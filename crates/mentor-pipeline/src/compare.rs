//! Loading finished runs for a paired comparison (`mentor compare`, `mentor sweep`'s table, the
//! report's comparison): each run's summary and per-question test predictions, checked to be on
//! one dataset and in one inference mode, handed to `mentor_report::compare`.

use anyhow::{bail, Context, Result};
use mentor_report::compare::{compare, Comparison, RunScores, SelfJudged, TrainedOn};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The file a `mentor sweep` cell keeps its variant and seed in.
pub const CELL_FILE: &str = "cell.json";

/// What one finished run says about itself, for comparing.
struct Scored {
    scores: RunScores,
    dataset: String,
    mode: String,
}

/// Loads and compares `runs` (run directories). Runs are scored on one dataset; with
/// `across_modes` the variants may be scored in different inference modes (a recipe's own: the
/// comparison is then of which student answers more test questions, each its own way), but the
/// seeds of one variant must share theirs. One of `modes` reads every run's test predictions in
/// that inference mode instead of the one its run was scored in (written by `mentor eval …
/// --mode`); several read each run once per mode, as variants `VARIANT@MODE` (a predictions file
/// once, in its own mode), across modes: the same students scored two ways, which a baseline
/// `@MODE` pairs variant by variant.
pub fn compare_runs(
    runs: &[PathBuf],
    group_by: Option<&str>,
    baseline: Option<&str>,
    resamples: usize,
    bootstrap_seed: u64,
    across_modes: bool,
    modes: &[String],
) -> Result<Comparison> {
    let scored: Vec<Scored> = if modes.len() > 1 {
        let mut scored = vec![];
        for r in runs {
            let per_mode: Vec<Option<&str>> = if r.is_file() {
                vec![None]
            } else {
                modes.iter().map(|m| Some(m.as_str())).collect()
            };
            for m in per_mode {
                let mut s = load_run(r, group_by, m)?;
                s.scores.variant = format!("{}@{}", s.scores.variant, s.mode);
                s.scores.name = format!("{}@{}", s.scores.name, s.mode);
                scored.push(s);
            }
        }
        scored
    } else {
        runs.iter()
            .map(|r| load_run(r, group_by, modes.first().map(String::as_str)))
            .collect::<Result<_>>()?
    };
    let across_modes = across_modes || modes.len() > 1;
    if scored.len() < 2 {
        bail!("give at least two runs to compare (or one run and two modes: --mode cot,vote)");
    }
    let first = &scored[0];
    // a bare predictions file does not say its dataset (its question ids must still match):
    // the runs that do must agree
    let named = scored
        .iter()
        .find(|s| !s.dataset.is_empty())
        .unwrap_or(first);
    for s in &scored[1..] {
        if s.dataset != named.dataset && !s.dataset.is_empty() {
            bail!(
                "run {} was scored on dataset `{}`, {} on `{}`: compare runs of one dataset",
                s.scores.name,
                s.dataset,
                named.scores.name,
                named.dataset
            );
        }
        if s.mode != first.mode && !across_modes && !s.mode.is_empty() && !first.mode.is_empty() {
            bail!(
                "run {} was scored in inference mode `{}`, {} in `{}`: compare runs scored in one mode, \
                 or pass --across-modes to compare students each scored its own way",
                s.scores.name,
                s.mode,
                first.scores.name,
                first.mode
            );
        }
    }
    for (i, a) in scored.iter().enumerate() {
        if let Some(b) = scored[..i]
            .iter()
            .find(|b| b.scores.variant == a.scores.variant && b.mode != a.mode)
        {
            bail!(
                "runs {} and {} of variant `{}` were scored in different inference modes (`{}`, `{}`)",
                b.scores.name,
                a.scores.name,
                a.scores.variant,
                b.mode,
                a.mode
            );
        }
    }
    let scores: Vec<RunScores> = scored.into_iter().map(|s| s.scores).collect();
    Ok(compare(&scores, baseline, resamples, bootstrap_seed)?)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: is it a run that `mentor distill` finished?",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// The value at a dotted key of a JSON object, as text.
fn dotted(v: &Value, key: &str) -> Option<String> {
    let mut cur = v;
    for part in key.split('.') {
        cur = cur.get(part)?;
    }
    Some(match cur {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The file holding a run's test predictions in `mode`, beside the one its summary names
/// (`<model>.test.<mode>.jsonl`).
pub fn predictions_in_mode(summary_preds: &Path, scored_mode: &str, mode: &str) -> PathBuf {
    let name = summary_preds
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(&format!(".{scored_mode}.jsonl"))
        .unwrap_or(name.trim_end_matches(".jsonl"));
    summary_preds.with_file_name(format!("{stem}.{mode}.jsonl"))
}

/// A predictions file given instead of a run (`RUN/eval/<model>.<split>.<mode>.jsonl`, e.g. the
/// untrained student's from `mentor eval --model`): named after its run directory, its mode
/// read from its name, no seed (a greedy untrained student is the same for every seed, so it
/// pairs with each of them). A validation's answers (`…/valid/step-N.jsonl`) are one too: two
/// checkpoints of a run compared on the validation questions.
fn load_predictions_file(path: &Path) -> Result<Scored> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = file.trim_end_matches(".jsonl");
    let parent = path.parent();
    let name = match parent.and_then(|p| p.file_name()) {
        Some(e) if e == "eval" => parent
            .and_then(Path::parent)
            .and_then(|r| r.file_name())
            .map(|r| r.to_string_lossy().to_string())
            .unwrap_or_else(|| stem.to_string()),
        _ => stem.to_string(),
    };
    // `<model>.<split>.<mode>`; a validation's answers (`valid/step-N.jsonl`) do not say theirs
    let mode = match stem.rsplitn(3, '.').collect::<Vec<_>>()[..] {
        [mode, _, _] => mode.to_string(),
        _ => String::new(),
    };
    let (ids, correct, chars) = read_predictions(path)?;
    Ok(Scored {
        scores: RunScores {
            name: name.clone(),
            variant: name,
            seed: None,
            ids,
            correct,
            valid_accuracy: None,
            valid_curve: vec![],
            best_step: None,
            mode: Some(mode.clone()),
            answer_chars: median_chars(chars).map(|c| c as f64),
            cost: Default::default(),
            trained_on: None,
            self_judged: (mode == "self-eval-vote")
                .then(|| self_judged(path))
                .flatten(),
        },
        dataset: String::new(),
        mode,
    })
}

/// Per-question ids, correctness and answer lengths (where kept) of a predictions file.
pub(crate) fn read_predictions(preds: &Path) -> Result<(Vec<String>, Vec<bool>, Vec<usize>)> {
    let text = std::fs::read_to_string(preds)
        .with_context(|| format!("cannot read the predictions {}", preds.display()))?;
    let (mut ids, mut correct, mut chars) = (vec![], vec![], vec![]);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not valid JSON", preds.display(), i + 1))?;
        let (Some(id), Some(ok)) = (v["id"].as_str(), v["correct"].as_bool()) else {
            bail!("{}:{}: no `id` or `correct`", preds.display(), i + 1);
        };
        ids.push(id.to_string());
        correct.push(ok);
        if let Some(out) = v["output"].as_str() {
            chars.push(out.chars().count());
        }
    }
    Ok((ids, correct, chars))
}

fn load_run(dir: &Path, group_by: Option<&str>, mode: Option<&str>) -> Result<Scored> {
    if dir.is_file() {
        return load_predictions_file(dir);
    }
    let summary = read_json(&dir.join("summary.json"))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string());
    let config = summary.get("config").cloned().unwrap_or(Value::Null);
    let variant = match group_by {
        Some(key) => dotted(&config, key).with_context(|| {
            format!(
                "{}: its config has no key `{key}` to group by (runs from before configs were kept in summary.json cannot be grouped by key)",
                dir.display()
            )
        })?,
        None => read_json(&dir.join(CELL_FILE))
            .ok()
            .and_then(|c| c["variant"].as_str().map(String::from))
            .unwrap_or_else(|| name.clone()),
    };
    let seed = summary["seed"]
        .as_u64()
        .or_else(|| config["train"]["seed"].as_u64());
    let preds = summary["predictions"]
        .as_str()
        .map(PathBuf::from)
        .with_context(|| format!("{}/summary.json names no predictions file", dir.display()))?;
    // the summary's path is as the run saw it (maybe relative to another directory)
    let preds = if preds.exists() {
        preds
    } else {
        dir.join("eval").join(preds.file_name().unwrap_or_default())
    };
    let scored_mode = summary["eval_mode"].as_str().unwrap_or("?").to_string();
    let (preds, mode) = match mode {
        Some(m) if m != scored_mode => {
            let p = predictions_in_mode(&preds, &scored_mode, m);
            // a mode this student was never trained for: say why, not how to score it
            let cannot = serde_json::from_value::<crate::config::Config>(config.clone())
                .ok()
                .and_then(|c| c.check_mode(m).err());
            if let (false, Some(why)) = (p.is_file(), cannot) {
                bail!(
                    "run {} cannot be scored in mode `{m}`: {why:#}",
                    dir.display()
                );
            }
            if !p.is_file() {
                bail!(
                    "run {} has no test predictions in mode `{m}` ({} is missing); score it with `mentor eval {}/config.toml --run-dir {} --split test --mode {m}`",
                    dir.display(),
                    p.display(),
                    dir.display(),
                    dir.display()
                );
            }
            (p, m.to_string())
        }
        _ => (preds, scored_mode),
    };
    let (ids, correct, chars) = read_predictions(&preds)?;
    let answer_chars = median_chars(chars).map(|c| c as f64);
    // wall time over every invocation: a sweep's cell record counts them all, a summary only
    // the last (a resumed stage counts what it redid)
    let cell: Option<Value> = read_json(&dir.join(CELL_FILE)).ok();
    let wall_s = cell
        .as_ref()
        .and_then(|c| c["seconds"].as_f64())
        .filter(|s| *s > 0.0)
        .or_else(|| {
            summary["seconds"]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_f64).sum())
        });
    let peak_rss_mb = summary["peak_rss_mb"].as_object().and_then(|m| {
        m.values()
            .filter_map(Value::as_f64)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
    });
    let teacher = &summary["teacher"];
    let cost = mentor_report::compare::RunCost {
        wall_s,
        peak_rss_mb,
        teacher_calls: teacher["calls"].as_u64(),
        teacher_tokens: teacher["tokens"].as_u64(),
        teacher_usd: teacher["cost_usd"].as_f64(),
    };
    let valid_accuracy = summary["training"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|s| s["best_valid_metric"].as_f64());
    let best_step = summary["training"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|s| s["best_step"].as_u64());
    Ok(Scored {
        scores: RunScores {
            name,
            variant,
            seed,
            ids,
            correct,
            valid_accuracy,
            valid_curve: valid_curve(dir),
            best_step,
            mode: Some(mode.clone()),
            answer_chars,
            cost,
            trained_on: trained_on(&summary["training_set"]),
            // only judged predictions hold verdicts: the others are not read twice
            self_judged: (mode == "self-eval-vote")
                .then(|| self_judged(&preds))
                .flatten(),
        },
        dataset: summary["dataset"].as_str().unwrap_or("?").to_string(),
        mode,
    })
}

/// What the teacher gave a run, from its summary's `training_set` counts (None where the run
/// kept none). MAPD's rationales are counted by its peer review (each teacher's accepted and
/// rejected ones that reach gold); the other recipes' chains of thought by the selection (the
/// distinct ones, less those that do not reach gold).
fn trained_on(st: &Value) -> Option<TrainedOn> {
    let n = |v: &Value| v.as_u64().unwrap_or(0) as usize;
    let pairs = st["pairs"].as_object()?.values().map(n).sum();
    let (cots, cots_right) = match st["review"]["per_teacher"].as_object() {
        Some(teachers) => teachers.values().fold((0, 0), |(c, r), t| {
            (
                c + n(&t["rationales"]),
                r + n(&t["accepted_correct"]) + n(&t["rejected_correct"]),
            )
        }),
        None => {
            let distinct = n(&st["cots"]).saturating_sub(n(&st["cots_duplicate"]));
            (distinct, distinct.saturating_sub(n(&st["cots_wrong"])))
        }
    };
    let verdicts = st["verdicts"]
        .as_object()
        .map_or(0, |m| m.values().map(n).sum());
    Some(TrainedOn {
        pairs,
        cots,
        cots_right,
        cots_truncated: n(&st["cots_truncated"]),
        verdicts,
        verdict_agreement: st["verdict_agreement"].as_f64(),
        verdict_kappa: st["verdict_kappa"].as_f64(),
    })
}

/// A student's verdicts on its own samples against each sample's correctness, from
/// predictions whose votes record both (`self-eval-vote`, from binaries that record each
/// sample's correctness); None otherwise.
fn self_judged(preds: &Path) -> Option<SelfJudged> {
    let text = std::fs::read_to_string(preds).ok()?;
    let mut vs_gold: std::collections::BTreeMap<String, usize> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).ok()?;
        for vote in v["votes"].as_array().into_iter().flatten() {
            let (Some(verdict), Some(right)) =
                (vote["verdict"].as_str(), vote["correct"].as_bool())
            else {
                continue;
            };
            // a sample with no readable answer is neither right nor wrong to judge
            if vote["answer"].is_null() {
                continue;
            }
            let gold = if right { "right" } else { "wrong" };
            *vs_gold.entry(format!("{verdict}|{gold}")).or_default() += 1;
        }
    }
    let judged: usize = vs_gold.values().sum();
    if judged == 0 {
        return None;
    }
    let count = |k: &str| vs_gold.get(k).copied().unwrap_or(0);
    let right = vs_gold
        .iter()
        .filter(|(k, _)| k.ends_with("|right"))
        .map(|(_, c)| c)
        .sum();
    Some(SelfJudged {
        judged,
        called_correct: count("correct|right") + count("correct|wrong"),
        right,
        agreement: Some((count("correct|right") + count("wrong|wrong")) as f64 / judged as f64),
        kappa: mentor_methods::trainset::verdict_kappa(&vs_gold),
    })
}

/// Validation accuracy by step of a run's last training stage (`student/stage-N/log.jsonl`),
/// where it kept the log; empty otherwise.
fn valid_curve(dir: &Path) -> Vec<(u64, f64)> {
    let stages = dir.join("student");
    let last = (0..)
        .map(|k| mentor_methods::student::stage_dir(&stages, k).join("log.jsonl"))
        .take_while(|p| p.is_file())
        .last();
    let Some(text) = last.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return vec![];
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "eval")
        .filter_map(|v| Some((v["log"]["step"].as_u64()?, v["log"]["accuracy"].as_f64()?)))
        .collect()
}

/// The median answer length (the lower middle of an even count); `None` for no answers.
pub fn median_chars(mut lens: Vec<usize>) -> Option<usize> {
    lens.sort_unstable();
    (!lens.is_empty()).then(|| lens[(lens.len() - 1) / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_teachers_side_is_read_from_the_training_sets_counts() {
        // Mind's Mirror: 10 chains, one a duplicate, 3 of the 9 distinct ones wrong; 5 verdicts
        let st = json!({
            "cots": 10, "cots_duplicate": 1, "cots_wrong": 3, "cots_truncated": 2,
            "pairs": {"cot": 6, "self_eval": 5},
            "verdicts": {"correct": 4, "wrong": 1},
            "verdict_agreement": 0.6, "verdict_kappa": 0.25,
        });
        let t = trained_on(&st).unwrap();
        assert_eq!(
            t,
            TrainedOn {
                pairs: 11,
                cots: 9,
                cots_right: 6,
                cots_truncated: 2,
                verdicts: 5,
                verdict_agreement: Some(0.6),
                verdict_kappa: Some(0.25),
            }
        );
        // MAPD counts its rationales by the review, not the selection (which sees none)
        let st = json!({
            "cots": 6, "cots_wrong": 0, "pairs": {"cot": 3},
            "review": {"per_teacher": {
                "a": {"rationales": 3, "accepted_correct": 2, "rejected_correct": 0},
                "b": {"rationales": 3, "accepted_correct": 1, "rejected_correct": 1},
            }},
            "verdicts": {}, "verdict_agreement": null,
        });
        let t = trained_on(&st).unwrap();
        assert_eq!((t.cots, t.cots_right, t.verdicts), (6, 4, 0));
        assert_eq!(t.verdict_kappa, None);
        // a run that kept no training-set counts
        assert_eq!(trained_on(&Value::Null), None);
    }

    #[test]
    fn a_students_verdicts_on_its_own_samples_are_scored_against_their_answers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.test.self-eval-vote.jsonl");
        let vote = |verdict: &str, right: bool| json!({"output": "…", "answer": {"type": "choice", "value": 0}, "verdict": verdict, "weight": 1.0, "correct": right});
        let lines = [
            json!({"id": "1", "correct": true, "votes": [vote("correct", true), vote("wrong", false), vote("correct", false)]}),
            // no verdict, and no readable answer: neither counts
            json!({"id": "2", "correct": false, "votes": [
                {"output": "", "answer": null, "verdict": "correct", "weight": 1.0, "correct": false},
                {"output": "", "answer": {"type": "choice", "value": 1}, "verdict": null, "weight": 1.0, "correct": true},
                vote("correct", true)]}),
        ];
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        std::fs::write(&p, text.join("\n")).unwrap();
        let j = self_judged(&p).unwrap();
        assert_eq!((j.judged, j.called_correct, j.right), (4, 3, 2));
        assert_eq!(j.agreement, Some(0.75));
        // verdicts 3/4 correct, samples 2/4 right: chance 0.5, so κ = (0.75 − 0.5) / 0.5
        assert!((j.kappa.unwrap() - 0.5).abs() < 1e-12, "{:?}", j.kappa);
        // predictions from before votes recorded their correctness: nothing to score
        std::fs::write(&p, r#"{"id": "1", "correct": true, "votes": [{"output": "", "answer": null, "verdict": "correct", "weight": 1.0}]}"#).unwrap();
        assert_eq!(self_judged(&p), None);
    }
}
