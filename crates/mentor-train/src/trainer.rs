//! The training loop: micro-batches → chunked loss → accumulated gradients → clip → AdamW,
//! with validation every N steps, the best checkpoint kept by the validation metric (never by
//! test), and a resumable checkpoint (weights, optimiser moments, schedule position, data
//! cursor) written atomically.
//!
//! Layout of `out_dir`:
//! - `checkpoint/` — `trainable.safetensors`, `optimizer.safetensors`, `state.json`: where to
//!   resume. Replaced as a whole by a rename, so a crash leaves the previous one intact.
//! - `best/` — the validation-best model as a Hugging Face directory (adapters merged).
//! - `log.jsonl` — one line per optimiser step and per validation.

use crate::batch::{epoch_batches, Batch, TrainExample};
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig, Schedule, ScheduleKind};
use candle_core::{Result, Tensor, Var};
use mentor_model::cpu_train;
use mentor_model::load::{write_atomic, Student};
use mentor_model::loss::{chunked_lm_loss, chunked_lm_loss_with};
use mentor_model::Llama;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`TrainConfig::epochs`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    #[default]
    Pairs,
    Questions,
}

/// How the loss weighs an example's target tokens ([`TrainConfig::loss_per`]); the weights are
/// set where pairs become examples (`mentor_methods::student::encode_pairs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossPer {
    /// Each example counts its task weight, spread over its target tokens: a 5-token target
    /// weighs as much as a 300-token one, each of its tokens 60× more.
    #[default]
    Example,
    /// Each target token of a task counts alike over the whole training set: its weight is the
    /// task weight over the task's mean target length, so an example weighs by its length
    /// (an average-length one as under `example`). The token mean the papers' code takes
    /// (Hugging Face's trainer over random batches), kept under mentor's length-bucketed
    /// batches, where a per-step token mean would let a step of one-line targets weigh as
    /// much as a step of long ones.
    Token,
}

impl TrainConfig {
    /// The optimiser steps of `epochs` over `pairs` examples that cover `questions` questions:
    /// `max_steps` when set, else epochs in the configured unit.
    pub fn steps_for(&self, pairs: usize, questions: usize) -> u64 {
        if let Some(s) = self.max_steps {
            return s;
        }
        let per_step = (self.batch_size.max(1) * self.grad_accum.max(1)) as f64;
        let n = match self.epoch_unit {
            EpochUnit::Pairs => pairs,
            EpochUnit::Questions => questions,
        };
        ((n as f64 * self.epochs) / per_step).ceil().max(1.0) as u64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: ScheduleKind,
    /// Warm-up steps as a fraction of all optimiser steps.
    pub warmup_ratio: f64,
    /// The schedule's floor, as a fraction of `lr`.
    pub min_lr_ratio: f64,
    pub epochs: f64,
    /// What an epoch counts: every training pair (`pairs`), or every question once
    /// (`questions`: a recipe with several pairs a question — step-by-step's two tasks, K chains
    /// of thought — then takes as many optimiser steps as one pair a question would; the
    /// equal-steps control).
    pub epoch_unit: EpochUnit,
    /// Stop after this many optimiser steps (overrides `epochs`).
    pub max_steps: Option<u64>,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Global gradient-norm bound (0 = no clipping).
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Longest sequence (prompt + target) in tokens; a longer example loses its prompt's middle,
    /// then its target's end, never the prompt's start ([`crate::batch::fit`]).
    pub max_len: usize,
    /// Validate every this many optimiser steps (0 = only at the end).
    pub eval_every: u64,
    /// Write the resumable checkpoint every this many optimiser steps (0 = only at the end).
    pub save_every: u64,
    /// Rows of logits materialised at once by the loss.
    pub loss_chunk: usize,
    /// Token-level distillation from a teacher model over the same tokens ([`train_with`]).
    pub kd: Option<KdSettings>,
    /// Whether an example weighs its task weight whatever its length (`example`) or by its
    /// length, each token of a task alike (`token`, the papers' code): [`LossPer`].
    pub loss_per: LossPer,
}

/// The distillation term: the loss over target tokens becomes
/// `(1 − weight) · CE(gold tokens) + weight · T² · D(teacher ‖ student)` at `temperature`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdSettings {
    pub weight: f32,
    #[serde(default = "one")]
    pub temperature: f32,
    pub loss: KdLoss,
    /// JSD's mixture weight.
    #[serde(default = "half")]
    pub beta: f32,
    /// On-policy share λ (GKD): each micro-batch, with probability λ, trains on continuations the
    /// student samples itself from its prompts (as long as the gold target), scored by the
    /// teacher's divergence alone.
    #[serde(default)]
    pub on_policy: f32,
    /// The tasks whose target tokens take the KD term (e.g. `["rationale"]`: the teacher's
    /// distribution over a format it was never asked for, such as a bare label, is left out);
    /// empty: every task. The others train on their cross-entropy alone, at full weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
}

fn one() -> f32 {
    1.0
}
fn half() -> f32 {
    0.5
}

/// The teacher of a kd run: its model, and the tokenizer it shares with the student (for the
/// student's own samples in on-policy batches).
#[derive(Clone, Copy)]
pub struct KdTeacher<'a> {
    pub model: &'a Llama,
    pub tokenizer: &'a mentor_model::TextTokenizer,
}

/// Which divergence ([`mentor_model::kd::Divergence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KdLoss {
    ForwardKl,
    ReverseKl,
    Jsd,
}

impl KdSettings {
    pub fn divergence(&self) -> mentor_model::kd::Divergence {
        use mentor_model::kd::Divergence;
        match self.loss {
            KdLoss::ForwardKl => Divergence::ForwardKl,
            KdLoss::ReverseKl => Divergence::ReverseKl,
            KdLoss::Jsd => Divergence::Jsd { beta: self.beta },
        }
    }

    /// What is out of range, if anything.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(format!("kd weight must be in [0, 1], got {}", self.weight));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "kd temperature must be positive, got {}",
                self.temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.on_policy) {
            return Err(format!(
                "kd on_policy must be in [0, 1], got {}",
                self.on_policy
            ));
        }
        if self.loss == KdLoss::Jsd && !(self.beta > 0.0 && self.beta < 1.0) {
            return Err(format!(
                "kd beta must be in (0, 1) for jsd (use forward-kl or reverse-kl for the ends), got {}",
                self.beta
            ));
        }
        Ok(())
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lr: 2e-4,
            schedule: ScheduleKind::Cosine,
            warmup_ratio: 0.05,
            min_lr_ratio: 0.1,
            epochs: 3.0,
            epoch_unit: EpochUnit::Pairs,
            max_steps: None,
            batch_size: 8,
            grad_accum: 1,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            seed: 0,
            max_len: 512,
            eval_every: 0,
            save_every: 50,
            loss_chunk: 256,
            kd: None,
            loss_per: LossPer::Example,
        }
    }
}

/// One optimiser step, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub step: u64,
    pub epoch: f64,
    pub lr: f64,
    /// Σ w·nll / examples over the step's gold batches: each example weighs its task weight.
    /// NaN for an on-policy step whose micro-batches were all the student's own samples (no
    /// gold targets to score).
    pub loss: f64,
    /// Mean nll per task over the step's target tokens.
    pub task_loss: BTreeMap<String, f64>,
    pub grad_norm: f64,
    pub tokens: usize,
    pub seconds: f64,
    /// With a kd term: its T²-scaled divergence, weighted like `loss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kd_loss: Option<f64>,
    /// With on-policy KD: how many of the step's micro-batches were the student's own samples
    /// (their tokens count in `kd_loss` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_policy_batches: Option<usize>,
}

/// One validation, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLog {
    pub step: u64,
    pub loss: f64,
    /// From [`Hooks::validate`], when it measures one (higher is better).
    pub accuracy: Option<f64>,
    pub best: bool,
}

/// What the loop tells its caller, and asks of it.
pub trait Hooks {
    fn on_step(&mut self, _log: &StepLog, _total_steps: u64) {}
    fn on_eval(&mut self, _log: &EvalLog) {}
    /// A task metric on the validation split (e.g. answer accuracy by generation), higher is
    /// better; when it returns `Some`, it selects the best checkpoint instead of the loss.
    fn validate(&mut self, _model: &Llama) -> Result<Option<f64>> {
        Ok(None)
    }
    /// Polled between steps: `true` stops after writing a checkpoint (Ctrl-C).
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// No-op hooks.
pub struct Quiet;
impl Hooks for Quiet {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    step: u64,
    epoch: u64,
    /// Next batch index within `epoch`.
    cursor: usize,
    best_metric: Option<f64>,
    best_step: Option<u64>,
    config: Option<TrainConfig>,
    train_examples: usize,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub steps: u64,
    pub total_steps: u64,
    /// Resumed from a checkpoint at this step.
    pub resumed_from: Option<u64>,
    pub stopped_early: bool,
    pub best_step: Option<u64>,
    pub best_metric: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub final_valid_loss: Option<f64>,
    pub best_dir: Option<PathBuf>,
    /// Training examples longer than `max_len`, cut to fit.
    pub truncated_examples: usize,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Validation loss (Σ w·nll / Σ w) of `model` on `examples`, no gradients.
pub fn eval_loss(
    model: &Llama,
    examples: &[TrainExample],
    cfg: &TrainConfig,
    pad_id: u32,
) -> Result<f64> {
    let (mut nll, mut w) = (0f64, 0f64);
    let order: Vec<usize> = (0..examples.len()).collect();
    for chunk in order.chunks(cfg.batch_size.max(1)) {
        let b = Batch::new(examples, chunk, cfg.max_len, pad_id);
        let ids = Tensor::from_vec(b.input_ids.clone(), (b.rows, b.width), model.device())?;
        let h = model.forward_hidden(&ids)?.detach();
        let out = chunked_lm_loss(
            &h,
            model.lm_head_weight(),
            &b.targets,
            &b.weights,
            None,
            cfg.loss_chunk,
        )?;
        nll += out.weighted_nll;
        w += out.weight;
    }
    Ok(if w > 0.0 { nll / w } else { f64::NAN })
}

/// What one optimiser step did.
pub struct StepOutcome {
    /// Σ w·nll / examples over the step's micro-batches (an example weighs its task weight).
    pub loss: f64,
    /// Per micro-batch, per position: the nll (0 where unweighted).
    pub nll: Vec<Vec<f32>>,
    pub grad_norm: f64,
    pub tokens: usize,
    /// With a kd term: Σ w·T²·divergence / examples (the loss above stays the cross-entropy).
    pub kd_loss: Option<f64>,
}

/// Whether [`optimizer_step`] runs `model` through the written-out CPU step
/// ([`cpu_train`], whose doc says why) rather than candle's autograd: for a plain f32 decoder
/// on the CPU, unless `MENTOR_AUTOGRAD` is set (for comparison).
pub fn written_out_step(model: &Llama) -> bool {
    cpu_train::supported(model) && std::env::var_os("MENTOR_AUTOGRAD").is_none()
}

/// One optimiser step over `micro` (the accumulated micro-batches): forward, chunked loss,
/// backward per micro-batch with gradients summed, clipping, AdamW at `lr`.
pub fn optimizer_step(
    model: &Llama,
    opt: &mut AdamW,
    micro: &[Batch],
    lr: f64,
    cfg: &TrainConfig,
) -> Result<StepOutcome> {
    optimizer_step_with(model, None, opt, micro, lr, cfg)
}

/// [`optimizer_step`] with the teacher of `cfg.kd`: its logits over the same tokens, taken
/// chunk by chunk from its final hidden states (one forward per micro-batch, no gradients).
pub fn optimizer_step_with(
    model: &Llama,
    teacher: Option<&Llama>,
    opt: &mut AdamW,
    micro: &[Batch],
    lr: f64,
    cfg: &TrainConfig,
) -> Result<StepOutcome> {
    if cfg.kd.is_some() != teacher.is_some() {
        candle_core::bail!("kd: a teacher model is needed exactly when the config has a kd term");
    }
    let dev = model.device().clone();
    // The loss is the mean over the step's examples of Σ token weight × nll: an example's token
    // weights sum to its task weight, so a batch of one task at weight α counts α, not 1.
    // (Dividing by Σ weight instead cancelled α inside every single-task batch, and length
    // bucketing makes most batches single-task.)
    let norm: f64 = micro.iter().map(|b| b.rows as f64).sum();
    let params = opt.params().to_vec();
    let mut grads: Vec<Option<Tensor>> = vec![None; params.len()];
    let mut out = StepOutcome {
        loss: f64::NAN,
        nll: Vec::with_capacity(micro.len()),
        grad_norm: 0.0,
        tokens: 0,
        kd_loss: None,
    };
    let (mut weighted_nll, mut weighted_kd, mut ce_norm) = (0f64, 0f64, 0f64);
    let mut lap = lap_timer();
    let direct = written_out_step(model);
    for b in micro {
        // a micro-batch none of whose rows takes the KD term (`kd.tasks`) needs no teacher
        let kd_here = b.kd_rows.as_ref().is_none_or(|r| r.contains(&true));
        // the teacher's final hidden states for this micro-batch; its logits row by row below
        let teacher_hidden = match teacher.filter(|_| kd_here) {
            Some(t) => {
                let ids = Tensor::from_vec(b.input_ids.clone(), (b.rows, b.width), t.device())?;
                Some(t.forward_hidden(&ids)?.detach())
            }
            None => None,
        };
        let teacher_logits = |positions: &[usize]| -> Result<Vec<f32>> {
            let (t, h) = (teacher.unwrap(), teacher_hidden.as_ref().unwrap());
            let idx: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
            let rows = h.index_select(&Tensor::new(idx.as_slice(), h.device())?, 0)?;
            t.logits_of_hidden(&rows)?.flatten_all()?.to_vec1::<f32>()
        };
        let kd_term = cfg
            .kd
            .as_ref()
            .filter(|_| kd_here)
            .map(|k| mentor_model::kd::KdTerm {
                weight: if b.on_policy { 1.0 } else { k.weight },
                temperature: k.temperature,
                divergence: k.divergence(),
                teacher_logits: &teacher_logits,
                rows: b.kd_rows.as_deref().map(|r| (r, b.width)),
            });
        if teacher_hidden.is_some() {
            lap("teacher forward");
        }
        if direct {
            let step = cpu_train::loss_and_grads_with(
                model,
                &b.input_ids,
                b.rows,
                b.width,
                &b.targets,
                &b.weights,
                norm.max(f64::MIN_POSITIVE),
                cfg.loss_chunk,
                kd_term.as_ref(),
            )?;
            lap("forward, loss and backward");
            if !b.on_policy {
                weighted_nll += step.loss.weighted_nll;
                ce_norm += b.rows as f64;
            }
            weighted_kd += step.loss.weighted_kd;
            out.tokens += b.tokens;
            out.nll.push(step.loss.nll);
            accumulate(&mut grads, &params, |v| step.grads.get(&v.id()))?;
            continue;
        }
        let ids = Tensor::from_vec(b.input_ids.clone(), (b.rows, b.width), &dev)?;
        let hidden = model.forward_hidden(&ids)?;
        lap("forward");
        let loss = chunked_lm_loss_with(
            &hidden,
            model.lm_head_weight(),
            &b.targets,
            &b.weights,
            Some(norm.max(f64::MIN_POSITIVE)),
            cfg.loss_chunk,
            kd_term.as_ref(),
        )?;
        lap("loss");
        if !b.on_policy {
            weighted_nll += loss.weighted_nll;
            ce_norm += b.rows as f64;
        }
        weighted_kd += loss.weighted_kd;
        out.tokens += b.tokens;
        out.nll.push(loss.nll);
        if let Some(s) = loss.surrogate {
            let g = s.backward()?;
            lap("backward");
            accumulate(&mut grads, &params, |v| g.get(v))?;
        }
    }
    if norm > 0.0 {
        // the cross-entropy of the gold targets only: on-policy batches have none
        if ce_norm > 0.0 {
            out.loss = weighted_nll / ce_norm;
        }
        if cfg.kd.is_some() {
            out.kd_loss = Some(weighted_kd / norm);
        }
    }
    lap("accumulate");
    out.grad_norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
    lap("clip");
    opt.step(&grads, lr)?;
    lap("adamw");
    Ok(out)
}

/// A uniform draw in [0, 1) fixed by (seed, step, micro-batch): a resumed run makes the same
/// on-policy choices as an uninterrupted one.
fn unit_draw(seed: u64, step: u64, micro: u64) -> f64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ micro.wrapping_mul(0xD1B5_4A32_D192_ED03),
    );
    rng.random::<f64>()
}

/// The batch of `chosen` with each gold target replaced by a continuation the student samples
/// (temperature 1) from the example's prompt, as long as the gold target at most, ending in
/// the end-of-sequence token where the student chose to stop.
fn self_sampled_batch(
    model: &Llama,
    tokenizer: &mentor_model::TextTokenizer,
    train: &[TrainExample],
    chosen: &[usize],
    cfg: &TrainConfig,
    step: u64,
    pad_id: u32,
) -> Result<Batch> {
    use mentor_model::{generate, FinishReason, SamplingParams};
    let requests: Vec<(Vec<u32>, SamplingParams)> = chosen
        .iter()
        .map(|&i| {
            let e = &train[i];
            (
                e.prompt.clone(),
                SamplingParams {
                    max_new_tokens: e.target.len().max(1),
                    temperature: 1.0,
                    top_p: 1.0,
                    seed: cfg.seed ^ (step << 20) ^ i as u64,
                    ..Default::default()
                },
            )
        })
        .collect();
    let gens = generate(model, tokenizer, &requests, chosen.len(), &mut |_| {})?;
    let eos = tokenizer.stop_ids.first().copied();
    let sampled: Vec<TrainExample> = chosen
        .iter()
        .zip(gens)
        .map(|(&i, g)| {
            let mut target = g.token_ids;
            if let (FinishReason::Stop, Some(eos)) = (g.finish_reason, eos) {
                target.push(eos);
            }
            if target.is_empty() {
                target = train[i].target.clone();
            }
            TrainExample {
                target,
                ..train[i].clone()
            }
        })
        .collect();
    let idx: Vec<usize> = (0..sampled.len()).collect();
    let mut b = Batch::new(&sampled, &idx, cfg.max_len, pad_id);
    b.examples = chosen.to_vec();
    b.on_policy = true;
    Ok(b)
}

/// Adds each parameter's gradient (`grad_of` it, if any) to its running sum in `grads`.
fn accumulate<'a>(
    grads: &mut [Option<Tensor>],
    params: &[(String, Var)],
    grad_of: impl Fn(&Var) -> Option<&'a Tensor>,
) -> Result<()> {
    for (i, (_, var)) in params.iter().enumerate() {
        if let Some(gi) = grad_of(var) {
            grads[i] = Some(match grads[i].take() {
                Some(acc) => (acc + gi)?,
                None => gi.clone(),
            });
        }
    }
    Ok(())
}

/// Trains `student` on `train`, validating on `valid`, checkpointing into `out_dir`; resumes
/// from `out_dir/checkpoint` when one exists for the same configuration.
pub fn train(
    student: &Student,
    train: &[TrainExample],
    valid: &[TrainExample],
    cfg: &TrainConfig,
    pad_id: u32,
    out_dir: &Path,
    hooks: &mut dyn Hooks,
) -> Result<TrainReport> {
    train_with(student, None, train, valid, cfg, pad_id, out_dir, hooks)
}

/// [`train`] with the teacher model of `cfg.kd` (same tokenizer as the student), whose logits
/// over each batch's tokens enter the loss.
#[allow(clippy::too_many_arguments)]
pub fn train_with(
    student: &Student,
    teacher: Option<KdTeacher>,
    train: &[TrainExample],
    valid: &[TrainExample],
    cfg: &TrainConfig,
    pad_id: u32,
    out_dir: &Path,
    hooks: &mut dyn Hooks,
) -> Result<TrainReport> {
    if let Some(kd) = &cfg.kd {
        kd.check().map_err(msg)?;
        let Some(t) = teacher else {
            candle_core::bail!(
                "kd: the config asks for a teacher's logits but no teacher model was given"
            );
        };
        let (tv, sv) = (t.model.cfg.vocab_size, student.model.cfg.vocab_size);
        if tv != sv {
            candle_core::bail!(
                "kd: the teacher's vocabulary ({tv} tokens) differs from the student's ({sv}); token-level distillation needs one tokenizer"
            );
        }
    }
    if train.is_empty() {
        candle_core::bail!("no training examples");
    }
    std::fs::create_dir_all(out_dir).map_err(|e| msg(format!("{}: {e}", out_dir.display())))?;
    let model = &student.model;
    let dev = model.device().clone();
    let params = student.trainable();
    if params.is_empty() {
        candle_core::bail!("the student has no trainable parameters (frozen)");
    }
    let mut opt = AdamW::new(
        params.clone(),
        AdamWConfig {
            weight_decay: cfg.weight_decay,
            ..AdamWConfig::default()
        },
    )?;
    if cfg.epoch_unit == EpochUnit::Questions && cfg.max_steps.is_none() {
        candle_core::bail!(
            "epoch_unit = \"questions\": the caller must turn epochs into max_steps (TrainConfig::steps_for); the loop sees pairs, not questions"
        );
    }
    let batches_per_epoch = train.len().div_ceil(cfg.batch_size.max(1));
    let accum = cfg.grad_accum.max(1);
    let total_steps = cfg.max_steps.unwrap_or_else(|| {
        ((batches_per_epoch as f64 * cfg.epochs) / accum as f64)
            .ceil()
            .max(1.0) as u64
    });
    let schedule = Schedule {
        kind: cfg.schedule,
        peak: cfg.lr,
        warmup: (total_steps as f64 * cfg.warmup_ratio).round() as u64,
        total: total_steps,
        min_ratio: cfg.min_lr_ratio,
    };

    let ckpt = out_dir.join("checkpoint");
    let mut state = State {
        config: Some(cfg.clone()),
        train_examples: train.len(),
        ..State::default()
    };
    let mut resumed_from = None;
    if let Some(dir) = existing_checkpoint(out_dir) {
        let saved: State = serde_json::from_slice(
            &std::fs::read(dir.join("state.json"))
                .map_err(|e| msg(format!("{}: {e}", dir.display())))?,
        )
        .map_err(|e| msg(format!("{}/state.json: {e}", dir.display())))?;
        if saved.config.as_ref() != Some(cfg) || saved.train_examples != train.len() {
            candle_core::bail!(
                "{} holds a run with a different training config or data; use a new output directory",
                dir.display()
            );
        }
        let mut weights = candle_core::safetensors::load(dir.join("trainable.safetensors"), &dev)?;
        for (name, var) in &params {
            let t = weights
                .remove(name)
                .ok_or_else(|| msg(format!("{}: checkpoint lacks `{name}`", dir.display())))?;
            var.set(&t)?;
        }
        opt.load(&dir.join("optimizer.safetensors"), saved.step)?;
        resumed_from = Some(saved.step);
        state = saved;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out_dir.join("log.jsonl"))
        .map_err(|e| msg(format!("{}/log.jsonl: {e}", out_dir.display())))?;
    let mut write_log = |v: serde_json::Value| {
        use std::io::Write;
        let _ = writeln!(log, "{v}");
    };

    let mut report = TrainReport {
        steps: state.step,
        total_steps,
        resumed_from,
        stopped_early: false,
        best_step: state.best_step,
        best_metric: state.best_metric,
        final_train_loss: None,
        final_valid_loss: None,
        best_dir: None,
        truncated_examples: crate::batch::count_truncated(train, cfg.max_len),
    };
    if report.truncated_examples > 0 {
        tracing::warn!(
            "{} of {} training examples are longer than max_len = {} tokens and are cut (the prompt's middle, then the target's end)",
            report.truncated_examples,
            train.len(),
            cfg.max_len
        );
    }
    let mut epoch_order = epoch_batches(train, cfg.batch_size.max(1), cfg.seed, state.epoch);
    while state.step < total_steps {
        if hooks.should_stop() {
            report.stopped_early = true;
            break;
        }
        let started = Instant::now();
        // the micro-batches of this step, and their total weight (the loss's denominator)
        let mut micro = Vec::with_capacity(accum);
        for _ in 0..accum {
            if state.cursor >= epoch_order.len() {
                state.epoch += 1;
                state.cursor = 0;
                epoch_order = epoch_batches(train, cfg.batch_size.max(1), cfg.seed, state.epoch);
            }
            let chosen = &epoch_order[state.cursor];
            let on_policy = match (&cfg.kd, teacher) {
                (Some(kd), Some(t)) if kd.on_policy > 0.0 => {
                    let draw = unit_draw(cfg.seed, state.step, micro.len() as u64);
                    (draw < kd.on_policy as f64).then_some(t)
                }
                _ => None,
            };
            let mut b = match on_policy {
                Some(t) => {
                    self_sampled_batch(model, t.tokenizer, train, chosen, cfg, state.step, pad_id)?
                }
                None => Batch::new(train, chosen, cfg.max_len, pad_id),
            };
            if let Some(kd) = cfg.kd.as_ref().filter(|k| !k.tasks.is_empty()) {
                let on = |e: &usize| kd.tasks.contains(&train[*e].task);
                let rows: Vec<bool> = b.examples.iter().map(on).collect();
                if b.on_policy {
                    // the student's own samples teach only through the teacher's divergence: a
                    // row outside `kd.tasks` has none, and must not train on its own sample
                    for (r, _) in rows.iter().enumerate().filter(|(_, &on)| !on) {
                        b.weights[r * b.width..(r + 1) * b.width].fill(0.0);
                    }
                }
                b.kd_rows = Some(rows);
            }
            micro.push(b);
            state.cursor += 1;
        }
        let lr = schedule.lr(state.step);
        let out = optimizer_step_with(model, teacher.map(|t| t.model), &mut opt, &micro, lr, cfg)?;
        let mut per_task: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (b, nll) in micro.iter().zip(&out.nll).filter(|(b, _)| !b.on_policy) {
            for (r, &ex) in b.examples.iter().enumerate() {
                let e = per_task.entry(train[ex].task.clone()).or_default();
                for p in 0..b.width {
                    if b.weights[r * b.width + p] > 0.0 {
                        e.0 += nll[r * b.width + p] as f64;
                        e.1 += 1.0;
                    }
                }
            }
        }
        let (tokens, grad_norm) = (out.tokens, out.grad_norm);
        state.step += 1;
        let step_log = StepLog {
            step: state.step,
            epoch: state.epoch as f64 + state.cursor as f64 / epoch_order.len() as f64,
            lr,
            loss: out.loss,
            task_loss: per_task
                .into_iter()
                .map(|(k, (s, n))| (k, if n > 0.0 { s / n } else { f64::NAN }))
                .collect(),
            grad_norm,
            tokens,
            seconds: started.elapsed().as_secs_f64(),
            kd_loss: out.kd_loss,
            on_policy_batches: cfg
                .kd
                .as_ref()
                .filter(|k| k.on_policy > 0.0)
                .map(|_| micro.iter().filter(|b| b.on_policy).count()),
        };
        report.final_train_loss = Some(step_log.loss);
        write_log(serde_json::json!({"kind": "step", "log": &step_log}));
        hooks.on_step(&step_log, total_steps);

        let last = state.step == total_steps;
        if (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every)) || last {
            let e = validate(student, valid, cfg, pad_id, out_dir, &mut state, hooks)?;
            report.final_valid_loss = Some(e.loss);
            write_log(serde_json::json!({"kind": "eval", "log": &e}));
            hooks.on_eval(&e);
        }
        if (cfg.save_every > 0 && state.step.is_multiple_of(cfg.save_every)) || last {
            save_checkpoint(&ckpt, student, &opt, &state)?;
        }
    }
    if report.stopped_early {
        save_checkpoint(&ckpt, student, &opt, &state)?;
    }
    report.steps = state.step;
    report.best_step = state.best_step;
    report.best_metric = state.best_metric;
    let best = out_dir.join("best");
    report.best_dir = best.join("model.safetensors").is_file().then_some(best);
    Ok(report)
}

/// With `MENTOR_TRACE_STEP` set, a closure that prints the time since its last call.
fn lap_timer() -> impl FnMut(&str) {
    let trace = std::env::var_os("MENTOR_TRACE_STEP").is_some();
    let mut t = Instant::now();
    move |what| {
        if trace {
            eprintln!("  {what}: {:.2}s", t.elapsed().as_secs_f64());
            t = Instant::now();
        }
    }
}

/// Validation loss (and the hook's metric); saves `best/` when it improves.
fn validate(
    student: &Student,
    valid: &[TrainExample],
    cfg: &TrainConfig,
    pad_id: u32,
    out_dir: &Path,
    state: &mut State,
    hooks: &mut dyn Hooks,
) -> Result<EvalLog> {
    let mut lap = lap_timer();
    let loss = if valid.is_empty() {
        f64::NAN
    } else {
        eval_loss(&student.model, valid, cfg, pad_id)?
    };
    lap(&format!("validation loss ({} examples)", valid.len()));
    let accuracy = hooks.validate(&student.model)?;
    lap("validation accuracy");
    // higher is better: accuracy when measured, else −loss; no validation data → last wins
    let metric = accuracy.or((!loss.is_nan()).then_some(-loss));
    let best = match (metric, state.best_metric) {
        (Some(m), Some(b)) => m > b,
        (Some(_), None) => true,
        (None, _) => true,
    };
    if best {
        state.best_metric = metric;
        state.best_step = Some(state.step);
        let tmp = out_dir.join("best.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        student.save_hf(&tmp)?;
        replace_dir(&tmp, &out_dir.join("best"))?;
        lap("saving best");
    }
    Ok(EvalLog {
        step: state.step,
        loss,
        accuracy,
        best,
    })
}

fn save_checkpoint(dir: &Path, student: &Student, opt: &AdamW, state: &State) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| msg(format!("{}: {e}", tmp.display())))?;
    let weights: std::collections::HashMap<String, Tensor> = student
        .trainable()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&weights, tmp.join("trainable.safetensors"))?;
    opt.save(&tmp.join("optimizer.safetensors"))?;
    write_atomic(
        &tmp.join("state.json"),
        serde_json::to_string_pretty(state).map_err(msg)?.as_bytes(),
    )?;
    replace_dir(&tmp, dir)
}

/// Moves `from` to `to`, keeping the old `to` as `to.old` until the move is done, so that at
/// every instant one complete copy exists.
fn replace_dir(from: &Path, to: &Path) -> Result<()> {
    let old = to.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if to.exists() {
        std::fs::rename(to, &old).map_err(|e| msg(format!("{}: {e}", to.display())))?;
    }
    std::fs::rename(from, to).map_err(|e| msg(format!("{}: {e}", to.display())))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// `checkpoint/`, or `checkpoint.old/` when a crash fell between the two renames.
fn existing_checkpoint(out_dir: &Path) -> Option<PathBuf> {
    ["checkpoint", "checkpoint.old"]
        .iter()
        .map(|n| out_dir.join(n))
        .find(|d| d.join("state.json").is_file())
}
