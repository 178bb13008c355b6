//! Token-level distillation inside the training step: the chunked loss and the written-out CPU
//! step mix `(1 − k)·CE + k·T²·D(teacher, student)` exactly as a direct computation over full
//! logits differentiated by autograd, and following that gradient moves a tiny student's
//! next-token distributions toward a tiny teacher's.

use candle_core::{Device, Result, Tensor, D};
use mentor_model::kd::{kd_rows_cpu, Divergence, KdTerm};
use mentor_model::load::Student;
use mentor_model::loss::chunked_lm_loss_with;
use mentor_model::{cpu_train, LlamaConfig};

fn config() -> LlamaConfig {
    LlamaConfig {
        max_position_embeddings: 64,
        ..LlamaConfig::tiny(40)
    }
}

fn batch(rows: usize, width: usize, vocab: u32) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let (mut ids, mut targets, mut weights) = (vec![], vec![], vec![]);
    for r in 0..rows {
        let seq: Vec<u32> = (0..=width as u32)
            .map(|i| (r as u32 * 11 + i * 5 + i * i) % vocab)
            .collect();
        ids.extend_from_slice(&seq[..width]);
        targets.extend_from_slice(&seq[1..]);
        weights.extend((0..width).map(|p| {
            if p < width / 3 {
                0.0
            } else if r % 2 == 0 {
                1.0
            } else {
                0.4
            }
        }));
    }
    (ids, targets, weights)
}

/// All of a model's logits for `ids`, row-major `[rows·width, vocab]`, on the host.
fn all_logits(s: &Student, ids: &[u32], rows: usize, width: usize) -> Result<Vec<f32>> {
    let t = Tensor::from_vec(ids.to_vec(), (rows, width), &Device::Cpu)?;
    let h = s.model.forward_hidden(&t)?.reshape((rows * width, ()))?;
    h.matmul(&s.model.lm_head_weight().t()?)?
        .flatten_all()?
        .to_vec1::<f32>()
}

fn term<'a>(
    k: f32,
    t: f32,
    divergence: Divergence,
    f: &'a (dyn Fn(&[usize]) -> Result<Vec<f32>> + Sync),
) -> KdTerm<'a> {
    KdTerm {
        weight: k,
        temperature: t,
        divergence,
        teacher_logits: f,
        rows: None,
    }
}

#[test]
fn the_mixed_loss_and_its_gradient_match_autograd_in_both_steps() -> Result<()> {
    let dev = Device::Cpu;
    let cfg = config();
    let vocab = cfg.vocab_size;
    let student = Student::random(&cfg, &dev, 11)?;
    let teacher = Student::random(&cfg, &dev, 5)?;
    let (rows, width) = (3, 20);
    let (ids, targets, weights) = batch(rows, width, vocab as u32);
    let teacher_all = all_logits(&teacher, &ids, rows, width)?;
    let lookup = |pos: &[usize]| -> Result<Vec<f32>> {
        Ok(pos
            .iter()
            .flat_map(|&p| teacher_all[p * vocab..(p + 1) * vocab].to_vec())
            .collect())
    };
    let norm = 4.5;
    for (k, t, div) in [
        (0.5f32, 2.0f32, Divergence::ForwardKl),
        (1.0, 1.0, Divergence::ReverseKl),
        (0.3, 1.5, Divergence::Jsd { beta: 0.5 }),
    ] {
        let what = format!("k={k} T={t} {div:?}");
        // the direct objective over full logits, through autograd
        let ids_t = Tensor::from_vec(ids.clone(), (rows, width), &dev)?;
        let hidden = student
            .model
            .forward_hidden(&ids_t)?
            .reshape((rows * width, ()))?;
        let logits = hidden.matmul(&student.model.lm_head_weight().t()?)?;
        let lq = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let tgt = Tensor::from_vec(targets.clone(), (rows * width, 1), &dev)?;
        let nll = lq.gather(&tgt, D::Minus1)?.squeeze(D::Minus1)?.neg()?;
        let lqt = candle_nn::ops::log_softmax(&(logits / t as f64)?, D::Minus1)?;
        let tt = Tensor::from_vec(teacher_all.clone(), (rows * width, vocab), &dev)?;
        let lpt = candle_nn::ops::log_softmax(&(tt / t as f64)?, D::Minus1)?;
        let kl =
            |a: &Tensor, b: &Tensor| -> Result<Tensor> { (a.exp()? * (a - b)?)?.sum(D::Minus1) };
        let d = match div {
            Divergence::ForwardKl => kl(&lpt, &lqt)?,
            Divergence::ReverseKl => kl(&lqt, &lpt)?,
            Divergence::Jsd { beta } => {
                let b = beta as f64;
                let lm = ((lpt.exp()? * b)? + (lqt.exp()? * (1.0 - b))?)?.log()?;
                ((kl(&lpt, &lm)? * b)? + (kl(&lqt, &lm)? * (1.0 - b))?)?
            }
        };
        let w = Tensor::from_vec(weights.clone(), rows * width, &dev)?;
        let per = ((nll * (1.0 - k as f64))? + (d * (k as f64 * (t * t) as f64))?)?;
        let objective = ((per * &w)?.sum_all()? / norm)?;
        let want = objective.backward()?;

        let lookup_ref: &(dyn Fn(&[usize]) -> Result<Vec<f32>> + Sync) = &lookup;
        let kd = term(k, t, div, lookup_ref);
        let hidden = student.model.forward_hidden(&ids_t)?;
        let chunked = chunked_lm_loss_with(
            &hidden,
            student.model.lm_head_weight(),
            &targets,
            &weights,
            Some(norm),
            7,
            Some(&kd),
        )?;
        let got_auto = chunked.surrogate.as_ref().unwrap().backward()?;
        let written = cpu_train::loss_and_grads_with(
            &student.model,
            &ids,
            rows,
            width,
            &targets,
            &weights,
            norm,
            7,
            Some(&kd),
        )?;
        let mixed = |l: &mentor_model::loss::LmLoss| {
            ((1.0 - k as f64) * l.weighted_nll + k as f64 * l.weighted_kd) / norm
        };
        let want_value = objective.to_scalar::<f32>()? as f64;
        assert!(
            (mixed(&chunked) - want_value).abs() < 1e-4 * want_value,
            "{what}: {} vs {want_value}",
            mixed(&chunked)
        );
        assert!(
            (mixed(&written.loss) - want_value).abs() < 1e-4 * want_value,
            "{what}: written-out"
        );
        for (name, var) in student.trainable() {
            let reference = want.get(var.as_tensor()).unwrap();
            let scale = reference.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-6);
            let a = got_auto.get(var.as_tensor()).unwrap();
            let b = written.grads.get(&var.id()).unwrap();
            for (how, g) in [("chunked", a), ("written-out", b)] {
                let gap = (reference - g)?.abs()?.max_all()?.to_scalar::<f32>()? / scale;
                assert!(gap < 1e-3, "{what}: {how} {name}: relative gap {gap}");
            }
        }
    }
    Ok(())
}

#[test]
fn a_zero_weight_term_changes_nothing() -> Result<()> {
    let cfg = config();
    let student = Student::random(&cfg, &Device::Cpu, 2)?;
    let (ids, targets, weights) = batch(2, 12, cfg.vocab_size as u32);
    let wild = |pos: &[usize]| -> Result<Vec<f32>> { Ok(vec![3.0; pos.len() * 40]) };
    let kd = term(0.0, 2.0, Divergence::ForwardKl, &wild);
    let plain = cpu_train::loss_and_grads(&student.model, &ids, 2, 12, &targets, &weights, 2.0, 5)?;
    let with = cpu_train::loss_and_grads_with(
        &student.model,
        &ids,
        2,
        12,
        &targets,
        &weights,
        2.0,
        5,
        Some(&kd),
    )?;
    assert_eq!(plain.loss.weighted_nll, with.loss.weighted_nll);
    assert!(
        with.loss.weighted_kd > 0.0,
        "the divergence is still measured"
    );
    for (id, g) in &plain.grads {
        let gap = (g - with.grads.get(id).unwrap())?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(gap, 0.0);
    }
    Ok(())
}

/// SGD on a tiny student with the pure KD loss (k = 1, forward KL) against a tiny teacher of
/// the same vocabulary: the mean KL over the batch's positions falls, and with the
/// cross-entropy alone (k = 0) it does not fall nearly as far.
#[test]
fn kd_moves_a_student_toward_its_teacher() -> Result<()> {
    let cfg = config();
    let vocab = cfg.vocab_size;
    let teacher = Student::random(&cfg, &Device::Cpu, 21)?;
    let (rows, width) = (4, 16);
    let (ids, targets, _) = batch(rows, width, vocab as u32);
    let weights = vec![1.0f32; rows * width];
    let teacher_all = all_logits(&teacher, &ids, rows, width)?;
    let lookup = |pos: &[usize]| -> Result<Vec<f32>> {
        Ok(pos
            .iter()
            .flat_map(|&p| teacher_all[p * vocab..(p + 1) * vocab].to_vec())
            .collect())
    };
    let mean_kl = |s: &Student| -> Result<f32> {
        let q = all_logits(s, &ids, rows, width)?;
        let (kl, _) = kd_rows_cpu(&q, &teacher_all, vocab, 1.0, Divergence::ForwardKl, None);
        Ok(kl.iter().sum::<f32>() / kl.len() as f32)
    };
    let mut end = vec![];
    for k in [1.0f32, 0.0] {
        let student = Student::random(&cfg, &Device::Cpu, 22)?;
        let start = mean_kl(&student)?;
        let kd = term(k, 1.0, Divergence::ForwardKl, &lookup);
        for _ in 0..60 {
            let step = cpu_train::loss_and_grads_with(
                &student.model,
                &ids,
                rows,
                width,
                &targets,
                &weights,
                (rows * width) as f64,
                16,
                Some(&kd),
            )?;
            for (_, var) in student.trainable() {
                let g = step.grads.get(&var.id()).unwrap();
                var.set(&(var.as_tensor() - (g * 0.5)?)?)?;
            }
        }
        end.push((start, mean_kl(&student)?));
    }
    let (start, with_kd) = end[0];
    let (_, with_ce) = end[1];
    assert!(with_kd < 0.5 * start, "KD: mean KL {start} → {with_kd}");
    assert!(
        with_kd < with_ce,
        "KD {with_kd} vs cross-entropy alone {with_ce}"
    );
    Ok(())
}
