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
    /// The targets were sampled from the student itself (on-policy distillation): the loss is
    /// the teacher's divergence alone, and the cross-entropy is not logged.
    pub on_policy: bool,
    /// Per row, whether the KD term applies (`kd.tasks`); None: every row.
    pub kd_rows: Option<Vec<bool>>,
}

impl Batch {
    /// Builds the batch of `examples` (indices into `all`), each cut to `max_len` tokens by
    /// [`fit`].
    pub fn new(all: &[TrainExample], examples: &[usize], max_len: usize, pad_id: u32) -> Batch {
        let seqs: Vec<(Vec<u32>, usize)> = examples
            .iter()
            .map(|&i| fit(&all[i], max_len + 1))
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
            on_policy: false,
            kd_rows: None,
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

/// An example as one sequence of at most `limit` tokens, and how many of them are prompt.
///
/// A long example never loses the start of its prompt, where the task prefix and the question
/// are: the prompt keeps up to ¾ of `limit` — its head and its last sixth (the chat template's
/// turn markers, and in MAPD's feedback prompt the gold answer), its middle cut (the student's
/// long answer) — and the target's end goes. A prompt short enough keeps all of itself and the
/// target gets the rest.
pub fn fit(e: &TrainExample, limit: usize) -> (Vec<u32>, usize) {
    let (p, t) = (e.prompt.len(), e.target.len());
    if p + t <= limit {
        return (e.prompt.iter().chain(&e.target).copied().collect(), p);
    }
    let prompt_room = (limit * 3 / 4).max(limit.saturating_sub(t));
    let prompt: Vec<u32> = if p <= prompt_room {
        e.prompt.clone()
    } else {
        let tail = prompt_room / 6;
        let head = prompt_room - tail;
        e.prompt[..head]
            .iter()
            .chain(&e.prompt[p - tail..])
            .copied()
            .collect()
    };
    let n_prompt = prompt.len();
    let mut seq = prompt;
    seq.extend(e.target.iter().take(limit - n_prompt));
    (seq, n_prompt)
}

/// How many of `examples` are longer than `max_len` tokens (and so cut by [`fit`]).
pub fn count_truncated(examples: &[TrainExample], max_len: usize) -> usize {
    examples.iter().filter(|e| e.len() > max_len + 1).count()
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
    fn long_examples_keep_the_prompts_start() {
        let all = vec![ex(&[1, 2, 3, 4, 5], &[6, 7], 1.0)];
        let b = Batch::new(&all, &[0], 4, 0);
        assert_eq!(b.input_ids, vec![1, 2, 3, 6]);
        assert_eq!(b.targets, vec![2, 3, 6, 7]);
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

    /// A long example keeps its prompt's head (the question) and tail, loses the prompt's
    /// middle, then the target's end; a short prompt keeps all of itself.
    #[test]
    fn a_long_example_never_loses_its_question() {
        let prompt: Vec<u32> = (100..180).collect(); // 80 tokens
        let target: Vec<u32> = (500..540).collect(); // 40 tokens
        let e = ex(&prompt, &target, 1.0);
        let (seq, n) = fit(&e, 64);
        assert_eq!(seq.len(), 64);
        assert_eq!(n, 48); // ¾ of 64
        assert_eq!(seq[..40], prompt[..40]); // the head: task prefix and question
        assert_eq!(seq[40..48], prompt[72..]); // the last sixth of the prompt's room
        assert_eq!(seq[48..], target[..16]); // the target's start
                                             // a prompt that fits keeps all of itself; the target's end goes
        let e = ex(&prompt[..20], &target, 1.0);
        let (seq, n) = fit(&e, 50);
        assert_eq!((seq.len(), n), (50, 20));
        assert_eq!(seq[..20], prompt[..20]);
        assert_eq!(seq[20..], target[..30]);
        // short enough: untouched
        let (seq, n) = fit(&e, 100);
        assert_eq!((seq.len(), n), (60, 20));
        assert_eq!(
            count_truncated(&[e.clone(), ex(&prompt, &target, 1.0)], 63),
            1
        );
        // the batch uses it: the first token learned is the target's first
        let b = Batch::new(&[ex(&prompt, &target, 1.0)], &[0], 63, 0);
        assert_eq!(b.input_ids[..40], prompt[..40]);
        let first = b.weights.iter().position(|&w| w > 0.0).unwrap();
        assert_eq!(b.targets[first], 500);
    }
}
