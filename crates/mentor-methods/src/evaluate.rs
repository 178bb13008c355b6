//! The evaluation stage: the student answers held-out questions in one of four inference modes,
//! and its answers are scored against gold.
//!
//! - `label`: `predict:` greedy → the answer sentence.
//! - `cot`: `solve:` greedy → reasoning and answer sentence.
//! - `vote`: `solve:` sampled N times, majority over the parsed answers (self-consistency).
//! - `self-eval-vote`: as `vote`, but the student judges each of its N chains of thought
//!   (`evaluate:`, greedy) and each answer's vote is weighted by its verdict (correct 20,
//!   uncertain 1, wrong 0.001; unreadable verdicts count as uncertain). Ours: the Mind's Mirror
//!   authors never used the distilled self-evaluation at inference.

use crate::student::prompt_ids;
use crate::trainset::{student_prompt, StudentTask};
use candle_core::Result;
use mentor_core::extract::{answers_match, gold_answer, Answer};
use mentor_core::score::wilson_interval;
use mentor_core::text::{truncate_at_follow_on, FOLLOW_ON_MARKERS};
use mentor_core::{extract, parse_verdict, Example, NumericRule, TaskKind, Verdict};
use mentor_model::{generate, FinishReason, Llama, SamplingParams, TextTokenizer};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InferenceMode {
    Label,
    Cot,
    Vote,
    SelfEvalVote,
}

impl InferenceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InferenceMode::Label => "label",
            InferenceMode::Cot => "cot",
            InferenceMode::Vote => "vote",
            InferenceMode::SelfEvalVote => "self-eval-vote",
        }
    }
}

impl InferenceMode {
    /// The student tasks this mode prompts.
    pub fn tasks(self) -> &'static [StudentTask] {
        match self {
            InferenceMode::Label => &[StudentTask::Label],
            InferenceMode::Cot | InferenceMode::Vote => &[StudentTask::Cot],
            InferenceMode::SelfEvalVote => &[StudentTask::Cot, StudentTask::SelfEval],
        }
    }
}

impl std::str::FromStr for InferenceMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| {
            format!("unknown inference mode `{s}`; expected label, cot, vote or self-eval-vote")
        })
    }
}

/// The `[eval]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Inference mode; none = the recipe's own (label for standard and step-by-step, cot for
    /// minds-mirror).
    pub mode: Option<InferenceMode>,
    /// Samples per question for `vote` and `self-eval-vote`.
    pub samples: usize,
    /// Sampling temperature for `vote` and `self-eval-vote`.
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// `self-eval-vote`: new tokens of each judgement. A judgement cut at this limit counts as
    /// `uncertain`, whatever verdict words its text held.
    pub judge_max_new_tokens: usize,
    /// Prompts decoded together. 32 decodes 1.15× faster than 16 on 2 cores (BENCHMARKS.md,
    /// "Decode-step attention"); past 32 rows the products leave the few-rows kernel.
    pub batch: usize,
    pub seed: u64,
    /// Validate on at most this many validation items during training (0 = validation loss only).
    pub valid_limit: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            mode: None,
            samples: 5,
            temperature: 0.7,
            top_p: 0.95,
            max_new_tokens: 256,
            judge_max_new_tokens: 320,
            batch: 32,
            seed: 0,
            valid_limit: 64,
        }
    }
}

/// One sampled answer and its vote weight.
#[derive(Debug, Clone, Serialize)]
pub struct Vote {
    pub output: String,
    pub answer: Option<Answer>,
    pub verdict: Option<Verdict>,
    pub weight: f64,
    /// Whether this sample's own answer is the gold one: the verdicts of a student that judges
    /// itself are scored against it (`mentor compare --mode self-eval-vote`).
    pub correct: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub id: String,
    pub output: String,
    pub answer: Option<Answer>,
    pub correct: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub mode: InferenceMode,
    pub n: usize,
    pub correct: usize,
    pub unparseable: usize,
    pub accuracy: f64,
    /// The 95% Wilson interval of `accuracy`, `[lo, hi]`.
    pub ci95: [f64; 2],
    pub new_tokens: usize,
    pub items: Vec<ItemResult>,
}

/// A stored answer (`Answer` as JSON) written as the student would read it: `7`, `(b)`, `yes`.
pub fn answer_text(v: &serde_json::Value) -> Option<String> {
    let a: Answer = serde_json::from_value(v.clone()).ok()?;
    Some(match a {
        Answer::Number { text, .. } => text,
        Answer::Choice(i) => format!("({})", (b'a' + i as u8) as char),
        Answer::Label(l) => l,
    })
}

/// The winner of a weighted vote over parsed answers; ties go to the earliest sample.
pub fn weighted_vote(votes: &[Vote]) -> Option<&Answer> {
    let mut groups: Vec<(&Answer, f64)> = vec![];
    for v in votes {
        let Some(a) = &v.answer else { continue };
        match groups.iter_mut().find(|(g, _)| answers_match(a, g)) {
            Some(g) => g.1 += v.weight,
            None => groups.push((a, v.weight)),
        }
    }
    let mut best: Option<(&Answer, f64)> = None;
    for (a, w) in groups {
        if best.is_none_or(|(_, bw)| w > bw) {
            best = Some((a, w));
        }
    }
    best.map(|(a, _)| a)
}

/// The answer a student's text ends in (anything after an invented follow-on question ignored).
pub fn parse_answer(kind: TaskKind, ex: &Example, text: &str) -> Option<Answer> {
    extract(
        kind,
        truncate_at_follow_on(text, FOLLOW_ON_MARKERS),
        ex,
        NumericRule::Auto,
    )
    .answer
}

/// Runs the student over `items` in `mode`; `on_done(n)` reports finished generations.
pub fn evaluate(
    model: &Llama,
    tok: &TextTokenizer,
    kind: TaskKind,
    items: &[Example],
    mode: InferenceMode,
    cfg: &EvalConfig,
    on_done: &mut dyn FnMut(usize),
) -> Result<EvalReport> {
    evaluate_samples(model, tok, kind, items, mode, cfg, None, on_done)
}

/// [`evaluate`], with the chains of thought of `vote` / `self-eval-vote` given instead of
/// sampled (`samples[i]`: item i's, as many as `cfg.samples`): `self-eval-vote` then judges the
/// very samples a `vote` evaluation drew, and pays only for the judging.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_samples(
    model: &Llama,
    tok: &TextTokenizer,
    kind: TaskKind,
    items: &[Example],
    mode: InferenceMode,
    cfg: &EvalConfig,
    samples_given: Option<Vec<Vec<String>>>,
    on_done: &mut dyn FnMut(usize),
) -> Result<EvalReport> {
    let greedy = |max| SamplingParams {
        max_new_tokens: max,
        temperature: 0.0,
        ..Default::default()
    };
    let (task, samples) = match mode {
        InferenceMode::Label => (StudentTask::Label, 1),
        InferenceMode::Cot => (StudentTask::Cot, 1),
        InferenceMode::Vote | InferenceMode::SelfEvalVote => (StudentTask::Cot, cfg.samples.max(1)),
    };
    if let Some(given) = &samples_given {
        if given.len() != items.len() || given.iter().any(|g| g.len() != samples) {
            candle_core::bail!(
                "{} items with {samples} samples each expected, {} given",
                items.len(),
                given.len()
            );
        }
    }
    let mut requests = vec![];
    for (i, ex) in items.iter().enumerate().filter(|_| samples_given.is_none()) {
        let ids = prompt_ids(tok, &student_prompt(task, kind, ex, ""))?;
        for s in 0..samples {
            let params = if samples == 1 {
                greedy(if task == StudentTask::Label {
                    cfg.max_new_tokens.min(64)
                } else {
                    cfg.max_new_tokens
                })
            } else {
                SamplingParams {
                    max_new_tokens: cfg.max_new_tokens,
                    temperature: cfg.temperature,
                    top_p: cfg.top_p,
                    seed: cfg.seed + (i * samples + s) as u64,
                    ..Default::default()
                }
            };
            requests.push((ids.clone(), params));
        }
    }
    let (texts, mut new_tokens): (Vec<String>, usize) = match samples_given {
        Some(given) => {
            on_done(items.len() * samples);
            (given.into_iter().flatten().collect(), 0)
        }
        None => {
            let gens = generate(model, tok, &requests, cfg.batch, on_done)?;
            let n = gens.iter().map(|g| g.token_ids.len()).sum();
            (gens.into_iter().map(|g| g.text).collect(), n)
        }
    };
    let gold: Vec<Option<Answer>> = items.iter().map(|ex| gold_answer(kind, ex)).collect();
    let mut votes: Vec<Vec<Vote>> = items
        .iter()
        .enumerate()
        .map(|(i, ex)| {
            texts[i * samples..(i + 1) * samples]
                .iter()
                .map(|t| {
                    let answer = parse_answer(kind, ex, t);
                    let correct =
                        matches!((&answer, &gold[i]), (Some(a), Some(g)) if answers_match(a, g));
                    Vote {
                        output: t.clone(),
                        answer,
                        verdict: None,
                        weight: 1.0,
                        correct,
                    }
                })
                .collect()
        })
        .collect();
    if mode == InferenceMode::SelfEvalVote {
        let mut judge = vec![];
        for (ex, vs) in items.iter().zip(&votes) {
            for v in vs {
                let p = student_prompt(StudentTask::SelfEval, kind, ex, &v.output);
                judge.push((prompt_ids(tok, &p)?, greedy(cfg.judge_max_new_tokens)));
            }
        }
        let verdicts = generate(model, tok, &judge, cfg.batch, on_done)?;
        new_tokens += verdicts.iter().map(|g| g.token_ids.len()).sum::<usize>();
        for (v, g) in votes.iter_mut().flatten().zip(&verdicts) {
            // a judgement cut mid-way has not reached its verdict line
            v.verdict = match g.finish_reason {
                FinishReason::Stop => parse_verdict(&g.text),
                FinishReason::Length => None,
            };
            v.weight = v.verdict.unwrap_or(Verdict::Uncertain).vote_weight();
        }
    }
    let mut results = Vec::with_capacity(items.len());
    let (mut correct, mut unparseable) = (0, 0);
    for ((ex, vs), gold) in items.iter().zip(votes).zip(&gold) {
        let answer = weighted_vote(&vs).cloned();
        let ok = matches!((&answer, gold), (Some(a), Some(g)) if answers_match(a, g));
        correct += ok as usize;
        unparseable += answer.is_none() as usize;
        let output = vs
            .iter()
            .find(|v| {
                v.answer.is_some()
                    && answer
                        .as_ref()
                        .is_some_and(|a| answers_match(v.answer.as_ref().unwrap(), a))
            })
            .or(vs.first())
            .map(|v| v.output.clone())
            .unwrap_or_default();
        results.push(ItemResult {
            id: ex.id.clone(),
            output,
            answer,
            correct: ok,
            votes: if samples > 1 { vs } else { vec![] },
        });
    }
    let n = items.len();
    Ok(EvalReport {
        mode,
        n,
        correct,
        unparseable,
        accuracy: if n > 0 {
            correct as f64 / n as f64
        } else {
            0.0
        },
        ci95: wilson_interval(correct, n),
        new_tokens,
        items: results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: f64) -> Option<Answer> {
        Some(Answer::Number {
            value: v,
            text: v.to_string(),
        })
    }

    fn vote(a: Option<Answer>, w: f64) -> Vote {
        Vote {
            output: String::new(),
            answer: a,
            verdict: None,
            weight: w,
            correct: false,
        }
    }

    #[test]
    fn majority_and_verdict_weighted_votes() {
        let plain = [
            vote(num(7.0), 1.0),
            vote(num(12.0), 1.0),
            vote(num(12.0), 1.0),
            vote(None, 1.0),
        ];
        assert_eq!(weighted_vote(&plain), num(12.0).as_ref());
        // One answer judged correct (20) outweighs two judged wrong (0.001 each).
        let judged = [
            vote(num(7.0), 20.0),
            vote(num(12.0), 0.001),
            vote(num(12.0), 0.001),
        ];
        assert_eq!(weighted_vote(&judged), num(7.0).as_ref());
        // Ties go to the earliest sample; nothing parsed → no answer.
        assert_eq!(
            weighted_vote(&[vote(num(1.0), 1.0), vote(num(2.0), 1.0)]),
            num(1.0).as_ref()
        );
        assert_eq!(weighted_vote(&[vote(None, 1.0)]), None);
    }

    #[test]
    fn modes_parse_from_config_names() {
        assert_eq!(
            "self-eval-vote".parse::<InferenceMode>().unwrap(),
            InferenceMode::SelfEvalVote
        );
        assert!("magic".parse::<InferenceMode>().is_err());
    }
}
