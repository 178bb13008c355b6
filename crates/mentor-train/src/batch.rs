//! Training examples as token ids, and the batches built from them.
//!
//! An example is a prompt and a target, already tokenised (chat template applied by the
//! recipe); only the target's tokens are learned, each with the example's task weight. Batches
//! group examples of similar length (shuffled within length buckets) and pad on the right, so
//! little compute goes to padding and padding never sees a future token.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainExample {
    /// Prompt ids (not learned).
    pub prompt: Vec<u32>,
    /// Target ids (learned), ending with the end-of-turn token where the recipe wants one.
    pub target: Vec<u32>,
    /// The task's loss weight (step-by-step: α for `predict:`, 1 − α for `explain:`).
    pub weight: f32,
    /// The task's name, for per-task loss reporting.
    pub task: String,
}

impl TrainExample {
    pub fn len(&self) -> usize {
        self.prompt.len() + self.target.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A padded batch: inputs `[rows, width]`, next-token targets and weights, flattened row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub rows: usize,
    pub width: usize,
    pub input_ids: Vec<u32>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
    /// Indices of the examples in this batch.
    pub examples: Vec<usize>,
    /// Input positions that are not padding.
    pub tokens: usize,
}

impl Batch {
    /// Builds the batch of `examples` (indices into `all`), truncated to `max_len` tokens (the
    /// prompt's start is cut first: the target is what is learned).
    pub fn new(all: &[TrainExample], examples: &[usize], max_len: usize, pad_id: u32) -> Batch {
        let seqs: Vec<(Vec<u32>, usize)> = examples
            .iter()
            .map(|&i| {
                let e = &all[i];
                let mut seq: Vec<u32> = e.prompt.iter().chain(&e.target).copied().collect();
                let mut n_prompt = e.prompt.len();
                if seq.len() > max_len + 1 {
                    let cut = (seq.len() - max_len - 1).min(n_prompt);
                    seq.drain(..cut);
                    n_prompt -= cut;
                    seq.truncate(max_len + 1);
                }
                (seq, n_prompt)
            })
            .collect();
        let width = seqs
            .iter()
            .map(|(s, _)| s.len().saturating_sub(1))
            .max()
            .unwrap_or(0)
            .max(1);
        let rows = seqs.len();
        let mut b = Batch {
            rows,
            width,
            input_ids: vec![pad_id; rows * width],
            targets: vec![pad_id; rows * width],
            weights: vec![0.0; rows * width],
            examples: examples.to_vec(),
            tokens: seqs.iter().map(|(s, _)| s.len().saturating_sub(1)).sum(),
        };
        for (r, ((seq, n_prompt), &i)) in seqs.iter().zip(examples).enumerate() {
            let w = all[i].weight;
            for p in 0..seq.len().saturating_sub(1) {
                b.input_ids[r * width + p] = seq[p];
                b.targets[r * width + p] = seq[p + 1];
                // position p predicts token p+1: learned when p+1 is a target token
                if p + 1 >= *n_prompt {
                    b.weights[r * width + p] = w;
                }
            }
        }
        b
    }
}

/// The order examples are visited in epoch `epoch`: shuffled by `(seed, epoch)`, then cut into
/// batches of `batch_size` whose members have similar lengths (sorted within windows of 32
/// batches), and the batches shuffled again. A pure function of its inputs, so a resumed run
/// can recompute it and skip to its cursor.
pub fn epoch_batches(
    all: &[TrainExample],
    batch_size: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut rng);
    let window = batch_size * 32;
    let mut batches = Vec::new();
    for w in order.chunks_mut(window) {
        w.sort_by_key(|&i| all[i].len());
        batches.extend(w.chunks(batch_size).map(|c| c.to_vec()));
    }
    batches.shuffle(&mut rng);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[u32], t: &[u32], w: f32) -> TrainExample {
        TrainExample {
            prompt: p.to_vec(),
            target: t.to_vec(),
            weight: w,
            task: "t".into(),
        }
    }

    #[test]
    fn only_target_tokens_carry_weight_and_padding_is_on_the_right() {
        let all = vec![ex(&[10, 11], &[12, 13], 0.5), ex(&[20], &[21], 1.0)];
        let b = Batch::new(&all, &[0, 1], 64, 0);
        assert_eq!((b.rows, b.width), (2, 3));
        assert_eq!(b.input_ids, vec![10, 11, 12, 20, 0, 0]);
        assert_eq!(b.targets, vec![11, 12, 13, 21, 0, 0]);
        // 10→11 is prompt→prompt (not learned); 11→12 and 12→13 predict targets
        assert_eq!(b.weights, vec![0.0, 0.5, 0.5, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn long_examples_lose_prompt_tokens_first() {
        let all = vec![ex(&[1, 2, 3, 4, 5], &[6, 7], 1.0)];
        let b = Batch::new(&all, &[0], 4, 0);
        assert_eq!(b.input_ids, vec![3, 4, 5, 6]);
        assert_eq!(b.targets, vec![4, 5, 6, 7]);
        assert_eq!(b.weights, vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn epochs_are_reproducible_cover_everything_and_bucket_by_length() {
        let all: Vec<TrainExample> = (0..200u32)
            .map(|i| ex(&vec![1; (i % 50) as usize + 1], &[2], 1.0))
            .collect();
        let a = epoch_batches(&all, 8, 7, 0);
        assert_eq!(a, epoch_batches(&all, 8, 7, 0));
        assert_ne!(a, epoch_batches(&all, 8, 7, 1));
        let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        // within a batch lengths are close (window sorting), far closer than random
        let spread: usize = a
            .iter()
            .map(|b| {
                let l: Vec<usize> = b.iter().map(|&i| all[i].len()).collect();
                l.iter().max().unwrap() - l.iter().min().unwrap()
            })
            .sum();
        assert!(spread / a.len() < 10, "mean spread {}", spread / a.len());
    }
}
