//! Token-level distillation losses: how far the student's next-token distribution is from the
//! teacher's, and the gradient of that distance with respect to the student's logits.
//!
//! Both distributions are taken at a temperature `T` (`p = softmax(teacher / T)`,
//! `q = softmax(student / T)`), and loss and gradient are multiplied by `T²` so that their size
//! does not shrink as `T` grows (Hinton et al., 2015) and a KD term mixes with cross-entropy at
//! any temperature. Like [`crate::loss::xent_rows_cpu`] the rows are walked on the host, in
//! parallel, so a caller can feed them chunk by chunk and never hold `[tokens, vocab]` twice.
//!
//! | divergence | loss per position | d loss / d student logit `i` (× T) |
//! |---|---|---|
//! | forward KL (DistillKit, Hinton) | `Σ p (log p − log q)` | `q_i − p_i` |
//! | reverse KL (MiniLLM) | `Σ q (log q − log p)` | `q_i (a_i − Σ q a)`, `a = log q − log p` |
//! | generalised JSD(β) (GKD) | `β KL(p‖m) + (1−β) KL(q‖m)`, `m = β p + (1−β) q` | `q_i (a_i − Σ q a)`, `a = (1−β)(log q − log m)` |
//!
//! JSD(β) tends to 0 at both ends of β; use the KL divergences for those limits.

use rayon::prelude::*;

/// Which distance between the teacher's and the student's next-token distributions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Divergence {
    /// KL(teacher ‖ student): the student covers every token the teacher gives mass to.
    ForwardKl,
    /// KL(student ‖ teacher): the student seeks the teacher's modes.
    ReverseKl,
    /// The generalised Jensen–Shannon divergence with mixture weight `beta` in (0, 1).
    Jsd { beta: f32 },
}

/// The distillation term of a training step: the loss over the weighted positions becomes
/// `(1 − weight) · CE(gold tokens) + weight · T² · D(teacher, student)`.
pub struct KdTerm<'a> {
    pub weight: f32,
    pub temperature: f32,
    pub divergence: Divergence,
    /// The teacher's logits (`positions.len() × vocab`, row-major) at these positions of the
    /// micro-batch (indices into its `rows × width` tokens); called chunk by chunk, so the
    /// teacher's logits of a whole batch never exist at once.
    pub teacher_logits: &'a (dyn Fn(&[usize]) -> candle_core::Result<Vec<f32>> + Sync),
    /// Which rows of the micro-batch (`width` positions each) take the KD term, e.g. only the
    /// rationale task's: `(row → on, width)`. The others keep their cross-entropy alone, at full
    /// weight, and the teacher is not asked about their positions. None: every row.
    pub rows: Option<(&'a [bool], usize)>,
}

impl KdTerm<'_> {
    /// The chunk's KD losses (one per position; 0 where [`KdTerm::rows`] leaves a row out) and,
    /// with `scale`, the mixed gradient: `xent_grad` (the cross-entropy's, already scaled)
    /// becomes `(1 − w) · xent_grad + w · kd_grad` at the positions that take the term.
    pub fn apply(
        &self,
        positions: &[usize],
        student_logits: &[f32],
        vocab: usize,
        scale: Option<&[f32]>,
        xent_grad: Option<&mut [f32]>,
    ) -> candle_core::Result<Vec<f32>> {
        let Some((rows, width)) = self.rows else {
            return self.apply_all(positions, student_logits, vocab, scale, xent_grad);
        };
        let on: Vec<usize> = (0..positions.len())
            .filter(|&k| {
                rows.get(positions[k] / width.max(1))
                    .copied()
                    .unwrap_or(false)
            })
            .collect();
        if on.len() == positions.len() {
            return self.apply_all(positions, student_logits, vocab, scale, xent_grad);
        }
        let mut loss = vec![0f32; positions.len()];
        if on.is_empty() {
            return Ok(loss);
        }
        // the positions that take the term, gathered; their results scattered back
        let sub_positions: Vec<usize> = on.iter().map(|&k| positions[k]).collect();
        let sub_logits: Vec<f32> = on
            .iter()
            .flat_map(|&k| student_logits[k * vocab..(k + 1) * vocab].iter().copied())
            .collect();
        let sub_scale: Option<Vec<f32>> = scale.map(|s| on.iter().map(|&k| s[k]).collect());
        let mut sub_grad: Option<Vec<f32>> = xent_grad.as_ref().map(|g| {
            on.iter()
                .flat_map(|&k| g[k * vocab..(k + 1) * vocab].iter().copied())
                .collect()
        });
        let sub_loss = self.apply_all(
            &sub_positions,
            &sub_logits,
            vocab,
            sub_scale.as_deref(),
            sub_grad.as_deref_mut(),
        )?;
        for (j, &k) in on.iter().enumerate() {
            loss[k] = sub_loss[j];
        }
        if let (Some(g), Some(sub)) = (xent_grad, sub_grad) {
            for (j, &k) in on.iter().enumerate() {
                g[k * vocab..(k + 1) * vocab].copy_from_slice(&sub[j * vocab..(j + 1) * vocab]);
            }
        }
        Ok(loss)
    }

    fn apply_all(
        &self,
        positions: &[usize],
        student_logits: &[f32],
        vocab: usize,
        scale: Option<&[f32]>,
        xent_grad: Option<&mut [f32]>,
    ) -> candle_core::Result<Vec<f32>> {
        let teacher = (self.teacher_logits)(positions)?;
        if teacher.len() != student_logits.len() {
            candle_core::bail!(
                "kd: the teacher gave {} logits for {} positions of a {vocab}-token vocabulary",
                teacher.len(),
                positions.len()
            );
        }
        let (loss, grad) = kd_rows_cpu(
            student_logits,
            &teacher,
            vocab,
            self.temperature,
            self.divergence,
            scale,
        );
        if let (Some(x), Some(k)) = (xent_grad, grad) {
            let w = self.weight;
            x.par_iter_mut()
                .zip(k.par_iter())
                .for_each(|(x, k)| *x = (1.0 - w) * *x + w * k);
        }
        Ok(loss)
    }
}

/// Per row of `student` and `teacher` logits (row-major, `vocab` wide): the divergence at
/// temperature `temperature`, times `T²`; with `scale`, also its gradient with respect to the
/// student's logits times `T² · scale[r]` (the same shape as `student`).
pub fn kd_rows_cpu(
    student: &[f32],
    teacher: &[f32],
    vocab: usize,
    temperature: f32,
    divergence: Divergence,
    scale: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    assert_eq!(
        student.len(),
        teacher.len(),
        "kd_rows_cpu: student and teacher differ in size"
    );
    assert!(
        vocab > 0 && student.len().is_multiple_of(vocab),
        "kd_rows_cpu: rows of {vocab}"
    );
    let t = temperature;
    let rows = student.len() / vocab;
    let mut grad = scale.map(|_| vec![0f32; student.len()]);
    let work = |r: usize, g: Option<&mut [f32]>| -> f32 {
        let lq = log_softmax(&student[r * vocab..(r + 1) * vocab], t);
        let lp = log_softmax(&teacher[r * vocab..(r + 1) * vocab], t);
        let (loss, a): (f64, Option<Vec<f64>>) = match divergence {
            Divergence::ForwardKl => {
                let loss = lp.iter().zip(&lq).map(|(&p, &q)| p.exp() * (p - q)).sum();
                (loss, None)
            }
            Divergence::ReverseKl => {
                let a: Vec<f64> = lq.iter().zip(&lp).map(|(&q, &p)| q - p).collect();
                let loss = lq.iter().zip(&a).map(|(&q, &a)| q.exp() * a).sum();
                (loss, Some(a))
            }
            Divergence::Jsd { beta } => {
                let b = beta as f64;
                let lm: Vec<f64> = lp
                    .iter()
                    .zip(&lq)
                    .map(|(&p, &q)| log_add(b.ln() + p, (1.0 - b).ln() + q))
                    .collect();
                let loss = (0..vocab)
                    .map(|i| {
                        b * lp[i].exp() * (lp[i] - lm[i])
                            + (1.0 - b) * lq[i].exp() * (lq[i] - lm[i])
                    })
                    .sum();
                let a = (0..vocab).map(|i| (1.0 - b) * (lq[i] - lm[i])).collect();
                (loss, Some(a))
            }
        };
        if let (Some(g), Some(s)) = (g, scale) {
            // d(T² · D)/d student = T · dD/d(student / T) · … = T · (per-divergence term)
            let k = t as f64 * s[r] as f64;
            match a {
                None => {
                    for i in 0..vocab {
                        g[i] = (k * (lq[i].exp() - lp[i].exp())) as f32;
                    }
                }
                Some(a) => {
                    let mean: f64 = lq.iter().zip(&a).map(|(&q, &a)| q.exp() * a).sum();
                    for i in 0..vocab {
                        g[i] = (k * lq[i].exp() * (a[i] - mean)) as f32;
                    }
                }
            }
        }
        (loss * (t as f64) * (t as f64)) as f32
    };
    let losses = match grad.as_mut() {
        Some(g) => g
            .par_chunks_mut(vocab)
            .enumerate()
            .map(|(r, g)| work(r, Some(g)))
            .collect(),
        None => (0..rows).into_par_iter().map(|r| work(r, None)).collect(),
    };
    (losses, grad)
}

/// `log softmax(row / t)` in f64 (KD compares two small probabilities; f32 loses them).
fn log_softmax(row: &[f32], t: f32) -> Vec<f64> {
    let t = t as f64;
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 / t));
    let lse = row
        .iter()
        .map(|&v| (v as f64 / t - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    row.iter().map(|&v| v as f64 / t - lse).collect()
}

/// `log(e^a + e^b)`.
fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var, D};

    fn seeded(n: usize, seed: u64, spread: f32) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-spread..spread)).collect()
    }

    /// The same loss from candle ops, differentiated by candle's autograd.
    fn autograd(
        student: &[f32],
        teacher: &[f32],
        vocab: usize,
        t: f64,
        div: Divergence,
        scale: &[f32],
    ) -> (f32, Vec<f32>) {
        let dev = Device::Cpu;
        let rows = student.len() / vocab;
        let s = Var::from_vec(student.to_vec(), (rows, vocab), &dev).unwrap();
        let tt = Tensor::from_vec(teacher.to_vec(), (rows, vocab), &dev).unwrap();
        let lq = candle_nn::ops::log_softmax(&(s.as_tensor() / t).unwrap(), D::Minus1).unwrap();
        let lp = candle_nn::ops::log_softmax(&(tt / t).unwrap(), D::Minus1).unwrap();
        let kl = |la: &Tensor, lb: &Tensor| {
            (la.exp().unwrap() * (la - lb).unwrap())
                .unwrap()
                .sum(D::Minus1)
                .unwrap()
        };
        let per_row = match div {
            Divergence::ForwardKl => kl(&lp, &lq),
            Divergence::ReverseKl => kl(&lq, &lp),
            Divergence::Jsd { beta } => {
                let b = beta as f64;
                let m = ((lp.exp().unwrap() * b).unwrap()
                    + (lq.exp().unwrap() * (1.0 - b)).unwrap())
                .unwrap();
                let lm = m.log().unwrap();
                ((kl(&lp, &lm) * b).unwrap() + (kl(&lq, &lm) * (1.0 - b)).unwrap()).unwrap()
            }
        };
        let w = Tensor::new(scale, &dev).unwrap();
        let total = ((per_row * w).unwrap().sum_all().unwrap() * (t * t)).unwrap();
        let grads = total.backward().unwrap();
        let g = grads
            .get(s.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        (total.to_scalar::<f32>().unwrap(), g)
    }

    #[test]
    fn loss_and_gradient_match_autograd_for_every_divergence_and_temperature() {
        let (rows, vocab) = (5, 13);
        let student = seeded(rows * vocab, 1, 3.0);
        let teacher = seeded(rows * vocab, 2, 4.0);
        let scale = [0.5f32, 1.0, 0.0, 2.0, 0.25];
        for div in [
            Divergence::ForwardKl,
            Divergence::ReverseKl,
            Divergence::Jsd { beta: 0.5 },
            Divergence::Jsd { beta: 0.1 },
        ] {
            for t in [1.0f32, 2.5] {
                let (loss, grad) = kd_rows_cpu(&student, &teacher, vocab, t, div, Some(&scale));
                let grad = grad.unwrap();
                let (want_loss, want_grad) =
                    autograd(&student, &teacher, vocab, t as f64, div, &scale);
                let got: f32 = loss.iter().zip(&scale).map(|(l, s)| l * s).sum();
                assert!(
                    (got - want_loss).abs() < 1e-4 * want_loss.abs().max(1.0),
                    "{div:?} T={t}: {got} vs {want_loss}"
                );
                for (i, (a, b)) in grad.iter().zip(&want_grad).enumerate() {
                    assert!((a - b).abs() < 1e-5, "{div:?} T={t} [{i}]: {a} vs {b}");
                }
                // without a scale: the same losses, no gradient work
                let (again, none) = kd_rows_cpu(&student, &teacher, vocab, t, div, None);
                assert_eq!(again, loss);
                assert!(none.is_none());
            }
        }
    }

    /// `rows` keeps the KD term to some rows of the micro-batch (one task's): those positions
    /// get exactly what the whole-batch term gives them, the others keep their cross-entropy
    /// gradient untouched and a KD loss of 0, and the teacher is asked about none of them.
    #[test]
    fn a_term_kept_to_some_rows_leaves_the_others_their_cross_entropy() {
        let (width, vocab) = (3, 11);
        // positions 0..6 of a 2-row batch (width 3), in a chunk that holds 1, 2, 3, 5
        let positions = [1usize, 2, 3, 5];
        let student = seeded(positions.len() * vocab, 4, 3.0);
        let teacher_all = seeded(2 * width * vocab, 5, 3.0);
        let asked = std::sync::Mutex::new(vec![]);
        let lookup = |pos: &[usize]| -> candle_core::Result<Vec<f32>> {
            asked.lock().unwrap().extend_from_slice(pos);
            Ok(pos
                .iter()
                .flat_map(|&p| teacher_all[p * vocab..(p + 1) * vocab].to_vec())
                .collect())
        };
        let scale = [1.0f32, 0.5, 2.0, 1.0];
        let xent = seeded(positions.len() * vocab, 6, 1.0);
        let term = |rows| KdTerm {
            weight: 0.4,
            temperature: 2.0,
            divergence: Divergence::ForwardKl,
            teacher_logits: &lookup,
            rows,
        };
        let mut all_grad = xent.clone();
        let all_loss = term(None)
            .apply(
                &positions,
                &student,
                vocab,
                Some(&scale),
                Some(&mut all_grad),
            )
            .unwrap();
        asked.lock().unwrap().clear();
        // row 1 (positions 3..6) only
        let on = [false, true];
        let mut grad = xent.clone();
        let loss = term(Some((&on, width)))
            .apply(&positions, &student, vocab, Some(&scale), Some(&mut grad))
            .unwrap();
        assert_eq!(*asked.lock().unwrap(), vec![3, 5]);
        assert_eq!(&loss[..2], &[0.0, 0.0]);
        assert_eq!(&loss[2..], &all_loss[2..]);
        assert_eq!(&grad[..2 * vocab], &xent[..2 * vocab]);
        assert_eq!(&grad[2 * vocab..], &all_grad[2 * vocab..]);
        assert_ne!(&grad[2 * vocab..], &xent[2 * vocab..]);
        // no row on: nothing asked, nothing changed
        asked.lock().unwrap().clear();
        let mut grad = xent.clone();
        let loss = term(Some((&[false, false], width)))
            .apply(&positions, &student, vocab, Some(&scale), Some(&mut grad))
            .unwrap();
        assert!(asked.lock().unwrap().is_empty() && loss.iter().all(|&l| l == 0.0));
        assert_eq!(grad, xent);
    }

    #[test]
    fn a_student_equal_to_its_teacher_has_no_loss_and_no_gradient() {
        let x = seeded(3 * 7, 3, 5.0);
        // the same distribution from shifted logits: softmax ignores a constant per row
        let shifted: Vec<f32> = x.iter().map(|v| v + 2.0).collect();
        for div in [
            Divergence::ForwardKl,
            Divergence::ReverseKl,
            Divergence::Jsd { beta: 0.3 },
        ] {
            let (loss, grad) = kd_rows_cpu(&x, &shifted, 7, 2.0, div, Some(&[1.0; 3]));
            assert!(loss.iter().all(|l| l.abs() < 1e-9), "{div:?}: {loss:?}");
            assert!(grad.unwrap().iter().all(|g| g.abs() < 1e-6), "{div:?}");
            // and any other teacher costs something
            let other = seeded(3 * 7, 4, 5.0);
            let (loss, _) = kd_rows_cpu(&x, &other, 7, 2.0, div, None);
            assert!(loss.iter().all(|&l| l > 1e-4), "{div:?}: {loss:?}");
        }
        // JSD at β = 0.5 is symmetric
        let y = seeded(3 * 7, 5, 5.0);
        let (a, _) = kd_rows_cpu(&x, &y, 7, 1.0, Divergence::Jsd { beta: 0.5 }, None);
        let (b, _) = kd_rows_cpu(&y, &x, 7, 1.0, Divergence::Jsd { beta: 0.5 }, None);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    /// Gradient descent on the student's logits with each divergence's gradient brings the
    /// student's distribution to the teacher's.
    #[test]
    fn following_the_gradient_moves_the_student_to_the_teacher() {
        let vocab = 9;
        let teacher = seeded(vocab, 6, 4.0);
        for div in [
            Divergence::ForwardKl,
            Divergence::ReverseKl,
            Divergence::Jsd { beta: 0.5 },
        ] {
            let mut student = seeded(vocab, 7, 4.0);
            let start =
                kd_rows_cpu(&student, &teacher, vocab, 1.0, Divergence::ForwardKl, None).0[0];
            for _ in 0..2000 {
                let (_, g) = kd_rows_cpu(&student, &teacher, vocab, 1.0, div, Some(&[1.0]));
                for (s, g) in student.iter_mut().zip(g.unwrap()) {
                    *s -= 0.5 * g;
                }
            }
            let end = kd_rows_cpu(&student, &teacher, vocab, 1.0, Divergence::ForwardKl, None).0[0];
            assert!(end < start * 1e-3, "{div:?}: KL {start} → {end}");
        }
    }
}
