//! Building a recipe's training set from what the teachers said: the shared "select / filter"
//! and "build training set" stages. Pairs are text (prompt, target, task, weight); tokenising
//! them for a student is [`crate::student`]'s job.

use crate::annotate::JudgedCot;
use crate::recipe::{CotTargets, LabelSource, Recipe, RecipeName, SelfEvalTargets, TaskSchedule};
use mentor_core::prompt::{answer_sentence, question_block};
use mentor_core::text::{split_rationale, truncate_at_follow_on, FOLLOW_ON_MARKERS};
use mentor_core::{normalise_self_eval, Example, TaskKind, Verdict};
use mentor_store::Annotation;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// What the student is asked to do; the prefix of its prompt says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudentTask {
    /// `predict:` → the answer sentence.
    Label,
    /// `explain:` → the rationale without the answer (step-by-step).
    Rationale,
    /// `solve:` → reasoning ending in the answer sentence.
    Cot,
    /// `evaluate:` (question + proposed solution) → critique ending in a verdict line.
    SelfEval,
    /// `feedback:` (question + the student's wrong answer + the gold answer) → an explanation
    /// of the mistake (MAPD).
    Feedback,
}

impl StudentTask {
    pub fn as_str(self) -> &'static str {
        match self {
            StudentTask::Label => "label",
            StudentTask::Rationale => "rationale",
            StudentTask::Cot => "cot",
            StudentTask::SelfEval => "self-eval",
            StudentTask::Feedback => "feedback",
        }
    }

    /// The prompt's prefix (`predict`, `explain`, `solve`, `evaluate`, `feedback`).
    pub fn prompt_prefix(self) -> &'static str {
        self.prefix()
    }

    fn prefix(self) -> &'static str {
        match self {
            StudentTask::Label => "predict",
            StudentTask::Rationale => "explain",
            StudentTask::Cot => "solve",
            StudentTask::SelfEval => "evaluate",
            StudentTask::Feedback => "feedback",
        }
    }
}

/// The student's prompt for a task (`solution` is the chain of thought a self-evaluation judges).
pub fn student_prompt(task: StudentTask, kind: TaskKind, ex: &Example, solution: &str) -> String {
    let q = question_block(kind, ex);
    match task {
        StudentTask::SelfEval => format!(
            "{}: {q}\nProposed solution: {}",
            task.prefix(),
            solution.trim()
        ),
        // `solution` is the student's wrong answer here.
        StudentTask::Feedback => format!(
            "{}: {q}\nStudent answer: {}\nCorrect answer: {}",
            task.prefix(),
            solution.trim(),
            ex.answer
        ),
        _ => format!("{}: {q}", task.prefix()),
    }
}

/// What the teachers (and the student, for MAPD's mining) said, as stored in the run store.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub cots: Vec<Annotation>,
    pub self_evals: Vec<Annotation>,
    pub mined: Vec<Annotation>,
    pub feedback: Vec<Annotation>,
    pub reviews: Vec<Annotation>,
    /// ELAD: the teacher's revisions of the student's explanations.
    pub revisions: Vec<Annotation>,
}

/// Peer-review outcome of one teacher's rationales (MAPD).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TeacherReviewStats {
    pub rationales: usize,
    pub accepted: usize,
    pub acceptance_rate: f64,
    /// Of accepted / rejected rationales, how many end in the gold answer.
    pub accepted_correct: usize,
    pub rejected_correct: usize,
    pub feedback: usize,
}

/// MAPD's statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReviewStats {
    pub mistakes: usize,
    pub mistakes_with_accepted: usize,
    pub per_teacher: BTreeMap<String, TeacherReviewStats>,
    pub reviews: usize,
    /// Reviews whose score could not be read or was outside 1–5 (kept raw).
    pub reviews_invalid: usize,
    /// Valid scores: "1" … "5" → count.
    pub score_histogram: BTreeMap<String, usize>,
    /// Share of rationales with two or more valid scores whose reviewers agree on the side of
    /// the threshold.
    pub reviewer_agreement: Option<f64>,
    /// Teacher calls (feedback + rationales + reviews) per mistake.
    pub teacher_calls_per_mistake: f64,
}

/// One training example as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainPair {
    pub example_id: String,
    pub task: StudentTask,
    pub prompt: String,
    pub target: String,
    /// The task's loss weight.
    pub weight: f64,
    /// Training stage (0, or 0 then 1 for Mind's Mirror's two-stage schedule).
    pub stage: u32,
}

/// Counts of what was kept and why the rest was not.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainSetStats {
    pub items: usize,
    /// Teacher chains of thought in the store for these items.
    pub cots: usize,
    pub cots_unparseable: usize,
    /// Of `cots`, replies cut at the teacher's token limit (left out).
    pub cots_truncated: usize,
    pub cots_wrong: usize,
    /// Identical (after whitespace normalisation) chains of thought of one item, dropped.
    pub cots_duplicate: usize,
    /// Distinct chains of thought used for training.
    pub cots_kept: usize,
    /// Items with no usable chain of thought (no rationale task for them).
    pub items_without_cot: usize,
    pub self_evals: usize,
    pub self_evals_unparseable: usize,
    /// Parsed verdicts: `correct` / `wrong` / `uncertain` → count.
    pub verdicts: BTreeMap<String, usize>,
    /// Verdicts against the judged CoT's gold correctness: `"<verdict>|<cot correct?>"` → count.
    pub verdict_vs_gold: BTreeMap<String, usize>,
    /// Share of parsed verdicts that agree with gold (correct ↔ right answer, wrong ↔ wrong
    /// answer; uncertain never agrees).
    pub verdict_agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewStats>,
    pub pairs: BTreeMap<String, usize>,
}

/// A recipe's training set.
#[derive(Debug, Clone, Default)]
pub struct TrainingSet {
    pub pairs: Vec<TrainPair>,
    pub stats: TrainSetStats,
}

/// What makes two chains of thought of one item "the same": their text up to an invented
/// follow-on question, whitespace normalised.
pub fn cot_key(text: &str) -> String {
    truncate_at_follow_on(text, FOLLOW_ON_MARKERS)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The stored chains of thought a recipe uses: the first K samples of each teacher (K = 1 but for
/// Mind's Mirror). A store may hold more (a run with a larger K in the same directory, or a
/// store shared between variants of an experiment).
pub fn recipe_cots(recipe: &Recipe, cots: &[Annotation]) -> Vec<Annotation> {
    let k = match recipe.name {
        RecipeName::MindsMirror => recipe.cots_per_question.max(1),
        _ => 1,
    };
    cots.iter()
        .filter(|a| a.sample_index < k)
        .cloned()
        .collect()
}

/// One item's distinct chains of thought, in (teacher, sample) order, with their parsed
/// correctness; `cot_index` is the position in that order (the self-evaluation stage keys on it).
/// Also returns how many duplicates were dropped.
pub fn distinct_cots(items: &[Example], cots: &[Annotation]) -> (Vec<JudgedCot>, usize) {
    let mut by_item: HashMap<&str, Vec<&Annotation>> = HashMap::new();
    for a in cots {
        by_item.entry(a.example_id.as_str()).or_default().push(a);
    }
    let (mut out, mut dups) = (vec![], 0);
    for ex in items {
        let Some(list) = by_item.get_mut(ex.id.as_str()) else {
            continue;
        };
        list.sort_by(|a, b| (&a.source, a.sample_index).cmp(&(&b.source, b.sample_index)));
        let mut seen = std::collections::HashSet::new();
        for a in list.iter() {
            let text = truncate_at_follow_on(&a.text, FOLLOW_ON_MARKERS)
                .trim()
                .to_string();
            if !seen.insert(cot_key(&text)) {
                dups += 1;
                continue;
            }
            let correct = a.parsed.as_ref().and_then(|p| p["correct"].as_bool()) == Some(true);
            let truncated = a.parsed.as_ref().and_then(|p| p["truncated"].as_bool()) == Some(true);
            out.push(JudgedCot {
                example: ex.clone(),
                cot_index: seen.len() as u32 - 1,
                text,
                correct: correct && a.parse_ok,
                parsed: a.parse_ok,
                truncated,
            });
        }
    }
    (out, dups)
}

/// Builds the training set of `recipe` over `items` from the stored chains of thought and
/// self-evaluations (empty slices where the recipe has no such stage).
pub fn build(recipe: &Recipe, kind: TaskKind, items: &[Example], stored: &Stored) -> TrainingSet {
    if recipe.name == RecipeName::Mapd {
        return build_mapd(recipe, kind, items, stored);
    }
    let ids: std::collections::HashSet<&str> = items.iter().map(|e| e.id.as_str()).collect();
    let m = if recipe.name == RecipeName::MindsMirror {
        recipe.evals_per_cot
    } else {
        0
    };
    let mut cots = recipe_cots(recipe, &stored.cots);
    if recipe.name == RecipeName::Elad {
        // a revised item has no seed CoT: one text per item either way
        cots.extend(crate::elad::revision_cots(&stored.revisions));
    }
    let cots: Vec<Annotation> = cots
        .into_iter()
        .filter(|a| ids.contains(a.example_id.as_str()))
        .collect();
    let self_evals: Vec<&Annotation> = stored
        .self_evals
        .iter()
        .filter(|a| a.sample_index % crate::annotate::SELF_EVAL_STRIDE < m)
        .collect();
    let mut st = TrainSetStats {
        items: items.len(),
        cots: cots.len(),
        cots_unparseable: cots.iter().filter(|a| !a.parse_ok).count(),
        cots_truncated: cots
            .iter()
            .filter(|a| a.parsed.as_ref().and_then(|p| p["truncated"].as_bool()) == Some(true))
            .count(),
        ..Default::default()
    };
    let (distinct, dups) = distinct_cots(items, &cots);
    st.cots_duplicate = dups;
    st.cots_wrong = distinct.iter().filter(|c| !c.correct).count();
    // A chain of thought with no readable answer (often cut at the teacher's token limit) is
    // not trained on unless asked; it is counted in `cots_unparseable` either way.
    let kept: Vec<&JudgedCot> = distinct
        .iter()
        // a reply cut at the token limit is never trained on as if complete
        .filter(|c| !c.truncated && (c.parsed || recipe.keep_unparseable_cots))
        .filter(|c| c.correct || !recipe.filter_correct)
        .collect();
    st.cots_kept = kept.len();
    let mut kept_by_item: HashMap<&str, Vec<&JudgedCot>> = HashMap::new();
    for c in &kept {
        kept_by_item
            .entry(c.example.id.as_str())
            .or_default()
            .push(c);
    }
    let needs_cot = !recipe.teacher_stages().is_empty();
    st.items_without_cot = if needs_cot {
        items
            .iter()
            .filter(|e| !kept_by_item.contains_key(e.id.as_str()))
            .count()
    } else {
        0
    };

    let pair = |ex: &Example, task, solution: &str, target: String, weight, stage| TrainPair {
        example_id: ex.id.clone(),
        task,
        prompt: student_prompt(task, kind, ex, solution),
        target,
        weight,
        stage,
    };
    let mut pairs = vec![];
    match recipe.name {
        RecipeName::Standard => {
            for ex in items {
                let target = match recipe.label_source {
                    LabelSource::Gold => Some(answer_sentence(kind, ex)),
                    // The teacher's answer sentence, as it wrote it.
                    LabelSource::Teacher => kept_by_item
                        .get(ex.id.as_str())
                        .and_then(|c| teacher_answer_sentence(&c[0].text)),
                };
                if let Some(t) = target {
                    pairs.push(pair(ex, StudentTask::Label, "", t, 1.0, 0));
                }
            }
        }
        RecipeName::StepByStep => {
            for ex in items {
                let label = match recipe.label_source {
                    LabelSource::Gold => Some(answer_sentence(kind, ex)),
                    // the paper's `label_type llm`: the teacher's answer, as it wrote it
                    LabelSource::Teacher => kept_by_item
                        .get(ex.id.as_str())
                        .and_then(|c| teacher_answer_sentence(&c[0].text)),
                };
                if let Some(label) = label {
                    pairs.push(pair(ex, StudentTask::Label, "", label, recipe.alpha, 0));
                }
                if let Some(c) = kept_by_item.get(ex.id.as_str()) {
                    let rationale = split_rationale(&c[0].text).rationale.to_string();
                    if !rationale.is_empty() {
                        pairs.push(pair(
                            ex,
                            StudentTask::Rationale,
                            "",
                            rationale,
                            1.0 - recipe.alpha,
                            0,
                        ));
                    }
                }
            }
        }
        RecipeName::MindsMirror => {
            let two_stage = recipe.schedule == TaskSchedule::TwoStage;
            let (cot_w, eval_w) = if two_stage {
                (1.0, 1.0)
            } else {
                (1.0 - recipe.self_eval_weight, recipe.self_eval_weight)
            };
            let (eval_stage, cot_stage) = if two_stage { (0, 1) } else { (0, 0) };
            match recipe.targets {
                CotTargets::Cot => {
                    for c in &kept {
                        pairs.push(pair(
                            &c.example,
                            StudentTask::Cot,
                            "",
                            c.text.clone(),
                            cot_w,
                            cot_stage,
                        ));
                    }
                }
                // The release: each chain of thought is a step-by-step example, the gold label
                // (never the teacher's answer) and the rationale; an item none of whose chains
                // survived still learns its label.
                CotTargets::LabelRationale => {
                    for ex in items {
                        let label = || answer_sentence(kind, ex);
                        let cots = kept_by_item.get(ex.id.as_str());
                        let rationales: Vec<String> = cots
                            .into_iter()
                            .flatten()
                            .map(|c| split_rationale(&c.text).rationale.trim().to_string())
                            .filter(|r| !r.is_empty())
                            .collect();
                        if rationales.is_empty() {
                            let w = cot_w * recipe.alpha;
                            pairs.push(pair(ex, StudentTask::Label, "", label(), w, cot_stage));
                        }
                        for r in rationales {
                            let (wl, wr) = (cot_w * recipe.alpha, cot_w * (1.0 - recipe.alpha));
                            pairs.push(pair(ex, StudentTask::Label, "", label(), wl, cot_stage));
                            pairs.push(pair(ex, StudentTask::Rationale, "", r, wr, cot_stage));
                        }
                    }
                }
            }
            // Self-evaluations of every distinct CoT, kept or not: judging wrong reasoning is
            // exactly what this task teaches.
            let judged: HashMap<(&str, u32), &JudgedCot> = distinct
                .iter()
                .map(|c| ((c.example.id.as_str(), c.cot_index), c))
                .collect();
            let mut evals: Vec<&Annotation> = self_evals
                .iter()
                .filter(|a| ids.contains(a.example_id.as_str()))
                .copied()
                .collect();
            evals.sort_by(|a, b| {
                (&a.example_id, a.sample_index, &a.source).cmp(&(
                    &b.example_id,
                    b.sample_index,
                    &b.source,
                ))
            });
            let (mut agree, mut parsed) = (0usize, 0usize);
            for a in evals {
                let cot_index = a.sample_index / crate::annotate::SELF_EVAL_STRIDE;
                let Some(c) = judged.get(&(a.example_id.as_str(), cot_index)) else {
                    continue;
                };
                st.self_evals += 1;
                let verdict: Option<Verdict> = a
                    .parsed
                    .as_ref()
                    .and_then(|p| serde_json::from_value(p["verdict"].clone()).ok())
                    .flatten();
                let Some(v) = verdict.filter(|_| a.parse_ok) else {
                    st.self_evals_unparseable += 1;
                    continue;
                };
                parsed += 1;
                let gold = if c.correct {
                    Verdict::Correct
                } else {
                    Verdict::Wrong
                };
                let agrees = v == gold;
                *st.verdicts.entry(v.as_str().into()).or_default() += 1;
                *st.verdict_vs_gold
                    .entry(format!(
                        "{}|{}",
                        v.as_str(),
                        if c.correct { "right" } else { "wrong" }
                    ))
                    .or_default() += 1;
                agree += agrees as usize;
                let target = match recipe.self_eval_targets {
                    SelfEvalTargets::Teacher => normalise_self_eval(&a.text, v),
                    SelfEvalTargets::GoldAgreeing if agrees => normalise_self_eval(&a.text, v),
                    SelfEvalTargets::GoldAgreeing => continue,
                    SelfEvalTargets::Gold => normalise_self_eval(&a.text, gold),
                };
                let ex = &c.example;
                pairs.push(pair(
                    ex,
                    StudentTask::SelfEval,
                    &c.text,
                    target,
                    eval_w,
                    eval_stage,
                ));
            }
            st.verdict_agreement = (parsed > 0).then(|| agree as f64 / parsed as f64);
        }
        // ELAD: the seed set's chains of thought and the rounds' revised explanations, one
        // CoT task (the student's `solve:` is what the teacher revised).
        RecipeName::Elad => {
            for c in &kept {
                pairs.push(pair(
                    &c.example,
                    StudentTask::Cot,
                    "",
                    c.text.clone(),
                    1.0,
                    0,
                ));
            }
        }
        RecipeName::Mapd => {}
    }
    count_pairs(&mut st, &pairs);
    TrainingSet { pairs, stats: st }
}

fn count_pairs(st: &mut TrainSetStats, pairs: &[TrainPair]) {
    for p in pairs {
        *st.pairs.entry(p.task.as_str().into()).or_default() += 1;
    }
}

/// MAPD: per mistake, feedback pairs (question + wrong answer + hint → a teacher's feedback,
/// weight α) and rationale pairs (question → a peer-accepted rationale, weight 1 − α); one of
/// each drawn at random (seeded) or all of them. A mistake is one mining round's wrong answer:
/// its feedback, rationales and reviews are the ones stored for that round, and a question
/// still wrong in a later round contributes again.
fn build_mapd(recipe: &Recipe, kind: TaskKind, items: &[Example], stored: &Stored) -> TrainingSet {
    use mentor_core::review::accepted;
    use rand::seq::IndexedRandom;
    use rand::SeedableRng;
    let mistakes = crate::annotate::mistakes(items, &stored.mined);
    // (round, item, teacher)
    let key = |a: &Annotation| (a.round, a.example_id.clone(), a.source.clone());
    let mut feedback: HashMap<(u32, String), Vec<&Annotation>> = HashMap::new();
    for a in stored.feedback.iter().filter(|a| a.parse_ok) {
        feedback
            .entry((a.round, a.example_id.clone()))
            .or_default()
            .push(a);
    }
    let rationales: HashMap<(u32, String, String), &Annotation> = stored
        .cots
        .iter()
        .filter(|a| a.sample_index == 0)
        .map(|a| (key(a), a))
        .collect();
    // Scores per (round, item, author).
    let mut scores: HashMap<(u32, String, String), Vec<Option<f64>>> = HashMap::new();
    let mut rv = ReviewStats {
        mistakes: mistakes.len(),
        ..Default::default()
    };
    let ids: std::collections::HashSet<(u32, &str)> = mistakes
        .iter()
        .map(|m| (m.round, m.example.id.as_str()))
        .collect();
    let of_a_mistake = |a: &&Annotation| ids.contains(&(a.round, a.example_id.as_str()));
    for a in stored.reviews.iter().filter(of_a_mistake) {
        let Some(author) = a.parsed.as_ref().and_then(|p| p["author"].as_str()) else {
            continue;
        };
        let score = a
            .parsed
            .as_ref()
            .and_then(|p| p["score"].as_f64())
            .filter(|_| a.parse_ok);
        rv.reviews += 1;
        match score {
            Some(s) => *rv.score_histogram.entry(format!("{s}")).or_default() += 1,
            None => rv.reviews_invalid += 1,
        }
        scores
            .entry((a.round, a.example_id.clone(), author.to_string()))
            .or_default()
            .push(score);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(recipe.seed);
    let (mut pairs, mut agree, mut judged_twice) = (vec![], 0usize, 0usize);
    let mut calls = 0usize;
    for m in &mistakes {
        let ex = &m.example;
        let mut accepted_here: Vec<&Annotation> = vec![];
        let mut authors: Vec<&String> = rationales
            .keys()
            .filter(|(round, id, _)| *round == m.round && id == &ex.id)
            .map(|(_, _, t)| t)
            .collect();
        authors.sort();
        for author in authors {
            let k = (m.round, ex.id.clone(), author.clone());
            let r = rationales[&k];
            calls += 1;
            let sc = scores.get(&k).cloned().unwrap_or_default();
            calls += sc.len();
            let valid: Vec<f64> = sc.iter().flatten().copied().collect();
            if valid.len() >= 2 {
                judged_twice += 1;
                let above = valid
                    .iter()
                    .filter(|&&v| v > recipe.review_threshold)
                    .count();
                agree += (above == 0 || above == valid.len()) as usize;
            }
            let correct = r.parsed.as_ref().and_then(|p| p["correct"].as_bool()) == Some(true);
            // without review every rationale is kept; `filter_correct` keeps those reaching gold
            let ok = (!recipe.review || accepted(&sc, recipe.review_threshold))
                && (!recipe.filter_correct || correct);
            let t = rv.per_teacher.entry(author.clone()).or_default();
            t.rationales += 1;
            if ok {
                t.accepted += 1;
                t.accepted_correct += correct as usize;
                accepted_here.push(r);
            } else {
                t.rejected_correct += correct as usize;
            }
        }
        rv.mistakes_with_accepted += !accepted_here.is_empty() as usize;
        let mut fbs = feedback
            .get(&(m.round, ex.id.clone()))
            .cloned()
            .unwrap_or_default();
        calls += fbs.len();
        for f in &fbs {
            rv.per_teacher.entry(f.source.clone()).or_default().feedback += 1;
        }
        let fb_pair = |f: &Annotation| TrainPair {
            example_id: ex.id.clone(),
            task: StudentTask::Feedback,
            prompt: student_prompt(StudentTask::Feedback, kind, ex, &m.output),
            target: f.text.trim().to_string(),
            weight: recipe.alpha,
            stage: 0,
        };
        // The release drops a mistake none of whose rationales was accepted, feedback and all.
        if !recipe.feedback || (accepted_here.is_empty() && !recipe.keep_unaccepted_feedback) {
            fbs.clear();
        }
        let rationale_weight = if recipe.feedback {
            1.0 - recipe.alpha
        } else {
            1.0
        };
        let rat_pair = |r: &Annotation| TrainPair {
            example_id: ex.id.clone(),
            task: StudentTask::Cot,
            prompt: student_prompt(StudentTask::Cot, kind, ex, ""),
            target: truncate_at_follow_on(&r.text, FOLLOW_ON_MARKERS)
                .trim()
                .to_string(),
            weight: rationale_weight,
            stage: 0,
        };
        match recipe.pairs_per_mistake {
            crate::recipe::PairsPerMistake::All => {
                pairs.extend(fbs.iter().map(|f| fb_pair(f)));
                pairs.extend(accepted_here.iter().map(|r| rat_pair(r)));
            }
            crate::recipe::PairsPerMistake::One => {
                if let Some(f) = fbs.choose(&mut rng) {
                    pairs.push(fb_pair(f));
                }
                if let Some(r) = accepted_here.choose(&mut rng) {
                    pairs.push(rat_pair(r));
                }
            }
        }
    }
    for t in rv.per_teacher.values_mut() {
        t.acceptance_rate = if t.rationales > 0 {
            t.accepted as f64 / t.rationales as f64
        } else {
            0.0
        };
    }
    rv.reviewer_agreement = (judged_twice > 0).then(|| agree as f64 / judged_twice as f64);
    rv.teacher_calls_per_mistake = if mistakes.is_empty() {
        0.0
    } else {
        calls as f64 / mistakes.len() as f64
    };
    let mut st = TrainSetStats {
        items: items.len(),
        cots: stored.cots.iter().filter(of_a_mistake).count(),
        review: Some(rv),
        ..Default::default()
    };
    count_pairs(&mut st, &pairs);
    TrainingSet { pairs, stats: st }
}

/// "The answer is …" / "So the answer is …" as the teacher wrote it, or None.
fn teacher_answer_sentence(cot: &str) -> Option<String> {
    let span = split_rationale(cot).answer_span?.trim();
    if span.is_empty() {
        return None;
    }
    Some(format!("The answer is {span}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, q: &str, a: &str) -> Example {
        Example {
            id: id.into(),
            question: q.into(),
            answer: a.into(),
            choices: vec![],
            explanation: None,
        }
    }

    fn ann(
        id: &str,
        stage: &str,
        sample: u32,
        text: &str,
        parsed: serde_json::Value,
        ok: bool,
    ) -> Annotation {
        Annotation {
            dataset: "d".into(),
            example_id: id.into(),
            stage: stage.into(),
            kind: stage.into(),
            source: "t".into(),
            round: 0,
            sample_index: sample,
            call_id: None,
            text: text.into(),
            parsed: Some(parsed),
            parse_ok: ok,
        }
    }

    #[test]
    fn step_by_step_weights_and_filter() {
        let items = [
            ex("1", "3 + 4?", "( 3 + 4 )"),
            ex("2", "5 - 1?", "( 5 - 1 )"),
        ];
        let cots = [
            ann(
                "1",
                "annotate",
                0,
                "3 plus 4 is 7. The answer is (3 + 4).",
                serde_json::json!({"correct": true}),
                true,
            ),
            ann(
                "2",
                "annotate",
                0,
                "5 minus 1 is 3. The answer is (5 - 2).",
                serde_json::json!({"correct": false}),
                true,
            ),
        ];
        let mut r = Recipe {
            name: RecipeName::StepByStep,
            alpha: 0.3,
            ..Recipe::default()
        };
        let t = build(
            &r,
            TaskKind::Equation,
            &items,
            &Stored {
                cots: cots.to_vec(),
                ..Default::default()
            },
        );
        assert_eq!(t.stats.pairs["label"], 2);
        assert_eq!(t.stats.pairs["rationale"], 2);
        let rat = t
            .pairs
            .iter()
            .find(|p| p.task == StudentTask::Rationale)
            .unwrap();
        assert_eq!(rat.prompt, "explain: 3 + 4?");
        assert_eq!(rat.target, "3 plus 4 is 7.");
        assert!((rat.weight - 0.7).abs() < 1e-12);
        let lab = t
            .pairs
            .iter()
            .find(|p| p.task == StudentTask::Label)
            .unwrap();
        assert_eq!(
            (lab.prompt.as_str(), lab.target.as_str(), lab.weight),
            ("predict: 3 + 4?", "The answer is (3 + 4).", 0.3)
        );
        r.filter_correct = true;
        let t = build(
            &r,
            TaskKind::Equation,
            &items,
            &Stored {
                cots: cots.to_vec(),
                ..Default::default()
            },
        );
        assert_eq!((t.stats.pairs["label"], t.stats.pairs["rationale"]), (2, 1));
        assert_eq!(
            (
                t.stats.cots_wrong,
                t.stats.cots_kept,
                t.stats.items_without_cot
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn minds_mirror_dedupes_and_counts_verdicts() {
        let items = [ex("1", "3 + 4?", "( 3 + 4 )")];
        let ok = serde_json::json!({"correct": true});
        let bad = serde_json::json!({"correct": false});
        let cots = [
            ann(
                "1",
                "annotate",
                0,
                "3 + 4 = 7. The answer is (3 + 4).",
                ok.clone(),
                true,
            ),
            ann(
                "1",
                "annotate",
                1,
                "3 +  4 = 7. The answer is (3 + 4).",
                ok.clone(),
                true,
            ),
            ann(
                "1",
                "annotate",
                2,
                "3 * 4 = 12. The answer is (3 * 4).",
                bad,
                true,
            ),
        ];
        let v = |s: &str| serde_json::json!({"verdict": s});
        let evals = [
            ann(
                "1",
                "self-eval",
                0,
                "Fine. Evaluation result: the given answer is correct.",
                v("correct"),
                true,
            ),
            ann(
                "1",
                "self-eval",
                1,
                "Hm. Evaluation result: the given answer is wrong.",
                v("wrong"),
                true,
            ),
            // CoT index 1 is the third recording (the second was a duplicate).
            ann(
                "1",
                "self-eval",
                1000,
                "Evaluation result: the given answer is wrong.",
                v("wrong"),
                true,
            ),
            ann(
                "1",
                "self-eval",
                1001,
                "no idea",
                serde_json::json!({"verdict": null}),
                false,
            ),
        ];
        let r = Recipe {
            name: RecipeName::MindsMirror,
            ..Recipe::default()
        };
        let t = build(
            &r,
            TaskKind::Equation,
            &items,
            &Stored {
                cots: cots.to_vec(),
                self_evals: evals.to_vec(),
                ..Default::default()
            },
        );
        assert_eq!(
            (t.stats.cots, t.stats.cots_duplicate, t.stats.cots_kept),
            (3, 1, 2)
        );
        assert_eq!(t.stats.pairs["cot"], 2);
        assert_eq!(t.stats.pairs["self-eval"], 3);
        assert_eq!(t.stats.self_evals_unparseable, 1);
        assert_eq!(t.stats.verdict_agreement, Some(2.0 / 3.0));
        assert_eq!(t.stats.verdict_vs_gold["wrong|right"], 1);
        let se = t
            .pairs
            .iter()
            .find(|p| p.task == StudentTask::SelfEval && p.target.starts_with("Evaluation"))
            .unwrap();
        assert!(
            se.prompt
                .starts_with("evaluate: 3 + 4?\nProposed solution: 3 * 4 = 12."),
            "{}",
            se.prompt
        );
        // Two-stage: self-evaluation is stage 0, CoT stage 1.
        assert!(t
            .pairs
            .iter()
            .all(|p| p.stage == (p.task == StudentTask::Cot) as u32));
    }

    /// The release's format: per distinct CoT, `predict:` → the *gold* label (α) and `explain:`
    /// → its rationale (1 − α); a wrong CoT's answer is never a target.
    #[test]
    fn minds_mirror_release_format_trains_gold_labels_and_rationales() {
        let items = [
            ex("1", "3 + 4?", "( 3 + 4 )"),
            ex("2", "5 - 1?", "( 5 - 1 )"),
        ];
        let ok = serde_json::json!({"correct": true});
        let bad = serde_json::json!({"correct": false});
        let cots = [
            ann(
                "1",
                "annotate",
                0,
                "3 + 4 = 7. The answer is (3 + 4).",
                ok.clone(),
                true,
            ),
            ann(
                "1",
                "annotate",
                1,
                "3 * 4 = 12. The answer is (3 * 4).",
                bad.clone(),
                true,
            ),
            ann(
                "2",
                "annotate",
                0,
                "5 + 1 = 6. The answer is (5 + 1).",
                bad,
                true,
            ),
        ];
        let mut r = Recipe {
            name: RecipeName::MindsMirror,
            targets: CotTargets::LabelRationale,
            evals_per_cot: 0,
            alpha: 0.4,
            ..Recipe::default()
        };
        let stored = Stored {
            cots: cots.to_vec(),
            ..Default::default()
        };
        let t = build(&r, TaskKind::Equation, &items, &stored);
        assert_eq!((t.stats.pairs["label"], t.stats.pairs["rationale"]), (3, 3));
        assert!(!t.stats.pairs.contains_key("cot"));
        for p in t.pairs.iter().filter(|p| p.task == StudentTask::Label) {
            let gold = if p.example_id == "1" {
                "(3 + 4)"
            } else {
                "(5 - 1)"
            };
            assert_eq!(p.target, format!("The answer is {gold}."));
            assert!((p.weight - 0.4).abs() < 1e-12);
        }
        let rationales: Vec<&str> = t
            .pairs
            .iter()
            .filter(|p| p.task == StudentTask::Rationale)
            .map(|p| p.target.as_str())
            .collect();
        assert_eq!(rationales, ["3 + 4 = 7.", "3 * 4 = 12.", "5 + 1 = 6."]);
        assert_eq!(r.default_mode().as_str(), "label");
        assert!(r.check_mode(crate::evaluate::InferenceMode::Cot).is_err());
        // gold-reaching CoTs only: item 2 keeps its label, item 1 one rationale
        r.filter_correct = true;
        let t = build(&r, TaskKind::Equation, &items, &stored);
        assert_eq!((t.stats.pairs["label"], t.stats.pairs["rationale"]), (2, 1));
    }

    /// Self-evaluation targets end in the canonical verdict line; `gold-agreeing` keeps only
    /// the teacher's verdicts that match the CoT's gold correctness, `gold` writes the gold one.
    #[test]
    fn self_evaluation_targets_teacher_gold_agreeing_or_gold() {
        let items = [ex("1", "3 + 4?", "( 3 + 4 )")];
        let cots = [
            ann(
                "1",
                "annotate",
                0,
                "3 + 4 = 7. The answer is (3 + 4).",
                serde_json::json!({"correct": true}),
                true,
            ),
            ann(
                "1",
                "annotate",
                1,
                "3 * 4 = 12. The answer is (3 * 4).",
                serde_json::json!({"correct": false}),
                true,
            ),
        ];
        let v = |s: &str| serde_json::json!({"verdict": s});
        let evals = [
            // CoT 0 (right) judged wrong; CoT 1 (wrong) judged wrong
            ann(
                "1",
                "self-eval",
                0,
                "Looks off.\nVerdict: wrong",
                v("wrong"),
                true,
            ),
            ann(
                "1",
                "self-eval",
                1000,
                "It multiplies.\nEvaluation result: the given answer is wrong.",
                v("wrong"),
                true,
            ),
        ];
        let stored = Stored {
            cots: cots.to_vec(),
            self_evals: evals.to_vec(),
            ..Default::default()
        };
        let targets = |t: SelfEvalTargets| -> Vec<String> {
            let r = Recipe {
                name: RecipeName::MindsMirror,
                self_eval_targets: t,
                ..Recipe::default()
            };
            build(&r, TaskKind::Equation, &items, &stored)
                .pairs
                .into_iter()
                .filter(|p| p.task == StudentTask::SelfEval)
                .map(|p| p.target)
                .collect()
        };
        let wrong = "Evaluation result: the given answer is wrong.";
        assert_eq!(
            targets(SelfEvalTargets::Teacher),
            [
                format!("Looks off.\n\n{wrong}"),
                format!("It multiplies.\n\n{wrong}")
            ]
        );
        assert_eq!(
            targets(SelfEvalTargets::GoldAgreeing),
            [format!("It multiplies.\n\n{wrong}")]
        );
        assert_eq!(
            targets(SelfEvalTargets::Gold),
            [
                "Looks off.\n\nEvaluation result: the given answer is correct.".to_string(),
                format!("It multiplies.\n\n{wrong}")
            ]
        );
    }

    /// A chain of thought with no readable answer (cut at the token limit) is counted and left
    /// out unless `keep_unparseable_cots`.
    #[test]
    fn unparseable_cots_are_left_out_by_default() {
        let items = [
            ex("1", "3 + 4?", "( 3 + 4 )"),
            ex("2", "5 - 1?", "( 5 - 1 )"),
        ];
        let cots = [
            ann(
                "1",
                "annotate",
                0,
                "3 + 4 = 7. The answer is (3 + 4).",
                serde_json::json!({"correct": true}),
                true,
            ),
            ann(
                "2",
                "annotate",
                0,
                "First, 5 minus 1 is",
                serde_json::json!({"correct": false}),
                false,
            ),
        ];
        let mut r = Recipe {
            name: RecipeName::StepByStep,
            ..Recipe::default()
        };
        let stored = Stored {
            cots: cots.to_vec(),
            ..Default::default()
        };
        let t = build(&r, TaskKind::Equation, &items, &stored);
        assert_eq!((t.stats.pairs["label"], t.stats.pairs["rationale"]), (2, 1));
        assert_eq!(
            (t.stats.cots_unparseable, t.stats.items_without_cot),
            (1, 1)
        );
        r.keep_unparseable_cots = true;
        let t = build(&r, TaskKind::Equation, &items, &stored);
        assert_eq!(t.stats.pairs["rationale"], 2);
    }

    /// Step-by-step with the teacher's labels (the paper's `label_type llm`).
    #[test]
    fn step_by_step_with_teacher_labels() {
        let items = [
            ex("1", "3 + 4?", "( 3 + 4 )"),
            ex("2", "5 - 1?", "( 5 - 1 )"),
        ];
        let cots = [ann(
            "1",
            "annotate",
            0,
            "It is 7. So the answer is (4 + 3).",
            serde_json::json!({"correct": true}),
            true,
        )];
        let r = Recipe {
            name: RecipeName::StepByStep,
            label_source: LabelSource::Teacher,
            ..Recipe::default()
        };
        let stored = Stored {
            cots: cots.to_vec(),
            ..Default::default()
        };
        let t = build(&r, TaskKind::Equation, &items, &stored);
        let labels: Vec<(&str, &str)> = t
            .pairs
            .iter()
            .filter(|p| p.task == StudentTask::Label)
            .map(|p| (p.example_id.as_str(), p.target.as_str()))
            .collect();
        // item 2 has no teacher answer: no label to learn
        assert_eq!(labels, [("1", "The answer is (4 + 3).")]);
        assert_eq!(t.stats.pairs["rationale"], 1);
    }

    #[test]
    fn standard_from_gold_or_teacher() {
        let items = [ex("1", "3 + 4?", "( 3 + 4 )")];
        let cots = [ann(
            "1",
            "annotate",
            0,
            "It is 7. So the answer is (4 + 3).",
            serde_json::json!({"correct": true}),
            true,
        )];
        let mut r = Recipe {
            name: RecipeName::Standard,
            ..Recipe::default()
        };
        assert!(r.teacher_stages().is_empty());
        let t = build(&r, TaskKind::Equation, &items, &Stored::default());
        assert_eq!(t.pairs[0].target, "The answer is (3 + 4).");
        r.label_source = LabelSource::Teacher;
        let t = build(
            &r,
            TaskKind::Equation,
            &items,
            &Stored {
                cots: cots.to_vec(),
                ..Default::default()
            },
        );
        assert_eq!(t.pairs[0].target, "The answer is (4 + 3).");
    }

    /// Two items mined over two rounds, a committee of `a` and `b` whose rationales `score_a`
    /// and `score_b` (each by the other); item 2's round-1 rationales are both wrong.
    fn mapd_store(score_a: f64, score_b: f64) -> ([Example; 2], Stored) {
        let items = [ex("1", "3 + 4?", "7"), ex("2", "5 - 1?", "4")];
        let num = |v: f64| serde_json::json!({"type": "number", "value": {"value": v, "text": v.to_string()}});
        let at = |mut a: Annotation, round: u32, source: &str| {
            a.round = round;
            a.source = source.into();
            a
        };
        let mut st = Stored::default();
        // round 0: both wrong; round 1 (after training): item 1 right, item 2 wrong again.
        for (round, id, text, v, ok) in [
            (0, "1", "It is 8.", 8.0, false),
            (0, "2", "It is 5.", 5.0, false),
            (1, "1", "It is 7.", 7.0, true),
            (1, "2", "It is 3.", 3.0, false),
        ] {
            let p = serde_json::json!({"answer": num(v), "correct": ok});
            st.mined
                .push(at(ann(id, "mine", 0, text, p, true), round, "student"));
        }
        for (round, id) in [(0, "1"), (0, "2"), (1, "2")] {
            for t in ["a", "b"] {
                let fb = format!("{t} on round {round}");
                st.feedback.push(at(
                    ann(id, "feedback", 0, &fb, serde_json::json!({}), true),
                    round,
                    t,
                ));
                let rat = format!("{t} reasons. The answer is 7.");
                let p = serde_json::json!({"correct": round == 0});
                st.cots
                    .push(at(ann(id, "annotate", 0, &rat, p, true), round, t));
                // each rationale reviewed by the other teacher
                let other = if t == "a" { "b" } else { "a" };
                let score = if t == "a" { score_a } else { score_b };
                let p = serde_json::json!({"score": score, "author": t});
                st.reviews
                    .push(at(ann(id, "review", 0, "[x]", p, true), round, other));
            }
        }
        (items, st)
    }

    #[test]
    fn mapd_pairs_come_from_each_mining_round_separately() {
        // a's rationales accepted, b's not
        let (items, st) = mapd_store(5.0, 1.0);
        let recipe = Recipe {
            name: RecipeName::Mapd,
            pairs_per_mistake: crate::recipe::PairsPerMistake::All,
            ..Recipe::default()
        };
        let set = build(&recipe, TaskKind::Numeric, &items, &st);
        let rv = set.stats.review.as_ref().unwrap();
        assert_eq!(rv.mistakes, 3);
        assert_eq!(rv.reviews, 6);
        assert_eq!(rv.per_teacher["a"].accepted, 3);
        assert_eq!(rv.per_teacher["b"].accepted, 0);
        let got: Vec<(&str, StudentTask, &str)> = set
            .pairs
            .iter()
            .map(|p| (p.example_id.as_str(), p.task, p.target.as_str()))
            .collect();
        use StudentTask::{Cot, Feedback};
        assert_eq!(
            got,
            [
                ("1", Feedback, "a on round 0"),
                ("1", Feedback, "b on round 0"),
                ("1", Cot, "a reasons. The answer is 7."),
                ("2", Feedback, "a on round 0"),
                ("2", Feedback, "b on round 0"),
                ("2", Cot, "a reasons. The answer is 7."),
                ("2", Feedback, "a on round 1"),
                ("2", Feedback, "b on round 1"),
                ("2", Cot, "a reasons. The answer is 7."),
            ]
        );
        // each round's feedback pair shows that round's wrong answer
        assert!(set.pairs[3].prompt.contains("Student answer: It is 5."));
        assert!(set.pairs[6].prompt.contains("Student answer: It is 3."));
    }

    /// The ablation switches: no review keeps every rationale, no feedback trains rationales
    /// alone at full weight, and a mistake with no accepted rationale is dropped whole (the
    /// release) unless `keep_unaccepted_feedback`.
    #[test]
    fn mapd_switches_review_feedback_and_unaccepted_mistakes() {
        use StudentTask::{Cot, Feedback};
        let count =
            |set: &TrainingSet, t: StudentTask| set.pairs.iter().filter(|p| p.task == t).count();
        let all = |r: Recipe| Recipe {
            name: RecipeName::Mapd,
            pairs_per_mistake: crate::recipe::PairsPerMistake::All,
            ..r
        };
        // the threshold is the recipe's: a's 5s are above 4.9, not above 5
        let (items, st) = mapd_store(5.0, 1.0);
        for (threshold, kept) in [(4.9, 3), (5.0, 0)] {
            let r = all(Recipe {
                review_threshold: threshold,
                ..Recipe::default()
            });
            let set = build(&r, TaskKind::Numeric, &items, &st);
            assert_eq!(count(&set, Cot), kept, "threshold {threshold}");
        }
        // nobody accepted: the release drops all three mistakes
        let (items, st) = mapd_store(1.0, 2.0);
        let set = build(&all(Recipe::default()), TaskKind::Numeric, &items, &st);
        assert_eq!((count(&set, Feedback), count(&set, Cot)), (0, 0));
        let keep = all(Recipe {
            keep_unaccepted_feedback: true,
            ..Recipe::default()
        });
        let set = build(&keep, TaskKind::Numeric, &items, &st);
        assert_eq!((count(&set, Feedback), count(&set, Cot)), (6, 0));
        // no review: both teachers' rationales for each of the 3 mistakes
        let no_review = all(Recipe {
            review: false,
            ..Recipe::default()
        });
        assert_eq!(no_review.teacher_stages().len(), 2);
        let set = build(&no_review, TaskKind::Numeric, &items, &st);
        assert_eq!((count(&set, Feedback), count(&set, Cot)), (6, 6));
        // ... and with filter_correct only the round-0 ones, which reach gold
        let gold = Recipe {
            filter_correct: true,
            ..no_review.clone()
        };
        let set = build(&gold, TaskKind::Numeric, &items, &st);
        assert_eq!((count(&set, Feedback), count(&set, Cot)), (4, 4));
        // no feedback: rationales alone, weight 1, scored in cot
        let no_feedback = Recipe {
            feedback: false,
            ..no_review
        };
        assert_eq!(no_feedback.trained_tasks(), [Cot]);
        assert!(!no_feedback
            .teacher_stages()
            .contains(&crate::recipe::TeacherStage::Feedback));
        let set = build(&no_feedback, TaskKind::Numeric, &items, &st);
        assert_eq!((count(&set, Feedback), count(&set, Cot)), (0, 6));
        assert!(set.pairs.iter().all(|p| p.weight == 1.0));
    }
}
