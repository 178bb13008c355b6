//! Building a recipe's training set from what the teachers said: the shared "select / filter"
//! and "build training set" stages. Pairs are text (prompt, target, task, weight); tokenising
//! them for a student is [`crate::student`]'s job.

use crate::recipe::{ChoiceLabel, LabelSource, Recipe};
use mentor_core::extract::{extract_choice, Answer};
use mentor_core::prompt::question_block;
use mentor_core::text::{split_rationale, truncate_at_follow_on, FOLLOW_ON_MARKERS};
use mentor_core::{Example, TaskKind};
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
    /// Training pairs drawn from this teacher's accepted rationales / its feedback: what the
    /// student learns from whom (Gemini's one-line rationales, say, taught one-line answers).
    pub rationale_pairs: usize,
    pub feedback_pairs: usize,
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
    /// Feedback, rationales and reviews cut at the teacher's token limit: left out (a review
    /// counts as invalid).
    #[serde(default)]
    pub truncated: usize,
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
    /// Of `self_evals`, judgements cut at the teacher's token limit: left out (their verdict
    /// may be read from the middle of an unfinished judgement) and not counted in the agreement.
    #[serde(default)]
    pub self_evals_truncated: usize,
    /// Parsed verdicts: `correct` / `wrong` / `uncertain` → count.
    pub verdicts: BTreeMap<String, usize>,
    /// Verdicts against the judged CoT's gold correctness: `"<verdict>|<cot correct?>"` → count.
    pub verdict_vs_gold: BTreeMap<String, usize>,
    /// Share of parsed verdicts that agree with gold (correct ↔ right answer, wrong ↔ wrong
    /// answer; uncertain never agrees).
    pub verdict_agreement: Option<f64>,
    /// Cohen's κ of the verdicts against gold: the agreement beyond what a judge that ignored
    /// the chain of thought would reach with the same verdict shares (0: no better than chance,
    /// e.g. "correct" for everything where most chains are right; 1: always agrees).
    #[serde(default)]
    pub verdict_kappa: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewStats>,
    pub pairs: BTreeMap<String, usize>,
}

/// Cohen's κ from `"<verdict>|<right or wrong>"` counts ([`TrainSetStats::verdict_vs_gold`]):
/// `correct` agrees with a right chain, `wrong` with a wrong one, `uncertain` with neither.
/// None without verdicts, or when chance agreement is already certain (one class only).
pub fn verdict_kappa(verdict_vs_gold: &BTreeMap<String, usize>) -> Option<f64> {
    let count = |v: &str, g: &str| *verdict_vs_gold.get(&format!("{v}|{g}")).unwrap_or(&0) as f64;
    let n: f64 = verdict_vs_gold.values().sum::<usize>() as f64;
    if n == 0.0 {
        return None;
    }
    let verdict_share = |v: &str| (count(v, "right") + count(v, "wrong")) / n;
    let gold_share = |g: &str| {
        ["correct", "wrong", "uncertain"]
            .iter()
            .map(|v| count(v, g))
            .sum::<f64>()
            / n
    };
    let observed = (count("correct", "right") + count("wrong", "wrong")) / n;
    let chance = verdict_share("correct") * gold_share("right")
        + verdict_share("wrong") * gold_share("wrong");
    (chance < 1.0).then(|| (observed - chance) / (1.0 - chance))
}

/// Whether a stored reply was cut at the teacher's token limit (the annotation stage marks it):
/// such a reply is never trained on, whatever could be parsed from it.
pub fn is_truncated(a: &Annotation) -> bool {
    a.parsed.as_ref().and_then(|p| p["truncated"].as_bool()) == Some(true)
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

/// The stored chains of thought a recipe uses: the first `k` samples of each teacher (its
/// `cots_per_item`: 1 but for Mind's Mirror). A store may hold more (a run with a larger K in
/// the same directory, or a store shared between variants of an experiment).
pub fn recipe_cots(k: u32, cots: &[Annotation]) -> Vec<Annotation> {
    cots.iter()
        .filter(|a| a.sample_index < k)
        .cloned()
        .collect()
}

/// A chain of thought to be judged: its item, its index among the item's distinct CoTs, its
/// text, and whether its parsed answer matches gold (kept for the agreement statistic).
#[derive(Debug, Clone)]
pub struct JudgedCot {
    pub example: Example,
    pub cot_index: u32,
    pub text: String,
    pub correct: bool,
    /// An answer could be read from it (false: no answer sentence, often a reply cut at the
    /// token limit).
    pub parsed: bool,
    /// The reply was cut at the teacher's token limit.
    pub truncated: bool,
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
            let truncated = is_truncated(a);
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

/// The chains of thought a recipe may train on, selected the way every chain-of-thought recipe
/// shares: one item's identical CoTs deduplicated, replies cut at the token limit dropped, those
/// with no readable answer dropped unless `keep_unparseable_cots`, and with `filter_correct`
/// only those reaching the gold answer kept. A recipe turns a selection into pairs.
pub struct Selection<'a> {
    pub kind: TaskKind,
    pub items: &'a [Example],
    pub stored: &'a Stored,
    /// Every distinct chain of thought, kept or not (self-evaluations judge them all).
    pub distinct: Vec<JudgedCot>,
    /// The kept ones, in item order.
    pub kept: Vec<JudgedCot>,
    /// The kept ones by item id.
    pub kept_by_item: HashMap<String, Vec<JudgedCot>>,
}

impl Selection<'_> {
    /// A chain of thought as the student learns it ([`cot_target`]); one cut at the teacher's
    /// token limit stays as cut (a judgement of it must not read as one of a finished chain).
    pub fn cot_text(&self, recipe: &Recipe, c: &JudgedCot) -> String {
        if c.truncated {
            return c.text.clone();
        }
        cot_target(recipe, self.kind, &c.example, &c.text)
    }

    /// The label `ex` is trained on: the gold answer sentence, or (`LabelSource::Teacher`) the
    /// answer sentence its first kept chain of thought ends in, as the teacher wrote it (None
    /// when it has none).
    /// A multiple-choice label is written as `recipe.choice_label` says.
    pub fn label(&self, recipe: &Recipe, ex: &Example) -> Option<String> {
        match recipe.label_source {
            LabelSource::Gold => Some(gold_label(recipe, self.kind, ex)),
            LabelSource::Teacher => {
                let cot = &self.kept_by_item.get(ex.id.as_str())?[0].text;
                if text_label(recipe, self.kind, ex) {
                    match extract_choice(cot, &ex.choices).answer? {
                        Answer::Choice(i) => Some(choice_text_label(ex, i)),
                        _ => None,
                    }
                } else {
                    teacher_answer_sentence(cot)
                }
            }
        }
    }

    /// A training pair for `ex`: the task's student prompt (with `solution` where the task
    /// shows one) and its target.
    pub fn pair(
        &self,
        ex: &Example,
        task: StudentTask,
        solution: &str,
        target: String,
        weight: f64,
        stage: u32,
    ) -> TrainPair {
        TrainPair {
            example_id: ex.id.clone(),
            task,
            prompt: student_prompt(task, self.kind, ex, solution),
            target,
            weight,
            stage,
        }
    }
}

/// Selects among `cots` (a recipe's stored chains of thought and any texts it counts as such)
/// for `items`, and counts what was kept and why the rest was not. `needs_cot`: the recipe asks
/// teachers, so an item without a kept CoT is worth counting.
pub fn select_cots<'a>(
    recipe: &Recipe,
    kind: TaskKind,
    items: &'a [Example],
    stored: &'a Stored,
    cots: Vec<Annotation>,
    needs_cot: bool,
) -> (Selection<'a>, TrainSetStats) {
    let ids: std::collections::HashSet<&str> = items.iter().map(|e| e.id.as_str()).collect();
    let cots: Vec<Annotation> = cots
        .into_iter()
        .filter(|a| ids.contains(a.example_id.as_str()))
        .collect();
    let mut st = TrainSetStats {
        items: items.len(),
        cots: cots.len(),
        cots_unparseable: cots.iter().filter(|a| !a.parse_ok).count(),
        cots_truncated: cots.iter().filter(|a| is_truncated(a)).count(),
        ..Default::default()
    };
    let (distinct, dups) = distinct_cots(items, &cots);
    st.cots_duplicate = dups;
    st.cots_wrong = distinct.iter().filter(|c| !c.correct).count();
    let kept: Vec<JudgedCot> = distinct
        .iter()
        // a reply cut at the token limit is never trained on as if complete; one with no
        // readable answer only when asked (it is counted in `cots_unparseable` either way)
        .filter(|c| !c.truncated && (c.parsed || recipe.keep_unparseable_cots))
        .filter(|c| c.correct || !recipe.filter_correct)
        .cloned()
        .collect();
    st.cots_kept = kept.len();
    let mut kept_by_item: HashMap<String, Vec<JudgedCot>> = HashMap::new();
    for c in &kept {
        kept_by_item
            .entry(c.example.id.clone())
            .or_default()
            .push(c.clone());
    }
    st.items_without_cot = if needs_cot {
        items
            .iter()
            .filter(|e| !kept_by_item.contains_key(e.id.as_str()))
            .count()
    } else {
        0
    };
    let sel = Selection {
        kind,
        items,
        stored,
        distinct,
        kept,
        kept_by_item,
    };
    (sel, st)
}

/// Counts the pairs by task into `st.pairs`.
pub fn count_pairs(st: &mut TrainSetStats, pairs: &[TrainPair]) {
    for p in pairs {
        *st.pairs.entry(p.task.as_str().into()).or_default() += 1;
    }
}

fn text_label(recipe: &Recipe, kind: TaskKind, ex: &Example) -> bool {
    recipe.choice_label == ChoiceLabel::Text
        && kind == TaskKind::MultipleChoice
        && ex.gold_choice().is_some()
}

/// The gold label as the student learns it: the task's answer sentence, or for multiple choice
/// with `choice_label = "text"` the option's text.
pub fn gold_label(recipe: &Recipe, kind: TaskKind, ex: &Example) -> String {
    match ex.gold_choice() {
        Some(i) if text_label(recipe, kind, ex) => choice_text_label(ex, i),
        _ => mentor_core::prompt::answer_sentence(kind, ex),
    }
}

/// `So the answer is <option text>.` (`ChoiceLabel::Text`).
pub fn choice_text_label(ex: &Example, i: usize) -> String {
    format!("So the answer is {}.", ex.choices[i].text.trim())
}

/// A chain of thought as the student learns to write it (and to judge it). With
/// `choice_label = "text"` on a multiple-choice item, its closing answer sentence names the
/// option the chain chose by its text, as the label task does: a 135M student taught to end in
/// a letter ends in one letter whatever the question (row 3's first cell answered "(d)" to 53
/// of 60 validation questions), and the teacher was asked to end in "(x) choice text", which it
/// sometimes copies word for word. The reasoning stays the teacher's; a chain whose choice
/// cannot be read, and every other task kind, is kept as written.
pub fn cot_target(recipe: &Recipe, kind: TaskKind, ex: &Example, cot: &str) -> String {
    if !text_label(recipe, kind, ex) {
        return cot.to_string();
    }
    let Some(Answer::Choice(i)) = extract_choice(cot, &ex.choices).answer else {
        return cot.to_string();
    };
    let answer = choice_text_label(ex, i);
    // the closing "… the answer is (x) …" sentence is replaced; an answer phrase followed by
    // more reasoning ("The correct answer is (d) X. Because …") is the teacher's text, kept
    let split = split_rationale(cot);
    let closing = split.answer_span.is_some_and(|a| {
        let a = a.trim().trim_end_matches('.');
        !a.contains('\n') && !a.contains(". ")
    });
    let reasoning = if closing { split.rationale } else { cot };
    let reasoning = reasoning.trim_end_matches([',', ';', ':', ' ']).trim();
    match reasoning.chars().last() {
        None => answer,
        Some('.' | '!' | '?') => format!("{reasoning}\n{answer}"),
        Some(_) => format!("{reasoning}.\n{answer}"),
    }
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

    #[test]
    fn verdict_kappa_is_agreement_beyond_chance() {
        let counts = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        // a judge right 80 % of the time on a balanced set: κ = (0.8 − 0.5) / 0.5
        let k = verdict_kappa(&counts(&[
            ("correct|right", 40),
            ("correct|wrong", 10),
            ("wrong|right", 10),
            ("wrong|wrong", 40),
        ]))
        .unwrap();
        assert!((k - 0.6).abs() < 1e-12, "{k}");
        // "correct" for everything where 79 % of chains are right: 79 % agreement, κ = 0
        let k = verdict_kappa(&counts(&[("correct|right", 79), ("correct|wrong", 21)])).unwrap();
        assert!(k.abs() < 1e-12, "{k}");
        // uncertain never agrees: it lowers κ below the same judge without it
        let k = verdict_kappa(&counts(&[
            ("correct|right", 40),
            ("uncertain|right", 10),
            ("wrong|wrong", 50),
        ]))
        .unwrap();
        assert!(k < 1.0 && k > 0.6, "{k}");
        assert_eq!(verdict_kappa(&BTreeMap::new()), None);
    }
    use super::*;
    use crate::recipe::{CotTargets, LabelSource, RecipeName, SelfEvalTargets};
    use crate::recipes::training_set as build;
    use crate::recipes::RecipeExt;

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
            // cut at the token limit: a verdict word was read, but the judgement never ended
            ann(
                "1",
                "self-eval",
                1002,
                "Step 1 looks correct. Step 2",
                serde_json::json!({"verdict": "correct", "truncated": true}),
                true,
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
        assert_eq!(t.stats.self_evals_truncated, 1);
        assert_eq!(t.stats.verdict_agreement, Some(2.0 / 3.0));
        assert_eq!(t.stats.verdict_vs_gold["wrong|right"], 1);
        assert_eq!(
            t.stats.verdict_kappa,
            verdict_kappa(&t.stats.verdict_vs_gold)
        );
        assert!(t.stats.verdict_kappa.is_some());
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
    /// the teacher's verdicts that match the CoT's gold correctness, `gold` writes the gold one
    /// (alone where the teacher's critique argued the other side).
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
                // the teacher judged a right chain wrong: its "Looks off." is not kept
                "Evaluation result: the given answer is correct.".to_string(),
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

    /// "Which is a gas?" with options rock / steam / ice, gold B.
    fn gas_question() -> Example {
        let mut q = ex("1", "Which is a gas?", "B");
        q.choices = ["rock", "steam", "ice"]
            .iter()
            .zip(["A", "B", "C"])
            .map(|(t, l)| mentor_core::example::Choice {
                label: l.into(),
                text: (*t).into(),
            })
            .collect();
        q
    }

    #[test]
    fn choice_labels_by_letter_or_by_text_read_back_as_the_same_option() {
        let q = gas_question();
        let items = [q];
        let cot = ann(
            "1",
            "annotate",
            0,
            "Ice is solid; steam is water as a gas. So the answer is (b) steam.",
            serde_json::json!({"correct": true}),
            true,
        );
        let stored = Stored {
            cots: vec![cot],
            ..Default::default()
        };
        let mut r = Recipe {
            name: RecipeName::StepByStep,
            ..Recipe::default()
        };
        let label = |r: &Recipe| {
            let t = build(r, TaskKind::MultipleChoice, &items, &stored);
            let p = t.pairs.iter().find(|p| p.task == StudentTask::Label);
            p.unwrap().target.clone()
        };
        assert_eq!(label(&r), "So the answer is (b) steam.");
        r.choice_label = ChoiceLabel::Text;
        assert_eq!(label(&r), "So the answer is steam.");
        r.label_source = LabelSource::Teacher;
        assert_eq!(label(&r), "So the answer is steam.");
        // the student's text answer scores as the gold option
        let read = extract_choice("So the answer is steam.", &items[0].choices);
        assert_eq!(read.answer, Some(Answer::Choice(1)));
        // the rationale task is unchanged: the teacher's own words
        r.label_source = LabelSource::Gold;
        let t = build(&r, TaskKind::MultipleChoice, &items, &stored);
        let rat = t.pairs.iter().find(|p| p.task == StudentTask::Rationale);
        assert!(rat.unwrap().target.starts_with("Ice is solid"));
    }

    /// With text labels, a multiple-choice chain of thought ends naming its option by text,
    /// for the CoT task and as the chain the student judges; letters, unreadable choices and
    /// chains cut at the limit stay as written.
    #[test]
    fn chains_of_thought_end_in_the_chosen_options_text_with_text_labels() {
        let q = gas_question();
        let mut r = Recipe {
            name: RecipeName::MindsMirror,
            choice_label: ChoiceLabel::Text,
            ..Recipe::default()
        };
        let mc = TaskKind::MultipleChoice;
        // the teacher copied the template's placeholder: the option is read from the letter
        assert_eq!(
            cot_target(
                &r,
                mc,
                &q,
                "Steam is water as a gas.\nSo the answer is (b) choice text."
            ),
            "Steam is water as a gas.\nSo the answer is steam."
        );
        assert_eq!(
            cot_target(&r, mc, &q, "Ice melts, so the answer is (c) ice."),
            "Ice melts.\nSo the answer is ice."
        );
        assert_eq!(
            cot_target(&r, mc, &q, "So the answer is (b)"),
            "So the answer is steam."
        );
        // an answer phrase followed by reasoning is the teacher's text: kept, the sentence added
        assert_eq!(
            cot_target(
                &r,
                mc,
                &q,
                "The correct answer is (b) steam. Water boils into a gas."
            ),
            "The correct answer is (b) steam. Water boils into a gas.\nSo the answer is steam."
        );
        let unreadable = "Gases are light. I cannot tell.";
        assert_eq!(cot_target(&r, mc, &q, unreadable), unreadable);
        let letters = Recipe {
            choice_label: ChoiceLabel::Letter,
            ..r.clone()
        };
        let cot = "Steam is water as a gas. So the answer is (b) steam.";
        assert_eq!(cot_target(&letters, mc, &q, cot), cot);

        // through Mind's Mirror: the CoT target and the judged chain; a cut chain unchanged
        let items = [q];
        let cut = "Rock is solid and ice is solid, while";
        let stored = Stored {
            cots: vec![
                ann(
                    "1",
                    "annotate",
                    0,
                    cot,
                    serde_json::json!({"correct": true}),
                    true,
                ),
                ann(
                    "1",
                    "annotate",
                    1,
                    cut,
                    serde_json::json!({"correct": false, "truncated": true}),
                    false,
                ),
            ],
            self_evals: vec![
                ann(
                    "1",
                    "self-eval",
                    0,
                    "Evaluation result: the given answer is correct.",
                    serde_json::json!({"verdict": "correct"}),
                    true,
                ),
                ann(
                    "1",
                    "self-eval",
                    1000,
                    "Evaluation result: the given answer is wrong.",
                    serde_json::json!({"verdict": "wrong"}),
                    true,
                ),
            ],
            ..Default::default()
        };
        r.evals_per_cot = 1;
        r.schedule = crate::recipe::TaskSchedule::Mixed;
        let t = build(&r, mc, &items, &stored);
        let target =
            |task| -> Vec<&TrainPair> { t.pairs.iter().filter(|p| p.task == task).collect() };
        let cots = target(StudentTask::Cot);
        assert_eq!(cots.len(), 1, "{:?}", t.pairs);
        assert_eq!(
            cots[0].target,
            "Steam is water as a gas.\nSo the answer is steam."
        );
        let judged = target(StudentTask::SelfEval);
        assert!(
            judged
                .iter()
                .any(|p| p.prompt.contains("So the answer is steam.")
                    && !p.prompt.contains("answer is (b)")),
            "{judged:?}"
        );
        assert!(judged.iter().any(|p| p.prompt.contains(cut)), "{judged:?}");
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

    /// Full MAPD is its accepted-rationales ablation plus the feedback: with one rationale and
    /// one feedback drawn a mistake, the rationales drawn are the same with and without the
    /// feedback (feedback draws take their own random stream), and the pairs per teacher count
    /// what was drawn.
    #[test]
    fn mapd_feedback_does_not_change_which_rationales_are_drawn() {
        let num = |v: f64| serde_json::json!({"type": "number", "value": {"value": v, "text": v.to_string()}});
        let at = |mut a: Annotation, source: &str| {
            a.source = source.into();
            a
        };
        let items: Vec<Example> = (0..40)
            .map(|i| ex(&i.to_string(), &format!("{i} + 1?"), &(i + 1).to_string()))
            .collect();
        let teachers = ["a", "b", "c"];
        let mut st = Stored::default();
        for e in &items {
            let wrong = serde_json::json!({"answer": num(0.0), "correct": false});
            st.mined.push(at(
                ann(&e.id, "mine", 0, "It is 0.", wrong, true),
                "student",
            ));
            for t in teachers {
                let fb = format!("{t} explains {}", e.id);
                st.feedback.push(at(
                    ann(&e.id, "feedback", 0, &fb, serde_json::json!({}), true),
                    t,
                ));
                let rat = format!("{t} reasons on {}. The answer is {}.", e.id, e.answer);
                let ok = serde_json::json!({"correct": true});
                st.cots
                    .push(at(ann(&e.id, "annotate", 0, &rat, ok, true), t));
                for other in teachers.iter().filter(|&&o| o != t) {
                    let p = serde_json::json!({"score": 5.0, "author": t});
                    st.reviews
                        .push(at(ann(&e.id, "review", 0, "[5]", p, true), other));
                }
            }
        }
        let with = |feedback: bool| Recipe {
            name: RecipeName::Mapd,
            feedback,
            seed: 7,
            ..Recipe::default()
        };
        let rationales = |set: &TrainingSet| -> Vec<String> {
            set.pairs
                .iter()
                .filter(|p| p.task == StudentTask::Cot)
                .map(|p| p.target.clone())
                .collect()
        };
        let full = build(&with(true), TaskKind::Numeric, &items, &st);
        let ablation = build(&with(false), TaskKind::Numeric, &items, &st);
        assert_eq!(rationales(&full).len(), 40);
        assert_eq!(rationales(&full), rationales(&ablation));
        // a draw, not always the first teacher's
        let drawn_from = |set: &TrainingSet, t: &str| {
            set.stats.review.as_ref().unwrap().per_teacher[t].rationale_pairs
        };
        assert!(teachers.iter().all(|t| drawn_from(&full, t) > 0));
        let rv = full.stats.review.as_ref().unwrap();
        let fb: usize = teachers
            .iter()
            .map(|t| rv.per_teacher[*t].feedback_pairs)
            .sum();
        assert_eq!(fb, 40);
        assert!(teachers
            .iter()
            .all(|t| rv.per_teacher[*t].feedback_pairs > 0));
        let fb_off = ablation.stats.review.as_ref().unwrap();
        assert!(teachers
            .iter()
            .all(|t| fb_off.per_teacher[*t].feedback_pairs == 0));
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

    /// A reply cut at the teacher's token limit is never trained on: not as feedback, not as a
    /// rationale, and a cut review's score does not count.
    #[test]
    fn mapd_leaves_out_replies_cut_at_the_token_limit() {
        use StudentTask::{Cot, Feedback};
        let count =
            |set: &TrainingSet, t: StudentTask| set.pairs.iter().filter(|p| p.task == t).count();
        let cut = |a: &mut Annotation| {
            a.parsed.as_mut().unwrap()["truncated"] = serde_json::json!(true);
        };
        let no_review = Recipe {
            name: RecipeName::Mapd,
            pairs_per_mistake: crate::recipe::PairsPerMistake::All,
            review: false,
            ..Recipe::default()
        };
        let (items, mut st) = mapd_store(5.0, 5.0);
        // round 0, item 1: teacher a's feedback and teacher b's rationale were cut
        cut(&mut st.feedback[0]);
        cut(&mut st.cots[1]);
        let set = build(&no_review, TaskKind::Numeric, &items, &st);
        assert_eq!((count(&set, Feedback), count(&set, Cot)), (5, 5));
        assert!(!set
            .pairs
            .iter()
            .any(|p| p.target == "a on round 0" && p.example_id == "1"));
        assert_eq!(set.stats.review.as_ref().unwrap().truncated, 2);
        // with review: a cut review's score is not read (counted invalid)
        let review = Recipe {
            review: true,
            ..no_review
        };
        let (items, mut st) = mapd_store(5.0, 5.0);
        cut(&mut st.reviews[0]);
        let set = build(&review, TaskKind::Numeric, &items, &st);
        let rv = set.stats.review.as_ref().unwrap();
        assert_eq!((rv.reviews, rv.reviews_invalid), (6, 1));
    }
}
