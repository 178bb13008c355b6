//! ELAD: the teacher writes chains of thought for a seed set; each round the student's most
//! uncertain explanations (`crate::elad`: instability + answer entropy) go to the teacher, which
//! revises them from their first flawed step. The student learns `solve:` → the seed CoTs and the
//! revisions (`filter_correct` keeps only those reaching gold). Scored with `cot`. The rounds
//! themselves are `mentor-pipeline`'s (`elad.rs`, `rounds.rs`).

use super::Method;
use crate::annotate::JudgedCot;
use crate::recipe::{Recipe, TeacherStage};
use crate::trainset::{Selection, Stored, StudentTask, TrainPair, TrainSetStats};
use mentor_core::Example;
use mentor_store::Annotation;

pub struct Elad;

impl Method for Elad {
    /// The seed set's chains of thought; the rounds' revisions are asked per round.
    fn teacher_stages(&self, _recipe: &Recipe) -> Vec<TeacherStage> {
        vec![TeacherStage::Cots { samples: 1 }]
    }

    fn trained_tasks(&self, _recipe: &Recipe) -> Vec<StudentTask> {
        vec![StudentTask::Cot]
    }

    /// A revised item has no seed CoT: one text per item either way.
    fn extra_cots(&self, stored: &Stored) -> Vec<Annotation> {
        crate::elad::revision_cots(&stored.revisions)
    }

    fn pairs(&self, recipe: &Recipe, sel: &Selection, _st: &mut TrainSetStats) -> Vec<TrainPair> {
        let kept: Vec<&JudgedCot> = sel.kept.iter().collect();
        let pair = |ex: &Example, task, solution: &str, target: String, weight, stage| {
            sel.pair(ex, task, solution, target, weight, stage)
        };
        let mut pairs = vec![];
        for c in &kept {
            pairs.push(pair(
                &c.example,
                StudentTask::Cot,
                "",
                sel.cot_text(recipe, c),
                1.0,
                0,
            ));
        }
        pairs
    }
}
