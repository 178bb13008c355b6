//! Standard fine-tuning or distillation: the student learns labels alone — the gold ones, or
//! (`label_source = "teacher"`) the answer the teacher's chain of thought ends in. Scored with
//! the label head.

use super::Method;
use crate::recipe::{LabelSource, Recipe, TeacherStage};
use crate::trainset::{Selection, StudentTask, TrainPair, TrainSetStats};

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
        sel.items
            .iter()
            .filter_map(|ex| {
                let label = sel.label(recipe, ex)?;
                Some(sel.pair(ex, StudentTask::Label, "", label, 1.0, 0))
            })
            .collect()
    }
}
