//! Distilling step-by-step: per question, `predict:` → the label (gold, or the teacher's with
//! `label_source = "teacher"`, the paper's `label_type llm`) at weight α and `explain:` → the
//! teacher's rationale (its chain of thought without the answer sentence) at 1 − α. Scored with
//! the label head.

use super::Method;
use crate::recipe::{Recipe, TeacherStage};
use crate::trainset::{Selection, StudentTask, TrainPair, TrainSetStats};
use mentor_core::text::split_rationale;
use mentor_core::Example;

pub struct StepByStep;

impl Method for StepByStep {
    fn teacher_stages(&self, _recipe: &Recipe) -> Vec<TeacherStage> {
        vec![TeacherStage::Cots { samples: 1 }]
    }

    fn trained_tasks(&self, _recipe: &Recipe) -> Vec<StudentTask> {
        vec![StudentTask::Label, StudentTask::Rationale]
    }

    fn pairs(&self, recipe: &Recipe, sel: &Selection, _st: &mut TrainSetStats) -> Vec<TrainPair> {
        let (items, kept_by_item) = (sel.items, &sel.kept_by_item);
        let pair = |ex: &Example, task, solution: &str, target: String, weight, stage| {
            sel.pair(ex, task, solution, target, weight, stage)
        };
        let mut pairs = vec![];
        for ex in items {
            if let Some(label) = sel.label(recipe, ex) {
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
        pairs
    }
}
