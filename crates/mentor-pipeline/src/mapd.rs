//! MAPD's mining rounds (`recipe.mining_rounds` > 1) in the round loop of [`crate::rounds`].
//!
//! Round 0 is the authors' single pass: the base student (or the dataset's recorded student)
//! answers the train split, and the committee explains, answers and peer-reviews its mistakes.
//! Each later round, the last round's best student answers the whole train split again
//! (temperature 0.3, top-p 0.9); what it now gets wrong — new mistakes, and questions still
//! wrong with a new wrong answer — go through the same three teacher stages, stored under the
//! round's number, and the student retrains on the pairs of every round so far. A question's
//! rationales and reviews repeat their requests, so a question wrong again costs only its new
//! feedback: the rest is answered from the teacher cache.

use crate::annotate::annotate_round;
use crate::rounds::{Annotated, RoundTeacher};
use crate::run::Run;
use anyhow::Result;
use mentor_core::Split;
use mentor_methods::annotate::mistakes;
use mentor_methods::recipe::{FEEDBACK_STAGE, MINE_STAGE};

/// MAPD's committee in the round loop.
pub struct Mapd;

impl RoundTeacher for Mapd {
    /// Mines `model`'s mistakes on the train split and runs the committee's stages on them.
    fn annotate(&self, r: &Run, round: u32, model: &str) -> Result<Annotated> {
        let items = r.ds.split(Split::Train);
        // built for this round only: embedded teachers' models are freed before retraining
        let teachers = crate::teachers::for_run(r)?;
        let stages = annotate_round(r, &teachers, items, round, model)?;
        drop(teachers);
        if self.sent(r, round)? == 0 {
            return Ok(Annotated::Nothing(format!(
                "the student made no mistake on the train split in round {round}"
            )));
        }
        Annotated::from_reports(round, stages)
    }

    /// Train items with any committee feedback, over all rounds.
    fn items_annotated(&self, r: &Run) -> Result<usize> {
        let fb = r
            .store
            .lock()
            .unwrap()
            .annotations(FEEDBACK_STAGE.0, FEEDBACK_STAGE.1)?;
        let ids: std::collections::HashSet<String> = fb.into_iter().map(|a| a.example_id).collect();
        Ok(ids.len())
    }

    /// The mistakes mined in `round`.
    fn sent(&self, r: &Run, round: u32) -> Result<usize> {
        let mut mined = r
            .store
            .lock()
            .unwrap()
            .annotations(MINE_STAGE.0, MINE_STAGE.1)?;
        mined.retain(|a| a.round == round);
        Ok(mistakes(r.ds.split(Split::Train), &mined).len())
    }
}
