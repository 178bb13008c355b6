//! Domain types of mentor and everything that turns model text into a scored answer.
//!
//! Nothing here does I/O: the types ([`Example`], [`TaskKind`]), answer extraction per task kind
//! ([`extract`]), safe arithmetic for equation labels ([`equation`]), completion clean-up
//! ([`text`]), scoring ([`score`]), paired statistics between students ([`stats`]), prompt templates ([`prompt`]), self-evaluation verdicts ([`verdict`]) and
//! peer-review scores ([`review`]). Every other crate builds on these.

pub mod equation;
pub mod example;
pub mod extract;
pub mod prompt;
pub mod review;
pub mod score;
pub mod stats;
pub mod task;
pub mod text;
pub mod verdict;

pub use example::{Choice, Example, Split};
pub use extract::{extract, Extracted, NumericRule};
pub use score::{score_prediction, Score, ScoreSummary};
pub use task::TaskKind;
pub use verdict::{normalise_self_eval, parse_verdict, Verdict};
