//! The recipes, one file each: what a recipe asks its teachers ([`Method::teacher_stages`]),
//! which chains of thought it uses ([`Method::cots_per_item`], [`Method::extra_cots`]), what
//! pairs it trains on ([`Method::pairs`], or the whole [`Method::training_set`]) and so which
//! student tasks it trains ([`Method::trained_tasks`], from which its default inference mode
//! follows). Everything they call is a shared stage (`annotate`, `trainset`, `student`,
//! `evaluate`); no stage imports a recipe. A recipe's rounds, if any (ELAD, MAPD's mining
//! rounds), are driven by `mentor-pipeline`'s round loop.
//!
//! A new recipe is a new file here with a `Method`, a variant of
//! [`crate::recipe::RecipeName`], and one line in [`method`]; `standard.rs` is the smallest.

pub mod elad;
pub mod mapd;
pub mod minds_mirror;
pub mod standard;
pub mod step_by_step;

use crate::evaluate::InferenceMode;
use crate::recipe::{Recipe, RecipeName, TaskSchedule, TeacherStage};
use crate::trainset::{
    count_pairs, recipe_cots, select_cots, Selection, Stored, StudentTask, TrainPair,
    TrainSetStats, TrainingSet,
};
use mentor_core::{Example, TaskKind};
use mentor_store::Annotation;

/// A recipe.
pub trait Method: Sync {
    /// The teacher stages it runs, in order.
    fn teacher_stages(&self, recipe: &Recipe) -> Vec<TeacherStage>;

    /// The student tasks its training set can hold.
    fn trained_tasks(&self, recipe: &Recipe) -> Vec<StudentTask>;

    /// How many of each teacher's stored chains of thought an item it uses (the first ones).
    fn cots_per_item(&self, _recipe: &Recipe) -> u32 {
        1
    }

    /// Texts it counts as chains of thought besides the teachers' (ELAD's revisions).
    fn extra_cots(&self, _stored: &Stored) -> Vec<Annotation> {
        vec![]
    }

    /// The training pairs from the selected chains of thought (and anything else stored);
    /// `st` takes the recipe's own counts.
    fn pairs(&self, recipe: &Recipe, sel: &Selection, st: &mut TrainSetStats) -> Vec<TrainPair>;

    /// The training set: by default the shared chain-of-thought selection, then [`Method::pairs`].
    fn training_set(
        &self,
        recipe: &Recipe,
        kind: TaskKind,
        items: &[Example],
        stored: &Stored,
    ) -> TrainingSet {
        let mut cots = recipe_cots(self.cots_per_item(recipe), &stored.cots);
        cots.extend(self.extra_cots(stored));
        let needs_cot = !self.teacher_stages(recipe).is_empty();
        let (sel, mut st) = select_cots(recipe, kind, items, stored, cots, needs_cot);
        let pairs = self.pairs(recipe, &sel, &mut st);
        count_pairs(&mut st, &pairs);
        TrainingSet { pairs, stats: st }
    }
}

/// Builds the training set of `recipe` over `items` from what the run store holds: the recipe's
/// own file says what it keeps and trains on.
pub fn training_set(
    recipe: &Recipe,
    kind: TaskKind,
    items: &[Example],
    stored: &Stored,
) -> TrainingSet {
    method(recipe.name).training_set(recipe, kind, items, stored)
}

/// The recipe a `[recipe] name` names.
pub fn method(name: RecipeName) -> &'static dyn Method {
    match name {
        RecipeName::Standard => &standard::Standard,
        RecipeName::StepByStep => &step_by_step::StepByStep,
        RecipeName::MindsMirror => &minds_mirror::MindsMirror,
        RecipeName::Mapd => &mapd::Mapd,
        RecipeName::Elad => &elad::Elad,
    }
}

/// What a `[recipe]` table does, as its recipe's file says: its teacher stages, the chains of
/// thought it uses, the tasks it trains and so the inference modes that measure it.
pub trait RecipeExt {
    /// The teacher stages this recipe runs, in order.
    fn teacher_stages(&self) -> Vec<TeacherStage>;
    /// How many of each teacher's chains of thought an item the recipe uses (Mind's Mirror's K).
    fn cots_per_item(&self) -> u32;
    /// The student tasks this recipe's training set can hold.
    fn trained_tasks(&self) -> Vec<StudentTask>;
    /// The inference mode the student is scored in unless `[eval] mode` says otherwise: the
    /// label head where the recipe trains one, else its chain of thought.
    fn default_mode(&self) -> InferenceMode;
    /// Refuses an inference mode that prompts the student with a task this recipe never trains.
    fn check_mode(&self, mode: InferenceMode) -> Result<(), String>;
}

impl RecipeExt for Recipe {
    /// The teacher stages this recipe runs, in order (its file in `crate::recipes` says).
    fn teacher_stages(&self) -> Vec<TeacherStage> {
        method(self.name).teacher_stages(self)
    }

    /// How many of each teacher's chains of thought an item the recipe uses (Mind's Mirror's K).
    fn cots_per_item(&self) -> u32 {
        method(self.name).cots_per_item(self)
    }

    /// The student tasks this recipe's training set can hold.
    fn trained_tasks(&self) -> Vec<StudentTask> {
        method(self.name).trained_tasks(self)
    }

    /// The inference mode the student is scored in unless `[eval] mode` says otherwise: the
    /// label head where the recipe trains one, else its chain of thought.
    fn default_mode(&self) -> InferenceMode {
        if self.trained_tasks().contains(&StudentTask::Label) {
            InferenceMode::Label
        } else {
            InferenceMode::Cot
        }
    }

    /// Refuses an inference mode that prompts the student with a task this recipe never trains
    /// (MAPD scored with `predict:` would measure the untrained prompt, not the recipe).
    fn check_mode(&self, mode: InferenceMode) -> Result<(), String> {
        if mode == InferenceMode::SelfEvalVote
            && self.name == RecipeName::MindsMirror
            && self.schedule == TaskSchedule::TwoStage
            && self.evals_per_cot > 0
        {
            return Err(
                "inference mode `self-eval-vote` needs the student's judging skill, which \
                 `schedule = \"two-stage\"` trains first and then overwrites with chains of \
                 thought (the release's order; it never judged at inference); use \
                 `schedule = \"mixed\"`"
                    .into(),
            );
        }
        let trained = self.trained_tasks();
        let missing: Vec<&str> = mode
            .tasks()
            .iter()
            .filter(|t| !trained.contains(t))
            .map(|t| t.prompt_prefix())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let modes: Vec<&str> = [
            InferenceMode::Label,
            InferenceMode::Cot,
            InferenceMode::Vote,
            InferenceMode::SelfEvalVote,
        ]
        .into_iter()
        .filter(|m| m.tasks().iter().all(|t| trained.contains(t)))
        .map(|m| m.as_str())
        .collect();
        Err(format!(
            "inference mode `{}` prompts the student with `{}:`, which recipe `{}` does not train \
             (it trains {}); use one of: {}",
            mode.as_str(),
            missing.join(":`, `"),
            self.name.as_str(),
            trained
                .iter()
                .map(|t| format!("`{}:`", t.prompt_prefix()))
                .collect::<Vec<_>>()
                .join(", "),
            modes.join(", ")
        ))
    }
}
