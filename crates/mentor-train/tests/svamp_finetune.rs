//! Opt-in, real-size: LoRA fine-tune of SmolLM2-135M on 200 SVAMP training questions with the
//! recorded PaLM-540B rationales (`../shared/data/dss/svamp`), one epoch; validation loss on
//! the 80 validation questions must fall clearly. Needs the fetched GGUF and the shared data:
//!
//!     cargo test --release -p mentor-train --test svamp_finetune -- --ignored --nocapture

use candle_core::Device;
use mentor_core::Split;
use mentor_data::{load_dataset, DatasetSpec};
use mentor_model::load::{read_weights, Student, Tuning};
use mentor_model::{ChatMessage, LoraConfig, TextTokenizer};
use mentor_train::{train, Hooks, StepLog, TrainConfig, TrainExample};

struct Print;
impl Hooks for Print {
    fn on_step(&mut self, l: &StepLog, total: u64) {
        println!(
            "step {}/{total} loss {:.3} lr {:.1e} {:.1}s",
            l.step, l.loss, l.lr, l.seconds
        );
    }
}

#[test]
#[ignore = "real-size: minutes on a laptop CPU; needs the SmolLM2 asset and ../shared/data"]
fn lora_on_200_svamp_rationales_lowers_validation_loss() {
    let home = std::env::var_os("MENTOR_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::home_dir().unwrap().join(".cache/mentor"));
    let gguf = home.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "run `mentor fetch-assets smollm2-135m` first"
    );
    let ds = load_dataset(&DatasetSpec::builtin("svamp")).expect("svamp with recorded PaLM CoTs");
    let cots: std::collections::HashMap<&str, &str> = ds
        .recorded
        .iter()
        .map(|r| (r.example_id.as_str(), r.text.as_str()))
        .collect();
    let dev = Device::Cpu;
    let w = read_weights(&gguf, &dev).unwrap();
    let tok = TextTokenizer::from_gguf(w.gguf_metadata.as_ref().unwrap()).unwrap();
    let end = tok.token_to_id("<|im_end|>").unwrap();
    let to_examples = |split: Split, n: usize| -> Vec<TrainExample> {
        ds.splits[&split]
            .iter()
            .filter_map(|e| cots.get(e.id.as_str()).map(|c| (e, c)))
            .take(n)
            .map(|(e, cot)| {
                let prompt = tok
                    .apply_chat_template(&[ChatMessage::new("user", e.question.clone())], true)
                    .unwrap();
                let mut target = tok.encode(cot.trim()).unwrap();
                target.push(end);
                TrainExample {
                    prompt: tok.encode(&prompt).unwrap(),
                    target,
                    weight: 1.0,
                    task: "explain".into(),
                }
            })
            .collect()
    };
    let (tr, va) = (
        to_examples(Split::Train, 200),
        to_examples(Split::Valid, 80),
    );
    assert_eq!(
        (tr.len(), va.len()),
        (200, 80),
        "recorded CoTs cover the splits"
    );
    let student = Student::new(w, Tuning::Lora(LoraConfig::default()), &dev, 0).unwrap();
    let cfg = TrainConfig {
        lr: 5e-4,
        epochs: 1.0,
        batch_size: 8,
        max_len: 384,
        save_every: 0,
        ..TrainConfig::default()
    };
    let before = mentor_train::eval_loss(&student.model, &va, &cfg, tok.pad_id).unwrap();
    let out = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let r = train(&student, &tr, &va, &cfg, tok.pad_id, out.path(), &mut Print).unwrap();
    let after = r.final_valid_loss.unwrap();
    println!(
        "validation loss {before:.4} → {after:.4} after {} steps in {:.0}s (train loss at the end {:.4})",
        r.steps,
        t.elapsed().as_secs_f64(),
        r.final_train_loss.unwrap()
    );
    assert!(
        after < before * 0.85,
        "validation loss {before} → {after}: not clearly down"
    );
}
