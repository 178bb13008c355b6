//! Standard fine-tuning or distillation: the student learns labels alone — the gold ones, or
//! (`label_source = "teacher"`) the answer the teacher's chain of thought ends in. Scored with
//! the label head.

use super::Method;
use crate::recipe::{LabelSource, Recipe, TeacherStage};
use crate::trainset::{teacher_answer_sentence, Selection, StudentTask, TrainPair, TrainSetStats};
use mentor_core::prompt::answer_sentence;
use mentor_core::Example;

pub struct Standard;

impl Method for Standard {
    fn teacher_stages(&self, recipe: &Recipe) -> Vec<TeacherStage> {
        match recipe.label_source {
            LabelSource::Gold => vec![],
            LabelSource::Teacher => vec![TeacherStage::Cots { samples: 1 }],
        }
    }

    fn trained_tasks(&self, _recipe: &Recipe) -> Vec<StudentTask> {
        vec![StudentTask::Label]
    }

    fn pairs(&self, recipe: &Recipe, sel: &Selection, _st: &mut TrainSetStats) -> Vec<TrainPair> {
        let (kind, items, kept_by_item) = (sel.kind, sel.items, &sel.kept_by_item);
        let pair = |ex: &Example, task, solution: &str, target: String, weight, stage| {
            sel.pair(ex, task, solution, target, weight, stage)
        };
        let mut pairs = vec![];
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
        pairs
    }
}
