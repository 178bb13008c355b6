//! Token-level distillation through the loop: a student trained with `kd` (weight 1) on a
//! teacher's logits moves its next-token distributions to the teacher's, on gold targets and on
//! its own samples (on-policy), the step log carries the divergence, and a teacher of another vocabulary, a missing teacher or a bad setting is
//! refused before anything trains.

use candle_core::{Device, Result, Tensor};
use mentor_model::kd::{kd_rows_cpu, Divergence};
use mentor_model::load::Student;
use mentor_model::TextTokenizer;
use mentor_model::{Llama, LlamaConfig};
use mentor_train::{train_with, KdLoss, KdSettings, KdTeacher, Quiet, TrainConfig, TrainExample};

fn data(n: usize) -> Vec<TrainExample> {
    (0..n)
        .map(|i| {
            let prompt: Vec<u32> = (0..4).map(|j| 3 + ((i * 7 + j * 5) % 30) as u32).collect();
            let target: Vec<u32> = (0..6).map(|j| 3 + ((i * 3 + j * 11) % 30) as u32).collect();
            TrainExample {
                prompt,
                target,
                weight: 1.0,
                task: "t".into(),
            }
        })
        .collect()
}

/// Mean forward KL(teacher ‖ student) over every target position of `examples`.
fn mean_kl(student: &Llama, teacher: &Llama, examples: &[TrainExample]) -> Result<f32> {
    let (mut total, mut n) = (0f32, 0usize);
    for e in examples {
        let mut ids = e.prompt.clone();
        ids.extend(&e.target[..e.target.len() - 1]);
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let logits = |m: &Llama| -> Result<Vec<f32>> {
            let h = m.forward_hidden(&t)?;
            let h = h.narrow(0, e.prompt.len() - 1, e.target.len())?;
            m.logits_of_hidden(&h)?.flatten_all()?.to_vec1::<f32>()
        };
        let (kl, _) = kd_rows_cpu(
            &logits(student)?,
            &logits(teacher)?,
            40,
            1.0,
            Divergence::ForwardKl,
            None,
        );
        total += kl.iter().sum::<f32>();
        n += kl.len();
    }
    Ok(total / n as f32)
}

fn cfg(kd: Option<KdSettings>) -> TrainConfig {
    TrainConfig {
        lr: 3e-3,
        epochs: 8.0,
        batch_size: 8,
        save_every: 0,
        max_len: 32,
        kd,
        ..TrainConfig::default()
    }
}

#[test]
fn a_student_trained_on_the_teachers_logits_comes_to_match_them() -> Result<()> {
    let teacher = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 77)?.model;
    let (train, valid) = (data(32), data(40)[32..].to_vec());
    let kd = KdSettings {
        weight: 1.0,
        temperature: 1.0,
        loss: KdLoss::ForwardKl,
        beta: 0.5,
        on_policy: 0.0,
        tasks: vec![],
    };
    let on_policy = KdSettings {
        on_policy: 1.0,
        ..kd.clone()
    };
    let mut after = vec![];
    for settings in [Some(kd), None, Some(on_policy)] {
        let s = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 3)?;
        let before = mean_kl(&s.model, &teacher, &valid)?;
        let dir = tempfile::tempdir().unwrap();
        let tok = TextTokenizer::word_level(40);
        let t = settings.as_ref().map(|_| KdTeacher {
            model: &teacher,
            tokenizer: &tok,
        });
        train_with(
            &s,
            t,
            &train,
            &valid,
            &cfg(settings.clone()),
            0,
            dir.path(),
            &mut Quiet,
        )?;
        after.push((before, mean_kl(&s.model, &teacher, &valid)?));
        let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
        let step = log
            .lines()
            .find(|l| l.contains("\"kind\":\"step\""))
            .unwrap();
        assert_eq!(step.contains("kd_loss"), settings.is_some(), "{step}");
        // on-policy (λ = 1): every step says its one micro-batch was the student's own sample
        let sampled = settings.as_ref().is_some_and(|k| k.on_policy > 0.0);
        for l in log.lines().filter(|l| l.contains("\"kind\":\"step\"")) {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let n = &v["log"]["on_policy_batches"];
            assert_eq!(n.as_u64(), sampled.then_some(1), "{l}");
        }
    }
    let ((before, with_kd), (_, without), (_, self_sampled)) = (after[0], after[1], after[2]);
    eprintln!("KL to the teacher: {before} → kd {with_kd}, gold tokens {without}, on-policy {self_sampled}");
    // on-policy: the student's own continuations, scored by the teacher, also teach it
    assert!(
        self_sampled < 0.7 * before,
        "on-policy KD: KL {before} → {self_sampled}"
    );
    // on held-out sequences too: the student learned the teacher's distributions, not the data
    assert!(with_kd < 0.5 * before, "KD: KL {before} → {with_kd}");
    assert!(
        with_kd < without,
        "KD {with_kd} vs gold tokens alone {without}"
    );
    Ok(())
}

/// `kd.tasks` keeps the term to the named tasks' tokens: a run whose examples are all of
/// another task trains exactly as without KD (the same weights to the bit), its step log
/// showing a KD term of 0 — the cross-entropy keeps its full weight, not 1 − weight.
#[test]
fn kd_kept_to_other_tasks_leaves_a_run_as_without_it() -> Result<()> {
    let teacher = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 77)?.model;
    let (train, valid) = (data(16), data(20)[16..].to_vec());
    let kd = KdSettings {
        weight: 0.9,
        temperature: 2.0,
        loss: KdLoss::ForwardKl,
        beta: 0.5,
        on_policy: 0.0,
        tasks: vec!["rationale".into()],
    };
    let tok = TextTokenizer::word_level(40);
    let mut kls = vec![];
    for settings in [None, Some(kd)] {
        let s = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 3)?;
        let dir = tempfile::tempdir().unwrap();
        let t = settings.as_ref().map(|_| KdTeacher {
            model: &teacher,
            tokenizer: &tok,
        });
        let mut c = cfg(settings.clone());
        c.epochs = 2.0;
        train_with(&s, t, &train, &valid, &c, 0, dir.path(), &mut Quiet)?;
        kls.push(mean_kl(&s.model, &teacher, &valid)?);
        let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
        for l in log.lines().filter(|l| l.contains("\"kind\":\"step\"")) {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let kd_loss = v["log"]["kd_loss"].as_f64();
            assert_eq!(kd_loss, settings.as_ref().map(|_| 0.0), "{l}");
        }
    }
    assert_eq!(
        kls[0], kls[1],
        "task t trained differently with kd kept to `rationale`"
    );
    // on-policy, the rows outside kd.tasks have no teacher term and must not train on the
    // student's own samples either: no gradient at all
    let s = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 3)?;
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(Some(KdSettings {
        weight: 0.5,
        temperature: 1.0,
        loss: KdLoss::ForwardKl,
        beta: 0.5,
        on_policy: 1.0,
        tasks: vec!["rationale".into()],
    }));
    c.epochs = 1.0;
    let t = KdTeacher {
        model: &teacher,
        tokenizer: &tok,
    };
    train_with(&s, Some(t), &train, &valid, &c, 0, dir.path(), &mut Quiet)?;
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    for l in log.lines().filter(|l| l.contains("\"kind\":\"step\"")) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["log"]["grad_norm"].as_f64(), Some(0.0), "{l}");
    }
    Ok(())
}

#[test]
fn a_teacher_that_cannot_be_distilled_from_is_refused() -> Result<()> {
    let s = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 3)?;
    let other = Student::random(&LlamaConfig::tiny(48), &Device::Cpu, 4)?.model;
    let kd = KdSettings {
        weight: 0.5,
        temperature: 2.0,
        loss: KdLoss::ForwardKl,
        beta: 0.5,
        on_policy: 0.0,
        tasks: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let (train, valid) = (data(8), data(10)[8..].to_vec());
    let err = train_with(
        &s,
        Some(KdTeacher {
            model: &other,
            tokenizer: &TextTokenizer::word_level(48),
        }),
        &train,
        &valid,
        &cfg(Some(kd.clone())),
        0,
        dir.path(),
        &mut Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("48") && err.contains("40") && err.contains("vocabulary"),
        "{err}"
    );
    let err = train_with(
        &s,
        None,
        &train,
        &valid,
        &cfg(Some(kd.clone())),
        0,
        dir.path(),
        &mut Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no teacher model"), "{err}");
    let bad = KdSettings {
        loss: KdLoss::Jsd,
        beta: 1.0,
        ..kd
    };
    let err = train_with(
        &s,
        Some(KdTeacher {
            model: &other,
            tokenizer: &TextTokenizer::word_level(48),
        }),
        &train,
        &valid,
        &cfg(Some(bad)),
        0,
        dir.path(),
        &mut Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("beta"), "{err}");
    assert!(!dir.path().join("log.jsonl").exists(), "nothing trained");
    Ok(())
}
