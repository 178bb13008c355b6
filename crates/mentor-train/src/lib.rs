//! Training for mentor students.
//!
//! [`batch`] turns tokenised (prompt, target, task weight) examples into right-padded,
//! length-bucketed batches; [`optim`] holds AdamW (with state that checkpoints) and the
//! warm-up + cosine/linear/constant schedule; [`trainer`] is the loop — chunked loss (or the
//! written-out CPU step of `mentor_model::cpu_train`), gradient
//! accumulation and clipping, validation every N steps with best-checkpoint selection on the
//! validation split, and atomic, resumable checkpoints.

pub mod batch;
pub mod optim;
pub mod trainer;

pub use batch::{Batch, TrainExample};
pub use trainer::{
    eval_loss, optimizer_step, optimizer_step_with, train, train_with, written_out_step, EpochUnit,
    EvalLog, Hooks, KdLoss, KdSettings, KdTeacher, LossPer, Quiet, StepLog, StepOutcome,
    TrainConfig, TrainReport,
};
