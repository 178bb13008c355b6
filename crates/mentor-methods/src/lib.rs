//! The recipes (standard, step-by-step, minds-mirror, mapd, elad) as compositions of shared
//! stages:
//!
//! - [`annotate`]: ask teachers (chains of thought, self-evaluations, feedback on the student's
//!   mistakes, peer reviews), store what they said;
//! - [`trainset`]: select and filter what teachers said into a recipe's training pairs;
//! - [`student`]: tokenise pairs through the student's chat template, train stage by stage;
//! - [`evaluate`]: the student answers held-out questions in one of four inference modes;
//! - [`elad`]: the student's uncertainty about its own explanations, selection under a budget,
//!   and the teacher's revisions (ELAD's rounds are driven by the `mentor` binary).
//!
//! [`recipe::Recipe`] (the `[recipe]` table) holds the knobs; [`recipes`] has one file a recipe,
//! saying which stages it runs and what it trains on. No stage imports a recipe.

pub mod annotate;
pub mod elad;
pub mod evaluate;
pub mod recipe;
pub mod recipes;
pub mod student;
pub mod trainset;

#[cfg(test)]
mod properties;
