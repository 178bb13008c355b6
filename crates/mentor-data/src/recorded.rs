//! Recorded teacher outputs from the papers' releases, for replay teachers:
//! the FAIR / MAPD committee ([`load_fair`]) and Mind's Mirror's CoTs with self-evaluations
//! ([`load_minds_mirror`]). The step-by-step PaLM CoTs come with their datasets (`Dataset::recorded`).

use crate::rows::read_rows;
use crate::{DataError, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The FAIR committee, in the order the release names them. Peer scores of a teacher's rationale
/// are assumed to come from the other two in this order (the release does not say).
pub const FAIR_TEACHERS: [&str; 3] = ["gpt", "gemini", "mistral"];

/// One student mistake with what each teacher said about it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FairMistake {
    pub id: String,
    pub question: String,
    pub gold: String,
    /// The student's full wrong output and its final answer.
    pub student_output: String,
    pub student_answer: String,
    /// Per teacher (`gpt`, `gemini`, `mistral`).
    pub teachers: BTreeMap<String, FairTeacherOutput>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FairTeacherOutput {
    pub feedback: Option<String>,
    pub rationale: Option<String>,
    /// `(reviewer, score)` as recorded.
    pub peer_scores: Vec<(String, Value)>,
}

fn load_array(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        file: path.into(),
        cause: source,
    })?;
    serde_json::from_str(&text).map_err(|e| DataError::BadRow {
        file: path.into(),
        line: e.line(),
        msg: format!("expected a JSON array: {e}"),
    })
}

fn text(v: &Value, key: &str, file: &Path, i: usize) -> Result<String> {
    match &v[key] {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(DataError::BadRow {
            file: file.into(),
            line: i + 1,
            msg: format!("element {i}: missing text field `{key}`"),
        }),
    }
}

/// A FAIR mistake's id as mentor's example id (the release's JSON id without quotes).
pub fn fair_id(id: &str) -> String {
    id.trim_matches('"').to_string()
}

/// Loads `{model}_{task}_{false,feedback,rationale}_round0.json` from the FAIR release folder.
pub fn load_fair(dir: &Path, student: &str, task: &str) -> Result<Vec<FairMistake>> {
    let file = |kind: &str| dir.join(format!("{student}_{task}_{kind}_round0.json"));
    let falses = load_array(&file("false"))?;
    let index = |rows: Vec<Value>| -> BTreeMap<String, Value> {
        rows.into_iter().map(|r| (r["id"].to_string(), r)).collect()
    };
    let feedback = if file("feedback").is_file() {
        index(load_array(&file("feedback"))?)
    } else {
        BTreeMap::new()
    };
    let rationale = if file("rationale").is_file() {
        index(load_array(&file("rationale"))?)
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::with_capacity(falses.len());
    for (i, row) in falses.iter().enumerate() {
        let f = file("false");
        let id = row["id"].to_string();
        let mut teachers = BTreeMap::new();
        for (k, t) in FAIR_TEACHERS.iter().enumerate() {
            let mut o = FairTeacherOutput {
                feedback: feedback
                    .get(&id)
                    .and_then(|r| r[format!("{t}_feedback")].as_str())
                    .map(str::to_string),
                ..Default::default()
            };
            if let Some(arr) = rationale
                .get(&id)
                .and_then(|r| r[format!("{t}_rationale")].as_array())
            {
                o.rationale = arr.first().and_then(Value::as_str).map(str::to_string);
                let reviewers = FAIR_TEACHERS
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != k)
                    .map(|(_, r)| r.to_string());
                o.peer_scores = reviewers.zip(arr.iter().skip(1).cloned()).collect();
            }
            teachers.insert(t.to_string(), o);
        }
        out.push(FairMistake {
            id,
            question: text(row, "question", &f, i)?,
            gold: text(row, "gold_answer", &f, i)?,
            student_output: text(row, "student_wrong_pred", &f, i)?,
            student_answer: text(row, "student_wrong_final_answer", &f, i)?,
            teachers,
        });
    }
    Ok(out)
}

/// One Mind's Mirror question: K chains of thought and M self-evaluations of each.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MindsMirrorItem {
    pub id: String,
    pub question: String,
    /// The gold equation, when the release's problem file has it.
    pub gold: Option<String>,
    pub cots: Vec<String>,
    /// `evaluations[i]` are the self-evaluations of `cots[i]`.
    pub evaluations: Vec<Vec<String>>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

/// Loads the Tree-of-Thoughts logs `svamp_tree1/llm/{split}_CoT_0.json` with gold labels from
/// `svamp_tree1/svamp_tree1_{split}.json`.
pub fn load_minds_mirror(dir: &Path, split: &str) -> Result<Vec<MindsMirrorItem>> {
    let log = dir
        .join("svamp_tree1/llm")
        .join(format!("{split}_CoT_0.json"));
    let problems = dir.join(format!("svamp_tree1/svamp_tree1_{split}.json"));
    let mut gold = BTreeMap::new();
    if problems.is_file() {
        for r in read_rows(&problems, true, &mut vec![])? {
            if let (Some(i), Some(l)) = (r.value["input"].as_str(), r.value["label"].as_str()) {
                gold.insert(i.to_string(), l.to_string());
            }
        }
    }
    let mut out = vec![];
    for (i, q) in load_array(&log)?.into_iter().enumerate() {
        let bad = |msg: &str| DataError::BadRow {
            file: log.clone(),
            line: i + 1,
            msg: format!("question {i}: {msg}"),
        };
        let step = q["steps"].get(0).ok_or_else(|| bad("no steps"))?;
        // `x` is a JSON fragment: "input":"…"
        let x = step["x"].as_str().ok_or_else(|| bad("no x"))?;
        let wrapped: Value = serde_json::from_str(&format!("{{{}}}", x.trim()))
            .map_err(|e| bad(&format!("x is not `\"input\":\"…\"`: {e}")))?;
        let question = wrapped["input"]
            .as_str()
            .ok_or_else(|| bad("x has no input"))?
            .to_string();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let cots = strings(&step["new_ys"]);
        let evaluations: Vec<Vec<String>> = step["value_outputs_list"]
            .as_array()
            .map(|a| a.iter().map(strings).collect())
            .unwrap_or_default();
        if cots.len() != evaluations.len() {
            return Err(bad(&format!(
                "{} CoTs but {} evaluation lists",
                cots.len(),
                evaluations.len()
            )));
        }
        let usage = &q["usage_so_far"];
        out.push(MindsMirrorItem {
            id: format!("{split}-{}", q["idx"].as_u64().unwrap_or(i as u64)),
            gold: gold.get(&question).cloned(),
            question,
            cots,
            evaluations,
            prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
            cost_usd: usage["cost"].as_f64().unwrap_or(0.0),
        });
    }
    Ok(out)
}
