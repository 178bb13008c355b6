//! Training killed with SIGKILL at random moments — between steps, inside a step, in the middle
//! of writing a checkpoint — and resumed each time ends with the weights an uninterrupted run
//! ends with. The child is this test binary itself, re-run with `MENTOR_KILL_CHILD` set.

use candle_core::{Device, Result};
use mentor_model::load::Student;
use mentor_model::LlamaConfig;
use mentor_train::{train, Quiet, TrainConfig, TrainExample};
use std::path::Path;
use std::time::{Duration, Instant};

fn data(n: usize) -> Vec<TrainExample> {
    (0..n)
        .map(|i| {
            let prompt: Vec<u32> = (0..4 + i % 3)
                .map(|j| 3 + ((i * 7 + j * 5) % 30) as u32)
                .collect();
            let mut target: Vec<u32> = prompt.iter().rev().copied().collect();
            target.push(2);
            TrainExample {
                prompt,
                target,
                weight: 1.0,
                task: "t".into(),
            }
        })
        .collect()
}

/// Kills to land: 6 in CI; `MENTOR_SOAK_KILLS=N` for a soak (the run grows to leave room).
fn kills_wanted() -> u64 {
    std::env::var("MENTOR_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn cfg() -> TrainConfig {
    TrainConfig {
        lr: 3e-3,
        epochs: 12.0 * kills_wanted().div_ceil(5).max(1) as f64,
        batch_size: 4,
        save_every: 1, // a checkpoint every step: kills land inside writes too
        ..TrainConfig::default()
    }
}

fn run(dir: &Path, n: usize) -> Result<Student> {
    let s = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 3)?;
    train(&s, &data(n), &[], &cfg(), 0, dir, &mut Quiet)?;
    Ok(s)
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

/// The steps an uninterrupted run in `dir` took.
fn r_total(dir: &Path) -> u64 {
    let t = std::fs::read_to_string(dir.join("checkpoint/state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
    v["step"].as_u64().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// The child: trains in `MENTOR_KILL_CHILD` (a directory) and exits; a no-op in a normal run.
#[test]
fn child_trainer() -> Result<()> {
    if let Some(dir) = std::env::var_os("MENTOR_KILL_CHILD") {
        run(Path::new(&dir), 24)?;
    }
    Ok(())
}

fn spawn_child(dir: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_trainer", "--test-threads", "1"])
        .env("MENTOR_KILL_CHILD", dir)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_at_random_moments_resumes_to_the_same_weights() -> Result<()> {
    let straight = tempfile::tempdir().unwrap();
    let want = weights(&run(straight.path(), 24)?);
    let total = r_total(straight.path());

    let dir = tempfile::tempdir().unwrap();
    // kill when the checkpoint says the run passed a step, then a few ms later, so the kill
    // lands anywhere in the next step or checkpoint write; steps from a fixed xorshift
    let step_now = |d: &Path| -> u64 {
        std::fs::read_to_string(d.join("checkpoint/state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["step"].as_u64())
            .unwrap_or(0)
    };
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut kills, mut target) = (0, 0u64);
    while kills < kills_wanted() {
        target += 3 + next() % 8;
        if target + 2 >= total {
            break;
        }
        let mut child = spawn_child(dir.path());
        let deadline = Instant::now() + Duration::from_secs(120);
        while step_now(dir.path()) < target && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros(next() % 3000));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let status = spawn_child(dir.path()).wait().unwrap();
    assert!(status.success());
    assert!(
        kills
            >= if std::env::var_os("MENTOR_SOAK_KILLS").is_some() {
                kills_wanted()
            } else {
                3
            },
        "only {kills} kills landed before the run finished"
    );
    eprintln!("train kill soak: {kills} SIGKILLs over {total} steps, resumed to the same weights");
    // the resumed run's last checkpoint holds the uninterrupted run's weights
    let resumed = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 99)?;
    let r = train(&resumed, &data(24), &[], &cfg(), 0, dir.path(), &mut Quiet)?;
    assert_eq!(r.steps, r.total_steps);
    let d = max_diff(&want, &weights(&resumed));
    assert!(d < 1e-6, "after {kills} kills the weights differ by {d}");
    Ok(())
}

/// A crash between a checkpoint write's two renames leaves only `checkpoint.old`: the run
/// resumes from it. A different training set in the same directory is refused.
#[test]
fn resumes_from_checkpoint_old_and_refuses_other_data() -> Result<()> {
    let straight = tempfile::tempdir().unwrap();
    let want = weights(&run(straight.path(), 24)?);

    let dir = tempfile::tempdir().unwrap();
    let s = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 3)?;
    struct StopAt(u64, u64);
    impl mentor_train::Hooks for StopAt {
        fn on_step(&mut self, log: &mentor_train::StepLog, _: u64) {
            self.1 = log.step;
        }
        fn should_stop(&mut self) -> bool {
            self.1 >= self.0
        }
    }
    let r = train(
        &s,
        &data(24),
        &[],
        &cfg(),
        0,
        dir.path(),
        &mut StopAt(10, 0),
    )?;
    assert!(r.stopped_early && r.steps == 10);
    // the state a crash between `checkpoint → checkpoint.old` and `tmp → checkpoint` leaves
    std::fs::rename(
        dir.path().join("checkpoint"),
        dir.path().join("checkpoint.old"),
    )
    .unwrap();
    let other = Student::random(&LlamaConfig::tiny(40), &Device::Cpu, 99)?;
    let r = train(&other, &data(24), &[], &cfg(), 0, dir.path(), &mut Quiet)?;
    assert_eq!(r.resumed_from, Some(10));
    let d = max_diff(&want, &weights(&other));
    assert!(
        d < 1e-6,
        "resumed from checkpoint.old: weights differ by {d}"
    );

    let err = train(&other, &data(20), &[], &cfg(), 0, dir.path(), &mut Quiet).unwrap_err();
    assert!(
        err.to_string()
            .contains("different training config or data"),
        "{err}"
    );
    Ok(())
}
