//! The loop learns, and a run interrupted and resumed ends where an uninterrupted one does.

use candle_core::{Device, Result};
use mentor_model::load::Student;
use mentor_model::LlamaConfig;
use mentor_train::{train, Hooks, Quiet, TrainConfig, TrainExample};

fn tiny() -> LlamaConfig {
    LlamaConfig::tiny(40)
}

/// Reverse a short prompt: the target is the prompt backwards; two tasks with their weights.
fn data(n: usize) -> Vec<TrainExample> {
    (0..n)
        .map(|i| {
            let len = 3 + i % 4;
            let prompt: Vec<u32> = (0..len)
                .map(|j| 3 + ((i * 7 + j * 5) % 30) as u32)
                .collect();
            let mut target: Vec<u32> = prompt.iter().rev().copied().collect();
            target.push(2);
            let mut p = vec![1];
            p.extend(&prompt);
            p.push(1);
            TrainExample {
                prompt: p,
                target,
                weight: if i % 2 == 0 { 0.5 } else { 1.0 },
                task: if i % 2 == 0 { "a" } else { "b" }.into(),
            }
        })
        .collect()
}

fn student(seed: u64) -> Result<Student> {
    Student::random(&tiny(), &Device::Cpu, seed)
}

fn weights(s: &Student) -> Vec<f32> {
    s.trainable()
        .iter()
        .flat_map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn tiny_model_learns_and_validation_selects_the_best() -> Result<()> {
    let s = student(1)?;
    let (tr, va) = (data(64), data(80)[64..].to_vec());
    let cfg = TrainConfig {
        lr: 3e-3,
        epochs: 60.0,
        batch_size: 16,
        eval_every: 20,
        save_every: 0,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let before = mentor_train::eval_loss(&s.model, &tr, &cfg, 0)?;
    let r = train(&s, &tr, &va, &cfg, 0, dir.path(), &mut Quiet)?;
    let after = mentor_train::eval_loss(&s.model, &tr, &cfg, 0)?;
    // uniform guessing over 40 tokens costs ln 40 ≈ 3.69 nats
    assert!(before > 3.0, "untrained loss {before}");
    assert!(after < 0.5, "trained loss {after} (from {before})");
    assert_eq!(r.steps, 240);
    assert!(r.best_step.is_some() && dir.path().join("best/model.safetensors").is_file());
    assert!(dir.path().join("best/config.json").is_file());
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"kind\":\"step\""))
            .count(),
        240
    );
    // `best/` is the validation with the lowest loss (no task metric: loss selects), and
    // reloading it reproduces that loss
    let evals: Vec<(u64, f64, bool)> = log
        .lines()
        .filter(|l| l.contains("\"kind\":\"eval\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let e = &v["log"];
            (
                e["step"].as_u64().unwrap(),
                e["loss"].as_f64().unwrap(),
                e["best"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(evals.len(), 12, "every 20 of 240 steps");
    let (best_step, best_loss, _) = evals
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(r.best_step, Some(best_step));
    // the log marks a new best exactly where the running minimum falls
    let mut low = f64::INFINITY;
    for &(step, loss, best) in &evals {
        assert_eq!(best, loss < low, "step {step}");
        low = low.min(loss);
    }
    let w = mentor_model::load::read_weights(&dir.path().join("best"), &Device::Cpu)?;
    let reloaded = Student::new(w, mentor_model::load::Tuning::Frozen, &Device::Cpu, 0)?;
    let again = mentor_train::eval_loss(&reloaded.model, &va, &cfg, 0)?;
    assert!(
        (again - best_loss).abs() < 1e-4,
        "best/ gives {again}, logged {best_loss}"
    );
    Ok(())
}

struct StopAt(u64, u64);
impl Hooks for StopAt {
    fn on_step(&mut self, log: &mentor_train::StepLog, _: u64) {
        self.1 = log.step;
    }
    fn should_stop(&mut self) -> bool {
        self.1 >= self.0
    }
}

#[test]
fn interrupted_run_resumes_to_the_same_weights() -> Result<()> {
    let tr = data(40);
    let cfg = TrainConfig {
        lr: 1e-3,
        max_steps: Some(10),
        batch_size: 6,
        grad_accum: 2,
        save_every: 0,
        ..TrainConfig::default()
    };
    let straight = student(3)?;
    let d1 = tempfile::tempdir().unwrap();
    train(&straight, &tr, &[], &cfg, 0, d1.path(), &mut Quiet)?;

    let d2 = tempfile::tempdir().unwrap();
    let first = student(3)?;
    let r = train(&first, &tr, &[], &cfg, 0, d2.path(), &mut StopAt(4, 0))?;
    assert!(r.stopped_early && r.steps == 4);
    // a fresh process: same initial weights, which the checkpoint must overwrite
    let second = student(99)?;
    let r = train(&second, &tr, &[], &cfg, 0, d2.path(), &mut Quiet)?;
    assert_eq!((r.resumed_from, r.steps), (Some(4), 10));
    let (a, b) = (weights(&straight), weights(&second));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-6, "resumed weights differ by {diff}");

    // a different config in the same directory is refused, not silently mixed
    let other = TrainConfig { lr: 5e-3, ..cfg };
    let err = train(&student(3)?, &tr, &[], &other, 0, d2.path(), &mut Quiet).unwrap_err();
    assert!(
        err.to_string().contains("different training config"),
        "{err}"
    );
    Ok(())
}

/// Largest |a − b| over the largest |a|: the error of `b` relative to the scale of `a`.
fn rel_err(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// What a GPU run does (`--dtype bf16`), checked on the CPU: bf16 activations over f32 master
/// weights give logits near the f32 ones, through the training forward and the cached decode
/// path, and the model still learns, its weights and optimiser state staying f32.
#[test]
fn mixed_precision_bf16_tracks_f32_and_learns() -> Result<()> {
    use candle_core::{DType, Tensor};
    let mut s = student(1)?;
    let ids = Tensor::new(&[[1u32, 5, 9, 13, 17, 21, 1]], &Device::Cpu)?;
    let f32_logits = s.model.forward(&ids)?;
    s.model.set_compute_dtype(DType::BF16);
    let bf16_logits = s.model.forward(&ids)?;
    assert_eq!(
        bf16_logits.dtype(),
        DType::F32,
        "logits are f32 whatever the compute dtype"
    );
    let err = rel_err(&f32_logits, &bf16_logits);
    assert!(err > 0.0 && err < 0.05, "bf16 relative error {err}");
    let mut cache = s.model.new_cache(16);
    let last = s.model.forward_step(&ids, &[0], &mut cache)?;
    let want = f32_logits.narrow(1, 6, 1)?.squeeze(1)?;
    let err = rel_err(&want, &last);
    assert!(err < 0.05, "bf16 cached decode relative error {err}");

    let (tr, va) = (data(64), data(80)[64..].to_vec());
    let cfg = TrainConfig {
        lr: 3e-3,
        epochs: 60.0,
        batch_size: 16,
        eval_every: 0,
        save_every: 0,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let before = mentor_train::eval_loss(&s.model, &tr, &cfg, 0)?;
    train(&s, &tr, &va, &cfg, 0, dir.path(), &mut Quiet)?;
    let after = mentor_train::eval_loss(&s.model, &tr, &cfg, 0)?;
    assert!(
        before > 3.0 && after < 0.7,
        "bf16 training: {before} → {after}"
    );
    assert!(s.trainable().iter().all(|(_, v)| v.dtype() == DType::F32));
    Ok(())
}

/// α means α: a step over a batch of one task at weight α has α times the loss and gradient of
/// the same batch at weight 1. (Normalising by the batch's total weight cancelled α in every
/// single-task batch, and length bucketing makes most batches single-task.)
#[test]
fn task_weight_scales_a_single_task_batch() -> Result<()> {
    use mentor_train::optim::{AdamW, AdamWConfig};
    use mentor_train::{optimizer_step, Batch};
    let at = |alpha: f32| -> Result<(f64, f64)> {
        let s = student(5)?;
        let examples: Vec<TrainExample> = data(8)
            .into_iter()
            .map(|mut e| {
                // the task weight spread over the target's tokens, as `encode_pair` does
                e.weight = alpha / e.target.len() as f32;
                e
            })
            .collect();
        let b = Batch::new(&examples, &(0..8).collect::<Vec<_>>(), 64, 0);
        let mut opt = AdamW::new(s.trainable(), AdamWConfig::default())?;
        let cfg = TrainConfig {
            max_grad_norm: 1e9,
            ..TrainConfig::default()
        };
        let out = optimizer_step(&s.model, &mut opt, &[b], 0.0, &cfg)?;
        Ok((out.loss, out.grad_norm))
    };
    let (l1, g1) = at(1.0)?;
    let (la, ga) = at(0.2)?;
    assert!(l1 > 0.0 && g1 > 0.0);
    assert!((la / l1 - 0.2).abs() < 1e-4, "loss ratio {}", la / l1);
    assert!((ga / g1 - 0.2).abs() < 1e-3, "gradient ratio {}", ga / g1);
    Ok(())
}
