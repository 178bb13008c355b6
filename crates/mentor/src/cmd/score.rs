//! `mentor score`: accuracy of a predictions file against gold labels.

use crate::output::Summary;
use anyhow::{anyhow, bail, Context, Result};
use mentor_core::{score_prediction, Example, NumericRule, ScoreSummary, Split, TaskKind};
use mentor_data::{load_dataset, read_rows, DatasetSpec};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

/// Score model outputs against gold answers: accuracy, n, unparseable predictions.
///
/// Predictions are JSONL rows `{"id": …, "output": "<raw model text>"}`. Gold is a built-in dataset
/// name (its task kind is known) or a JSONL of `{"id": …, "answer": …}` (multiple choice also
/// needs `"choices"`), which needs --task. Answers are extracted per task kind: numeric follows
/// lm-eval-harness' GSM8K rules (--rule), equation evaluates both sides, multiple choice reads a
/// letter or the option text, nli and yes-no read the label word.
///
/// Example: mentor score --gold svamp --split test --pred preds.jsonl --json
#[derive(clap::Args)]
pub struct Args {
    /// Gold answers: a built-in dataset name, or a JSONL file of {"id", "answer"[, "choices"]}.
    #[arg(long)]
    gold: String,
    /// Predictions JSONL: {"id", "output"} per line.
    #[arg(long)]
    pred: PathBuf,
    /// Task kind: numeric, equation, multiple-choice, nli, yes-no (default: the dataset's).
    #[arg(long)]
    task: Option<TaskKind>,
    /// Only this split of a built-in dataset (train, valid, test).
    #[arg(long)]
    split: Option<Split>,
    /// Numeric extraction: auto, strict-match or flexible-extract (lm-eval-harness' GSM8K filters).
    #[arg(long, default_value = "auto")]
    rule: NumericRule,
    /// Write each prediction's verdict as JSONL here.
    #[arg(long)]
    per_item: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<Summary> {
    let (task, gold) = load_gold(&a)?;
    let by_id: HashMap<&str, &Example> = gold.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut skipped = Vec::new();
    let rows = read_rows(&a.pred, false, &mut skipped)?;
    let mut seen = HashMap::new();
    let mut scores = Vec::with_capacity(rows.len());
    let mut per_item = Vec::new();
    for row in &rows {
        let at = |msg: String| anyhow!("{}:{}: {msg}", a.pred.display(), row.line);
        let id = row.string("id").map_err(at)?;
        let output = row.string("output").map_err(at)?;
        if let Some(first) = seen.insert(id.clone(), row.line) {
            return Err(at(format!("duplicate id `{id}` (first on line {first})")));
        }
        let ex = by_id
            .get(id.as_str())
            .ok_or_else(|| at(format!("id `{id}` is not in the gold set `{}`", a.gold)))?;
        let s = score_prediction(task, ex, &output, a.rule);
        if a.per_item.is_some() {
            per_item.push(json!({ "id": id, "correct": s.correct, "parsed": s.parsed, "predicted": s.predicted, "gold": s.gold }));
        }
        scores.push(s);
    }
    if let Some(path) = &a.per_item {
        let text: String = per_item.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let sum = ScoreSummary::from_scores(&scores);
    let missing = gold.len().saturating_sub(seen.len());
    let human = format!(
        "task {task}: accuracy {:.4}, 95% Wilson interval [{:.4}, {:.4}], {} / {} correct, {} unparseable{}{}",
        sum.accuracy,
        sum.ci95[0],
        sum.ci95[1],
        sum.correct,
        sum.n,
        sum.unparseable,
        if missing > 0 {
            format!(", {missing} gold items have no prediction")
        } else {
            String::new()
        },
        if sum.bad_gold > 0 {
            format!(", {} gold labels unparseable", sum.bad_gold)
        } else {
            String::new()
        },
    );
    Ok(Summary {
        human,
        json: json!({
            "task": task, "n": sum.n, "correct": sum.correct, "accuracy": sum.accuracy, "ci95": sum.ci95,
            "unparseable": sum.unparseable, "bad_gold": sum.bad_gold, "missing_predictions": missing,
            "rule": a.rule,
        }),
    })
}

fn load_gold(a: &Args) -> Result<(TaskKind, Vec<Example>)> {
    let path = PathBuf::from(&a.gold);
    if path.is_file() {
        let task = a
            .task
            .ok_or_else(|| anyhow!("--task is required when --gold is a file"))?;
        let mut skipped = Vec::new();
        let mut out = Vec::new();
        for row in read_rows(&path, false, &mut skipped)? {
            let at = |msg: String| anyhow!("{}:{}: {msg}", path.display(), row.line);
            let choices = match row.get("choices") {
                Some(_) => row.choices("choices").map_err(at)?,
                None => vec![],
            };
            out.push(Example {
                id: row.string("id").map_err(at)?,
                question: String::new(),
                answer: row.string("answer").map_err(at)?,
                choices,
                explanation: None,
            });
        }
        return Ok((task, out));
    }
    if a.gold.ends_with(".jsonl") || a.gold.ends_with(".json") {
        bail!("gold file {} does not exist", a.gold);
    }
    let ds = load_dataset(&DatasetSpec::builtin(&a.gold))?;
    let task = a.task.unwrap_or(ds.task);
    let examples = match a.split {
        Some(s) => ds.split(s).to_vec(),
        None => ds.iter().map(|(_, e)| e.clone()).collect(),
    };
    Ok((task, examples))
}
