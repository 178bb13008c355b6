//! The student side of a recipe: training pairs → token ids through the student's chat
//! template, the staged training run, and prompts for generation.

use crate::trainset::TrainPair;
use candle_core::Result;
use mentor_model::load::Student;
use mentor_model::{ChatMessage, TextTokenizer};
use mentor_train::{train_with, EpochUnit, Hooks, LossPer, TrainConfig, TrainExample, TrainReport};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn user(prompt: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", prompt)]
}

/// Token ids of a student prompt, the assistant's turn opened.
pub fn prompt_ids(tok: &TextTokenizer, prompt: &str) -> Result<Vec<u32>> {
    let text = tok
        .apply_chat_template(&user(prompt), true)
        .map_err(candle_core::Error::wrap)?;
    tok.encode(&text).map_err(candle_core::Error::wrap)
}

/// A pair as a training example: the prompt through the chat template (not learned), and the
/// target as the template writes the assistant's turn, end-of-turn token included (learned).
///
/// The weight is the task weight spread over the target's tokens, so every example carries its
/// task weight in total whatever its length: the loss is Σ task weight × mean token loss, the
/// form step-by-step's α·label + (1−α)·rationale has (`loss_per = "example"`; [`encode_pairs`]
/// reweighs for `"token"`).
pub fn encode_pair(tok: &TextTokenizer, pair: &TrainPair) -> Result<TrainExample> {
    let wrap = candle_core::Error::wrap;
    let prompt_text = tok
        .apply_chat_template(&user(&pair.prompt), true)
        .map_err(wrap)?;
    let mut msgs = user(&pair.prompt);
    msgs.push(ChatMessage::new("assistant", pair.target.clone()));
    let full = tok.apply_chat_template(&msgs, false).map_err(wrap)?;
    let target_text = match full.strip_prefix(&prompt_text) {
        // The template's text after the assistant's content ends at its end-of-turn token; the
        // newline some templates add after it is not learned.
        Some(rest) => rest.trim_end_matches('\n').to_string(),
        None => format!("{}{}", pair.target, tok.eos_token),
    };
    let prompt = tok.encode(&prompt_text).map_err(wrap)?;
    let mut target = tok.encode(&target_text).map_err(wrap)?;
    let bos = tok.bos_token.as_deref().and_then(|b| tok.token_to_id(b));
    if bos.is_some() && target.first().copied() == bos {
        target.remove(0);
    }
    let weight = (pair.weight / target.len().max(1) as f64) as f32;
    Ok(TrainExample {
        prompt,
        target,
        weight,
        task: pair.task.as_str().to_string(),
    })
}

/// The pairs as training examples, weighted as `per` says. `example`: [`encode_pair`]'s, each
/// example its task weight. `token`: each target token its task weight over the task's mean
/// target length among these pairs — every token of a task counts alike, an example of average
/// length weighs its task weight, a one-line target a fraction of it.
pub fn encode_pairs(
    tok: &TextTokenizer,
    pairs: &[TrainPair],
    per: LossPer,
) -> Result<Vec<TrainExample>> {
    let mut examples: Vec<TrainExample> = pairs
        .iter()
        .map(|p| encode_pair(tok, p))
        .collect::<Result<_>>()?;
    if per == LossPer::Token {
        let mut tokens: HashMap<String, (f64, f64)> = HashMap::new();
        for e in &examples {
            let t = tokens.entry(e.task.clone()).or_default();
            t.0 += e.target.len() as f64;
            t.1 += 1.0;
        }
        for (e, p) in examples.iter_mut().zip(pairs) {
            let (sum, n) = tokens[&e.task];
            e.weight = (p.weight / (sum / n).max(1.0)) as f32;
        }
    }
    Ok(examples)
}

/// A stage's training config: with `epoch_unit = "questions"`, its epochs become the steps that
/// one pass over its distinct questions takes, however many pairs each has.
pub fn stage_config(cfg: &TrainConfig, pairs: &[TrainPair]) -> TrainConfig {
    let mut c = cfg.clone();
    if c.epoch_unit == EpochUnit::Questions && c.max_steps.is_none() {
        let questions: std::collections::HashSet<&str> =
            pairs.iter().map(|p| p.example_id.as_str()).collect();
        c.max_steps = Some(c.steps_for(pairs.len(), questions.len()));
    }
    c
}

/// One stage's outcome: where it trained and what the loop reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageReport {
    pub stage: u32,
    pub dir: PathBuf,
    pub examples: usize,
    pub report: TrainReport,
}

/// Where stage `stage` of a student trained into `out_dir` lives (checkpoint, best, log).
pub fn stage_dir(out_dir: &Path, stage: u32) -> PathBuf {
    out_dir.join(format!("stage-{stage}"))
}

/// Trains `student` on `pairs` stage by stage (stage 0, then 1, … each continuing from the
/// weights the previous one ended with), each in `out_dir/stage-N`. `hooks(stage)` gives the
/// hooks of each stage. Rerunning resumes inside the stage that was running.
#[allow(clippy::too_many_arguments)]
pub fn train_stages<'h>(
    student: &Student,
    teacher: Option<&mentor_model::Llama>,
    tok: &TextTokenizer,
    pairs: &[TrainPair],
    valid: &[TrainPair],
    cfg: &TrainConfig,
    out_dir: &Path,
    hooks: &mut dyn FnMut(u32) -> Box<dyn Hooks + 'h>,
) -> Result<Vec<StageReport>> {
    let mut stages: Vec<u32> = pairs.iter().map(|p| p.stage).collect();
    stages.sort_unstable();
    stages.dedup();
    let valid = encode_pairs(tok, valid, cfg.loss_per)?;
    let mut out = vec![];
    for &stage in &stages {
        let these: Vec<TrainPair> = pairs.iter().filter(|p| p.stage == stage).cloned().collect();
        let examples = encode_pairs(tok, &these, cfg.loss_per)?;
        let dir = stage_dir(out_dir, stage);
        let mut h = hooks(stage);
        let cfg = &stage_config(cfg, &these);
        let report = train_with(
            student,
            teacher.map(|model| mentor_train::KdTeacher {
                model,
                tokenizer: tok,
            }),
            &examples,
            &valid,
            cfg,
            tok.pad_id,
            &dir,
            &mut *h,
        )?;
        if report.stopped_early {
            out.push(StageReport {
                stage,
                dir,
                examples: examples.len(),
                report,
            });
            return Ok(out);
        }
        // The next stage starts from the weights this one ended with (the last, not `best/`:
        // the first stage's validation measures the second stage's task).
        // `best/` is a complete HF directory: weights, config and the tokenizer.
        tok.save(&dir.join("best"))
            .map_err(candle_core::Error::wrap)?;
        out.push(StageReport {
            stage,
            dir,
            examples: examples.len(),
            report,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainset::StudentTask;

    /// A pair's task weight is spread over its target tokens: they sum to the weight (α for a
    /// label, 1 − α for a rationale), whatever the target's length.
    #[test]
    fn a_pairs_token_weights_sum_to_its_task_weight() {
        let tok = TextTokenizer::byte_level();
        for (target, w) in [
            ("The answer is 7.", 0.3),
            ("3 plus 4 is 7, since we count on.", 0.7),
        ] {
            let p = TrainPair {
                example_id: "q".into(),
                task: StudentTask::Label,
                prompt: "predict: 3 + 4?".into(),
                target: target.into(),
                weight: w,
                stage: 0,
            };
            let e = encode_pair(&tok, &p).unwrap();
            assert!(e.target.len() > target.len() / 2, "{}", e.target.len());
            let sum = e.weight as f64 * e.target.len() as f64;
            assert!((sum - w).abs() < 1e-6, "{sum} vs {w}");
        }
    }

    /// `loss_per = "token"`: every target token of a task weighs the same (the task weight over
    /// the task's mean target length), so a one-line target weighs by its length where under
    /// `"example"` it weighs as much as a long one; a task's examples keep its total weight.
    #[test]
    fn token_weights_count_each_token_of_a_task_alike() {
        let tok = TextTokenizer::byte_level();
        let pair = |task, target: &str, weight| TrainPair {
            example_id: "q".into(),
            task,
            prompt: "solve: 3 + 4?".into(),
            target: target.into(),
            weight,
            stage: 0,
        };
        let long = "3 plus 4: count four on from three, 4, 5, 6, 7. So the answer is 7.";
        let pairs = [
            pair(StudentTask::Cot, "7", 0.6),
            pair(StudentTask::Cot, long, 0.6),
            pair(StudentTask::Feedback, "You added wrong.", 0.4),
        ];
        let by_example = encode_pairs(&tok, &pairs, LossPer::Example).unwrap();
        let by_token = encode_pairs(&tok, &pairs, LossPer::Token).unwrap();
        let total = |e: &TrainExample| e.weight as f64 * e.target.len() as f64;
        // per example: the short and the long CoT target weigh the same in total
        assert!((total(&by_example[0]) - total(&by_example[1])).abs() < 1e-6);
        // per token: one weight for every token of the CoT task, so the totals go by length
        assert_eq!(by_token[0].weight, by_token[1].weight);
        let ratio = total(&by_token[1]) / total(&by_token[0]);
        let lengths = by_token[1].target.len() as f64 / by_token[0].target.len() as f64;
        assert!(
            lengths > 10.0 && (ratio - lengths).abs() < 1e-6,
            "{ratio} vs {lengths}"
        );
        // a task's examples keep its total weight (0.6 each on average), and a task alone in
        // its mean is untouched: the feedback target weighs 0.4 either way
        let cot: f64 = by_token[..2].iter().map(total).sum();
        assert!((cot - 1.2).abs() < 1e-5, "{cot}");
        assert!((total(&by_token[2]) - 0.4).abs() < 1e-6);
        assert!((total(&by_example[2]) - 0.4).abs() < 1e-6);
    }

    /// The equal-steps control: step-by-step's two pairs a question take the steps one pair a
    /// question would.
    #[test]
    fn questions_as_the_epoch_unit_equalise_steps() {
        let pair = |id: &str, task| TrainPair {
            example_id: id.into(),
            task,
            prompt: "p".into(),
            target: "t".into(),
            weight: 0.5,
            stage: 0,
        };
        let sbs: Vec<TrainPair> = (0..40)
            .flat_map(|i| {
                let id = format!("q{i}");
                [
                    pair(&id, StudentTask::Label),
                    pair(&id, StudentTask::Rationale),
                ]
            })
            .collect();
        let cfg = TrainConfig {
            epochs: 3.0,
            batch_size: 8,
            ..TrainConfig::default()
        };
        // by pairs: 80 × 3 / 8
        assert_eq!(stage_config(&cfg, &sbs).max_steps, None);
        assert_eq!(cfg.steps_for(80, 40), 30);
        let by_q = TrainConfig {
            epoch_unit: EpochUnit::Questions,
            ..cfg.clone()
        };
        assert_eq!(stage_config(&by_q, &sbs).max_steps, Some(15));
        // an explicit max_steps wins
        let fixed = TrainConfig {
            max_steps: Some(7),
            ..by_q
        };
        assert_eq!(stage_config(&fixed, &sbs).max_steps, Some(7));
    }

    /// A two-stage run (Mind's Mirror: judging, then reasoning) stopped inside stage 1 resumes
    /// there — stage 0 is not trained again — and ends where an uninterrupted run ends.
    #[test]
    fn a_two_stage_run_stopped_in_stage_1_resumes_there() {
        use mentor_model::LlamaConfig;
        use mentor_train::{Hooks, Quiet, StepLog};
        let tok = TextTokenizer::byte_level();
        let cfg = TrainConfig {
            lr: 1e-3,
            max_steps: Some(6),
            batch_size: 2,
            max_len: 128,
            save_every: 1,
            ..TrainConfig::default()
        };
        let pairs: Vec<TrainPair> = (0..8)
            .map(|i| TrainPair {
                example_id: format!("q{i}"),
                task: if i % 2 == 0 {
                    StudentTask::SelfEval
                } else {
                    StudentTask::Cot
                },
                prompt: format!("solve: {i} + 1?"),
                target: format!("It is {}.", i + 1),
                weight: 1.0,
                stage: (i % 2) as u32,
            })
            .collect();
        let student = || {
            let arch = LlamaConfig {
                max_position_embeddings: 256,
                ..LlamaConfig::tiny(tok.vocab_size())
            };
            Student::random(&arch, &candle_core::Device::Cpu, 5).unwrap()
        };
        let weights = |s: &Student| -> Vec<f32> {
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
        };
        let straight_dir = tempfile::tempdir().unwrap();
        let straight = student();
        let r = train_stages(
            &straight,
            None,
            &tok,
            &pairs,
            &[],
            &cfg,
            straight_dir.path(),
            &mut |_| Box::new(Quiet),
        )
        .unwrap();
        assert_eq!(r.len(), 2);

        struct StopIn1 {
            stage: u32,
            step: u64,
        }
        impl Hooks for StopIn1 {
            fn on_step(&mut self, log: &StepLog, _: u64) {
                self.step = log.step;
            }
            fn should_stop(&mut self) -> bool {
                self.stage == 1 && self.step >= 3
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let first = student();
        let r = train_stages(
            &first,
            None,
            &tok,
            &pairs,
            &[],
            &cfg,
            dir.path(),
            &mut |stage| Box::new(StopIn1 { stage, step: 0 }),
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert!(!r[0].report.stopped_early && r[1].report.stopped_early);
        assert_eq!(r[1].report.steps, 3);
        // a new process: fresh weights, which the checkpoints must replace
        let second = Student::random(
            &LlamaConfig {
                max_position_embeddings: 256,
                ..LlamaConfig::tiny(tok.vocab_size())
            },
            &candle_core::Device::Cpu,
            77,
        )
        .unwrap();
        let r = train_stages(
            &second,
            None,
            &tok,
            &pairs,
            &[],
            &cfg,
            dir.path(),
            &mut |_| Box::new(Quiet),
        )
        .unwrap();
        assert_eq!(
            r[0].report.resumed_from,
            Some(6),
            "stage 0 was finished, not redone"
        );
        assert_eq!(
            r[1].report.resumed_from,
            Some(3),
            "stage 1 resumes at its checkpoint"
        );
        let (a, b) = (weights(&straight), weights(&second));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "resumed two-stage weights differ by {diff}");
    }
}
