//! MAPD / FAIR: the student's mistakes on the train split are mined; the committee explains
//! each mistake (feedback, gold answer as a hint), writes its own rationale, and reviews the
//! others' rationales 1–5; a rationale is kept when its mean score is above
//! `review_threshold`. The student learns `feedback:` → a teacher's feedback (α) and `solve:` →
//! an accepted rationale (1 − α). `feedback = false` and `review = false` are the ablations.
//! Scored with `cot`. More mining rounds run in `mentor-pipeline`'s round loop (`mapd.rs`).

use super::Method;
use crate::recipe::{Recipe, TeacherStage};
use crate::trainset::{
    count_pairs, student_prompt, ReviewStats, Selection, Stored, StudentTask, TrainPair,
    TrainSetStats, TrainingSet,
};
use mentor_core::text::{truncate_at_follow_on, FOLLOW_ON_MARKERS};
use mentor_core::{Example, TaskKind};
use mentor_store::Annotation;
use std::collections::HashMap;

pub struct Mapd;

impl Method for Mapd {
    fn teacher_stages(&self, recipe: &Recipe) -> Vec<TeacherStage> {
        let mut v = vec![];
        if recipe.feedback {
            v.push(TeacherStage::Feedback);
        }
        v.push(TeacherStage::MistakeRationales);
        if recipe.review {
            v.push(TeacherStage::Reviews);
        }
        v
    }

    fn trained_tasks(&self, recipe: &Recipe) -> Vec<StudentTask> {
        if recipe.feedback {
            vec![StudentTask::Feedback, StudentTask::Cot]
        } else {
            vec![StudentTask::Cot]
        }
    }

    /// Not used: MAPD keeps by peer review, not by the chain-of-thought selection.
    fn pairs(&self, _recipe: &Recipe, _sel: &Selection, _st: &mut TrainSetStats) -> Vec<TrainPair> {
        vec![]
    }

    fn training_set(
        &self,
        recipe: &Recipe,
        kind: TaskKind,
        items: &[Example],
        stored: &Stored,
    ) -> TrainingSet {
        build(recipe, kind, items, stored)
    }
}

/// MAPD: per mistake, feedback pairs (question + wrong answer + hint → a teacher's feedback,
/// weight α) and rationale pairs (question → a peer-accepted rationale, weight 1 − α); one of
/// each drawn at random (seeded) or all of them. A mistake is one mining round's wrong answer:
/// its feedback, rationales and reviews are the ones stored for that round, and a question
/// still wrong in a later round contributes again.
fn build(recipe: &Recipe, kind: TaskKind, items: &[Example], stored: &Stored) -> TrainingSet {
    use mentor_core::review::accepted;
    use rand::seq::IndexedRandom;
    use rand::SeedableRng;
    let mistakes = crate::annotate::mistakes(items, &stored.mined);
    // (round, item, teacher)
    let key = |a: &Annotation| (a.round, a.example_id.clone(), a.source.clone());
    let truncated = |a: &&Annotation| crate::trainset::is_truncated(a);
    let mut feedback: HashMap<(u32, String), Vec<&Annotation>> = HashMap::new();
    for a in stored
        .feedback
        .iter()
        .filter(|a| a.parse_ok && !truncated(a))
    {
        feedback
            .entry((a.round, a.example_id.clone()))
            .or_default()
            .push(a);
    }
    let rationales: HashMap<(u32, String, String), &Annotation> = stored
        .cots
        .iter()
        .filter(|a| a.sample_index == 0 && !truncated(a))
        .map(|a| (key(a), a))
        .collect();
    // Scores per (round, item, author).
    let mut scores: HashMap<(u32, String, String), Vec<Option<f64>>> = HashMap::new();
    let mut rv = ReviewStats {
        mistakes: mistakes.len(),
        ..Default::default()
    };
    rv.truncated = [&stored.feedback, &stored.cots, &stored.reviews]
        .iter()
        .flat_map(|v| v.iter())
        .filter(|a| crate::trainset::is_truncated(a))
        .count();
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
            .filter(|_| a.parse_ok && !truncated(&a));
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
    // Rationales and feedback are drawn from two streams, so that a variant with feedback
    // draws the very rationales its feedback-free ablation draws: full MAPD is then exactly
    // the accepted-rationales variant plus the feedback pairs (with one stream, each feedback
    // draw shifted every later rationale draw).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(recipe.seed);
    let mut feedback_rng = rand_chacha::ChaCha8Rng::seed_from_u64(recipe.seed);
    feedback_rng.set_stream(1);
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
        let (chosen_fbs, chosen_rats): (Vec<&Annotation>, Vec<&Annotation>) =
            match recipe.pairs_per_mistake {
                crate::recipe::PairsPerMistake::All => (fbs.clone(), accepted_here.clone()),
                crate::recipe::PairsPerMistake::One => (
                    fbs.choose(&mut feedback_rng).into_iter().copied().collect(),
                    accepted_here
                        .choose(&mut rng)
                        .into_iter()
                        .copied()
                        .collect(),
                ),
            };
        for f in chosen_fbs {
            rv.per_teacher
                .entry(f.source.clone())
                .or_default()
                .feedback_pairs += 1;
            pairs.push(fb_pair(f));
        }
        for r in chosen_rats {
            rv.per_teacher
                .entry(r.source.clone())
                .or_default()
                .rationale_pairs += 1;
            pairs.push(rat_pair(r));
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
