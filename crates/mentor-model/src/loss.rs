//! Prompt-masked, weighted cross-entropy: the loss every recipe trains with.
//!
//! The full logits of a batch (`[b·t, vocab]`, 400 MB for 8 × 256 tokens of a 49k vocabulary)
//! and their gradient are the largest tensors of a training step. [`chunked_lm_loss`] never
//! builds them: it takes the final hidden states, keeps only the positions that carry weight
//! (prompt tokens carry none), and walks them in chunks, computing the loss and the gradients
//! of the LM head and of the hidden states chunk by chunk. It returns a *surrogate* scalar whose
//! gradient is exactly those gradients, so `surrogate.backward()` carries them through the rest
//! of the model while autograd never sees a logit.

use crate::kd::KdTerm;
use candle_core::{DType, Result, Tensor, D};

/// Mean next-token cross-entropy over the positions whose `weights` are non-zero, from full
/// logits (small models and tests; training uses [`chunked_lm_loss`]).
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

/// What [`chunked_lm_loss`] computed for one micro-batch.
pub struct LmLoss {
    /// Σ w·nll over this micro-batch's weighted positions.
    pub weighted_nll: f64,
    /// Σ w over them.
    pub weight: f64,
    /// Per position (in input order, all positions): the nll, 0 where the weight is 0.
    pub nll: Vec<f32>,
    /// A scalar whose gradient w.r.t. the hidden states and the LM head is that of
    /// `Σ w·nll / norm`; `None` when gradients were not asked for or no position has weight.
    pub surrogate: Option<Tensor>,
    /// With a [`KdTerm`]: Σ w·(T²·divergence) over the weighted positions (the gradient is then
    /// that of `Σ w·((1 − k)·nll + k·T²·divergence) / norm`, `k` the term's weight).
    pub weighted_kd: f64,
}

/// Loss of `hidden: [n, d]` (graph attached) under `lm_head: [vocab, d]` against `targets`
/// (n ids) with `weights` (n, 0 = ignore). With `norm = Some(z)` the surrogate's gradient is
/// that of `Σ w·nll / z` (pass the weight total of the whole accumulated batch); with `None`
/// no gradient work is done. `chunk` rows of logits exist at a time.
pub fn chunked_lm_loss(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &[u32],
    weights: &[f32],
    norm: Option<f64>,
    chunk: usize,
) -> Result<LmLoss> {
    chunked_lm_loss_with(hidden, lm_head, targets, weights, norm, chunk, None)
}

/// [`chunked_lm_loss`] with a token-level distillation term mixed in.
pub fn chunked_lm_loss_with(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &[u32],
    weights: &[f32],
    norm: Option<f64>,
    chunk: usize,
    kd: Option<&KdTerm>,
) -> Result<LmLoss> {
    let (n, _) = hidden.dims2()?;
    if targets.len() != n || weights.len() != n {
        candle_core::bail!(
            "chunked_lm_loss: {n} positions but {} targets and {} weights",
            targets.len(),
            weights.len()
        );
    }
    let dev = hidden.device();
    let keep: Vec<u32> = (0..n as u32)
        .filter(|&i| weights[i as usize] > 0.0)
        .collect();
    let mut out = LmLoss {
        weighted_nll: 0.0,
        weight: keep.iter().map(|&i| weights[i as usize] as f64).sum(),
        nll: vec![0.0; n],
        surrogate: None,
        weighted_kd: 0.0,
    };
    if keep.is_empty() {
        return Ok(out);
    }
    let selected = hidden.index_select(&Tensor::new(keep.as_slice(), dev)?, 0)?;
    let h = selected.detach();
    // under mixed precision the head is f32 and the hidden states bf16: compute in theirs
    let w = lm_head.detach().to_dtype(h.dtype())?;
    // a frozen head (LoRA) needs no weight gradient: skip its [vocab, d] matmul per chunk
    let head_trainable = lm_head.is_variable();
    let mut grad_h = Vec::new();
    let mut grad_w: Option<Tensor> = None;
    for start in (0..keep.len()).step_by(chunk.max(1)) {
        let rows = &keep[start..(start + chunk).min(keep.len())];
        let len = rows.len();
        let hc = h.narrow(0, start, len)?;
        let logits = hc.matmul(&w.t()?)?.to_dtype(DType::F32)?;
        let tgt: Vec<u32> = rows.iter().map(|&i| targets[i as usize]).collect();
        // d(Σ w·nll / z)/d logits = (softmax − onehot(target)) · w / z
        let scale: Option<Vec<f32>> = norm.map(|z| {
            rows.iter()
                .map(|&i| (weights[i as usize] as f64 / z) as f32)
                .collect()
        });
        let (nll, g) = match kd {
            // the divergence is walked on the host; its gradient mixes into the xent's there
            Some(kd) => {
                let host = logits.flatten_all()?.to_vec1::<f32>()?;
                let positions: Vec<usize> = rows.iter().map(|&i| i as usize).collect();
                let vocab = host.len() / len;
                let (nll, mut g) = xent_rows_cpu(host.clone(), &tgt, scale.as_deref());
                let kd_loss =
                    kd.apply(&positions, &host, vocab, scale.as_deref(), g.as_deref_mut())?;
                for (&i, v) in rows.iter().zip(&kd_loss) {
                    out.weighted_kd += (*v * weights[i as usize]) as f64;
                }
                (
                    nll,
                    g.map(|g| Tensor::from_vec(g, logits.shape(), dev))
                        .transpose()?,
                )
            }
            None if dev.is_cpu() => {
                let (nll, g) = xent_rows_cpu(
                    logits.flatten_all()?.to_vec1::<f32>()?,
                    &tgt,
                    scale.as_deref(),
                );
                (
                    nll,
                    g.map(|g| Tensor::from_vec(g, logits.shape(), dev))
                        .transpose()?,
                )
            }
            None => xent_rows(&logits, &tgt, scale.as_deref())?,
        };
        for (&i, v) in rows.iter().zip(&nll) {
            out.nll[i as usize] = *v;
            out.weighted_nll += (*v * weights[i as usize]) as f64;
        }
        let Some(g) = g else { continue };
        let g = g.to_dtype(w.dtype())?;
        grad_h.push(g.matmul(&w)?);
        if head_trainable {
            let gw = g.t()?.matmul(&hc)?;
            grad_w = Some(match grad_w {
                Some(acc) => (acc + gw)?,
                None => gw,
            });
        }
    }
    if !grad_h.is_empty() {
        let grad_h = Tensor::cat(&grad_h, 0)?;
        let mut surrogate = (selected * grad_h)?.sum_all()?.to_dtype(DType::F32)?;
        if let Some(grad_w) = grad_w {
            let grad_w = grad_w.to_dtype(lm_head.dtype())?;
            let head_part = (lm_head * grad_w)?.sum_all()?.to_dtype(DType::F32)?;
            surrogate = (surrogate + head_part)?;
        }
        out.surrogate = Some(surrogate);
    }
    Ok(out)
}

/// Per row of `logits` (`[rows, vocab]`): the nll of `targets[r]`, and with `scale` the
/// gradient `(softmax − onehot) · scale[r]` — in one parallel pass over the host copy, which it
/// overwrites (the elementwise tensor version makes eight passes, some single-threaded).
pub(crate) fn xent_rows_cpu(
    mut logits: Vec<f32>,
    targets: &[u32],
    scale: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    use crate::fastmath;
    use rayon::prelude::*;
    let vocab = logits.len() / targets.len().max(1);
    let nll: Vec<f32> = logits
        .par_chunks_mut(vocab)
        .enumerate()
        .map(|(r, row)| {
            let t = targets[r] as usize;
            let (max, picked) = (fastmath::max(row), row[t]);
            match scale {
                // the gradient needs each e^(v − max): computed once, in place
                Some(s) => {
                    row.iter_mut().for_each(|v| *v = fastmath::exp(*v - max));
                    let sum = fastmath::sum(row);
                    let k = s[r] / sum;
                    row.iter_mut().for_each(|v| *v *= k);
                    row[t] -= s[r];
                    sum.ln() + max - picked
                }
                None => {
                    let sum: f32 = row
                        .chunks(4096)
                        .map(|c| {
                            let mut e = [0f32; 4096];
                            let e = &mut e[..c.len()];
                            e.iter_mut()
                                .zip(c)
                                .for_each(|(e, &v)| *e = fastmath::exp(v - max));
                            fastmath::sum(e)
                        })
                        .sum();
                    sum.ln() + max - picked
                }
            }
        })
        .collect();
    (nll, scale.map(|_| logits))
}

/// The device-agnostic version of [`xent_rows_cpu`], from tensor ops.
fn xent_rows(
    logits: &Tensor,
    targets: &[u32],
    scale: Option<&[f32]>,
) -> Result<(Vec<f32>, Option<Tensor>)> {
    let (len, _) = logits.dims2()?;
    let dev = logits.device();
    let max = logits.max_keepdim(1)?;
    let exp = logits.broadcast_sub(&max)?.exp()?;
    let sum = exp.sum_keepdim(1)?;
    let lse = (sum.log()? + max)?;
    let tgt = Tensor::from_vec(targets.to_vec(), (len, 1), dev)?;
    let nll = (lse - logits.gather(&tgt, 1)?)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let Some(scale) = scale else {
        return Ok((nll, None));
    };
    let scale = Tensor::from_vec(scale.to_vec(), (len, 1), dev)?;
    let minus_one = Tensor::full(-1f32, (len, 1), dev)?;
    let g = exp
        .broadcast_div(&sum)?
        .scatter_add(&tgt, &minus_one, 1)?
        .broadcast_mul(&scale)?;
    Ok((nll, Some(g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU kernel and the tensor-op version (used on GPUs) agree.
    #[test]
    fn cpu_kernel_matches_tensor_ops() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let logits = Tensor::randn(0f32, 3.0, (5, 11), &dev)?;
        let targets = [0u32, 10, 3, 3, 7];
        let scale = [0.1f32, 0.2, 0.0, 0.5, 1.0];
        let (n1, g1) = xent_rows(&logits, &targets, Some(&scale))?;
        let (n2, g2) = xent_rows_cpu(logits.flatten_all()?.to_vec1()?, &targets, Some(&scale));
        for (a, b) in n1.iter().zip(&n2) {
            assert!((a - b).abs() < 1e-5, "{n1:?} vs {n2:?}");
        }
        let g1 = g1.unwrap().flatten_all()?.to_vec1::<f32>()?;
        for (a, b) in g1.iter().zip(g2.unwrap()) {
            assert!((a - b).abs() < 1e-6);
        }
        Ok(())
    }
}
