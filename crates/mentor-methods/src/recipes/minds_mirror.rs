//! Mind's Mirror: K distinct chains of thought a question (sampled at `cot_temperature`) and M
//! self-evaluations of each. The student learns to reason — `solve:` → each CoT (`targets =
//! "cot"`), or the release's `predict:` gold label + `explain:` rationale per CoT
//! (`"label-rationale"`) — and to judge reasoning, `evaluate:` → a judgement ending in one
//! canonical verdict line (the teacher's, or gold-anchored: `self_eval_targets`). `two-stage`
//! trains judging first, then reasoning (the release's order); `mixed` both at once.

use super::Method;
use crate::annotate::JudgedCot;
use crate::recipe::{CotTargets, Recipe, SelfEvalTargets, TaskSchedule, TeacherStage};
use crate::trainset::{gold_label, Selection, StudentTask, TrainPair, TrainSetStats};

use mentor_core::text::split_rationale;
use mentor_core::{normalise_self_eval, Example, Verdict};
use mentor_store::Annotation;
use std::collections::{HashMap, HashSet};

pub struct MindsMirror;

impl Method for MindsMirror {
    fn teacher_stages(&self, recipe: &Recipe) -> Vec<TeacherStage> {
        let mut v = vec![TeacherStage::Cots {
            samples: recipe.cots_per_question.max(1),
        }];
        if recipe.evals_per_cot > 0 {
            v.push(TeacherStage::SelfEvals {
                per_cot: recipe.evals_per_cot,
            });
        }
        v
    }

    fn trained_tasks(&self, recipe: &Recipe) -> Vec<StudentTask> {
        let mut v = match recipe.targets {
            CotTargets::Cot => vec![StudentTask::Cot],
            CotTargets::LabelRationale => vec![StudentTask::Label, StudentTask::Rationale],
        };
        if recipe.evals_per_cot > 0 {
            v.push(StudentTask::SelfEval);
        }
        v
    }

    fn cots_per_item(&self, recipe: &Recipe) -> u32 {
        recipe.cots_per_question.max(1)
    }

    fn pairs(&self, recipe: &Recipe, sel: &Selection, st: &mut TrainSetStats) -> Vec<TrainPair> {
        let (kind, items, kept_by_item) = (sel.kind, sel.items, &sel.kept_by_item);
        let kept: Vec<&JudgedCot> = sel.kept.iter().collect();
        let distinct = &sel.distinct;
        let ids: HashSet<&str> = items.iter().map(|e| e.id.as_str()).collect();
        let m = recipe.evals_per_cot;
        let self_evals: Vec<&Annotation> = sel
            .stored
            .self_evals
            .iter()
            .filter(|a| a.sample_index % crate::annotate::SELF_EVAL_STRIDE < m)
            .collect();
        let pair = |ex: &Example, task, solution: &str, target: String, weight, stage| {
            sel.pair(ex, task, solution, target, weight, stage)
        };
        let mut pairs = vec![];
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
                        sel.cot_text(recipe, c),
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
                    let label = || gold_label(recipe, kind, ex);
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
            if crate::trainset::is_truncated(a) {
                st.self_evals_truncated += 1;
                continue;
            }
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
                SelfEvalTargets::Gold if agrees => normalise_self_eval(&a.text, v),
                // a critique that argued the other side would contradict its gold verdict line:
                // the verdict alone ("The proposed solution is correct." then "… is wrong."
                // would teach the student to judge against its own reasons)
                SelfEvalTargets::Gold => gold.sentence(),
            };
            let ex = &c.example;
            pairs.push(pair(
                ex,
                StudentTask::SelfEval,
                // the chain as the student learns to write it: it judges its own at inference
                &sel.cot_text(recipe, c),
                target,
                eval_w,
                eval_stage,
            ));
        }
        st.verdict_agreement = (parsed > 0).then(|| agree as f64 / parsed as f64);
        st.verdict_kappa = crate::trainset::verdict_kappa(&st.verdict_vs_gold);
        pairs
    }
}
