//! Prompt-masked, weighted cross-entropy: the loss every recipe trains with.

use candle_core::{Result, Tensor, D};

/// Mean next-token cross-entropy over the positions whose `weights` are non-zero.
///
/// `logits`: `[b, t, vocab]` from the model on `input_ids`; `targets`: `[b, t]` u32, the token
/// that should follow each position; `weights`: `[b, t]` f32, 0 on prompt and padding positions
/// and the task's weight on target positions (step-by-step's α for `predict:` rows, 1 − α for
/// `explain:` rows). Returns Σ w·nll / Σ w.
pub fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_probs
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?;
    let total = weights.sum_all()?;
    (picked.neg()? * weights)?.sum_all()?.broadcast_div(&total)
}
