//! ELAD, explanation-guided active distillation: under a teacher budget, in rounds, send the
//! teacher the pool items whose *student* explanations are most uncertain, and have it revise the
//! student's own explanation. The paper's code is not public; every choice below is ours
//! (DESIGN.md §2) and is written down where it is made.
//!
//! Per pool item the student writes one greedy explanation and K sampled ones (`solve:`, the CoT
//! task). Uncertainty has three parts, each in [0, 1] and stored per item:
//! - **instability** (within an explanation): after each step prefix the student is made to state
//!   its answer now ("So the answer is" appended, a few greedy tokens); the share of consecutive
//!   prefixes whose answers differ, the explanation's own final answer last, averaged over the
//!   greedy and sampled explanations. A student that keeps changing its mind while reasoning is
//!   unsure of its reasoning, not only of its answer.
//! - **entropy** (across samples): entropy of the K final answers (unparseable ones form one
//!   group), divided by ln K.
//! - **least confidence**: 1 − the greedy explanation's per-token probability (geometric mean),
//!   the classic baseline.
//!
//! ELAD's score is the mean of instability and entropy. Baselines rank by one part, or at
//! random (seeded). A probe computes only the parts its strategy ranks by ([`ProbeParts`]): the
//! step prefixes are most of a probe's work and only ELAD needs them. The teacher then revises
//! the greedy explanation: it names the first flawed step and rewrites from there
//! ([`revision_parser`]); or, for the "from scratch" baseline, writes its own chain of thought.

use crate::annotate::{Job, Parser};
use crate::evaluate::parse_answer;
pub use crate::recipe::{ProbeConfig, SelectionStrategy};
use crate::student::prompt_ids;
use crate::trainset::{student_prompt, StudentTask};
use candle_core::Result;
use mentor_core::extract::{answers_match, gold_answer, Answer};
use mentor_core::prompt::Prompts;
use mentor_core::text::split_rationale;
use mentor_core::{Example, TaskKind};
use mentor_model::{generate, Llama, SamplingParams, TextTokenizer};
use mentor_store::Annotation;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An item's uncertainty, each part in [0, 1]; `None` where the probe did not compute it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Uncertainty {
    pub instability: Option<f64>,
    pub entropy: Option<f64>,
    pub least_confidence: Option<f64>,
}

impl Uncertainty {
    /// The score `strategy` ranks by (random ranks by nothing: 0). A part the probe left out
    /// counts 0; [`ProbeParts::for_strategy`] computes every part its strategy needs.
    pub fn score(&self, strategy: SelectionStrategy) -> f64 {
        let part = |p: Option<f64>| p.unwrap_or(0.0);
        match strategy {
            SelectionStrategy::Elad => 0.5 * (part(self.instability) + part(self.entropy)),
            SelectionStrategy::AnswerEntropy => part(self.entropy),
            SelectionStrategy::LeastConfidence => part(self.least_confidence),
            SelectionStrategy::Random => 0.0,
        }
    }
}

/// What a probe of the pool generates besides each item's greedy explanation (which is always
/// there: the teacher revises it, and least confidence is read from its tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeParts {
    /// The K sampled explanations (answer entropy; instability averages over them too).
    pub samples: bool,
    /// The forced answers after each step prefix (instability).
    pub steps: bool,
}

impl ProbeParts {
    /// Every part: the selection record then holds all three scores for every item.
    pub const ALL: ProbeParts = ProbeParts {
        samples: true,
        steps: true,
    };

    /// The parts `strategy` ranks by, and nothing more.
    pub fn for_strategy(strategy: SelectionStrategy) -> ProbeParts {
        match strategy {
            SelectionStrategy::Elad => ProbeParts::ALL,
            SelectionStrategy::AnswerEntropy => ProbeParts {
                samples: true,
                steps: false,
            },
            SelectionStrategy::LeastConfidence | SelectionStrategy::Random => ProbeParts {
                samples: false,
                steps: false,
            },
        }
    }
}

/// One scored pool item: its uncertainty and the greedy explanation the teacher would revise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoredItem {
    pub id: String,
    pub uncertainty: Uncertainty,
    pub explanation: String,
}

/// The steps of an explanation: its lines, or its sentences when it is one line; the final
/// answer sentence is not a step. At most `max` (the first ones).
pub fn split_steps(text: &str, max: usize) -> Vec<String> {
    let body = split_rationale(text).rationale;
    let lines: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let steps: Vec<String> = if lines.len() > 1 {
        lines.into_iter().map(String::from).collect()
    } else {
        // sentence ends: ". " / "! " / "? " not inside a number like "3.5"
        let mut out = vec![];
        let mut cur = String::new();
        let chars: Vec<char> = body.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            cur.push(c);
            let next = chars.get(i + 1).copied();
            if matches!(c, '.' | '!' | '?') && next.is_none_or(char::is_whitespace) {
                let s = cur.trim().to_string();
                if !s.is_empty() {
                    out.push(s);
                }
                cur.clear();
            }
        }
        let s = cur.trim().to_string();
        if !s.is_empty() {
            out.push(s);
        }
        out
    };
    steps.into_iter().take(max).collect()
}

/// Groups answers by [`answers_match`]; `None` (unparseable) is one group. Returns group sizes.
fn answer_groups(answers: &[Option<Answer>]) -> Vec<usize> {
    let mut groups: Vec<(Option<&Answer>, usize)> = vec![];
    for a in answers {
        let found = groups.iter_mut().find(|(g, _)| match (g, a) {
            (None, None) => true,
            (Some(g), Some(a)) => answers_match(a, g),
            _ => false,
        });
        match found {
            Some(g) => g.1 += 1,
            None => groups.push((a.as_ref(), 1)),
        }
    }
    groups.into_iter().map(|(_, n)| n).collect()
}

/// Entropy of the answers' groups divided by ln(n): 0 when all agree, 1 when all differ.
pub fn answer_entropy(answers: &[Option<Answer>]) -> f64 {
    let n = answers.len();
    if n < 2 {
        return 0.0;
    }
    let h: f64 = answer_groups(answers)
        .into_iter()
        .map(|c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum();
    h / (n as f64).ln()
}

/// Share of consecutive answers that differ (an unparseable answer differs from any answer).
pub fn answer_instability(answers: &[Option<Answer>]) -> f64 {
    if answers.len() < 2 {
        return 0.0;
    }
    let changes = answers
        .windows(2)
        .filter(|w| match (&w[0], &w[1]) {
            (Some(a), Some(b)) => !answers_match(a, b),
            (None, None) => false,
            _ => true,
        })
        .count();
    changes as f64 / (answers.len() - 1) as f64
}

/// Ranks `scored` by `strategy` (highest first; ties keep pool order; random is a seeded
/// shuffle) and returns the first `budget` ids.
pub fn select(
    scored: &[ScoredItem],
    strategy: SelectionStrategy,
    budget: usize,
    seed: u64,
) -> Vec<String> {
    // A seeded shuffle first: the random baseline's order, and for the rankings the order among
    // equal scores (small K gives many ties; breaking them by pool order would select by
    // position, the same items for every seed).
    let mut order: Vec<usize> = (0..scored.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    if strategy != SelectionStrategy::Random {
        // stable: ties keep the shuffled order
        order.sort_by(|&a, &b| {
            let (sa, sb) = (
                scored[a].uncertainty.score(strategy),
                scored[b].uncertainty.score(strategy),
            );
            sb.total_cmp(&sa)
        });
    }
    order
        .into_iter()
        .take(budget)
        .map(|i| scored[i].id.clone())
        .collect()
}

/// The text appended to a step prefix to make the student state its answer now.
const FORCE_ANSWER: &str = " So the answer is";

/// Scores every item of `pool` with the student: explanations (greedy, and K sampled when
/// `parts.samples`; batched), then the answers forced after each step prefix when `parts.steps`.
/// `on_done(n)` counts finished generations.
pub fn score_pool(
    model: &Llama,
    tok: &TextTokenizer,
    kind: TaskKind,
    pool: &[Example],
    cfg: &ProbeConfig,
    parts: ProbeParts,
    on_done: &mut dyn FnMut(usize),
) -> Result<Vec<ScoredItem>> {
    let per_item = 1 + if parts.samples { cfg.samples } else { 0 };
    let mut reqs = vec![];
    let mut prompts = vec![];
    for (i, ex) in pool.iter().enumerate() {
        let ids = prompt_ids(tok, &student_prompt(StudentTask::Cot, kind, ex, ""))?;
        for s in 0..per_item {
            let params = SamplingParams {
                max_new_tokens: cfg.max_new_tokens,
                temperature: if s == 0 { 0.0 } else { cfg.temperature },
                // the seed of sample s of item i is the same whatever the probe leaves out
                seed: cfg.seed + (i * (1 + cfg.samples) + s) as u64,
                ..Default::default()
            };
            reqs.push((ids.clone(), params));
        }
        prompts.push(ids);
    }
    let gens = generate(model, tok, &reqs, cfg.batch, on_done)?;
    // The forced answers after each step prefix of each explanation.
    let mut probes = vec![];
    let mut probe_of = vec![]; // (item, explanation) per probe, in order
                               // the prefix continues the assistant's turn: no second BOS in mid-sequence
    let bos = tok.bos_token.as_deref().and_then(|b| tok.token_to_id(b));
    for i in (0..pool.len()).filter(|_| parts.steps) {
        for e in 0..per_item {
            let steps = split_steps(&gens[i * per_item + e].text, cfg.max_steps);
            for j in 1..=steps.len() {
                let prefix = format!("{}{FORCE_ANSWER}", steps[..j].join(" "));
                let mut ids = prompts[i].clone();
                let mut cont = tok.encode(&prefix).map_err(candle_core::Error::wrap)?;
                if bos.is_some() && cont.first().copied() == bos {
                    cont.remove(0);
                }
                ids.extend(cont);
                probes.push((
                    ids,
                    SamplingParams {
                        max_new_tokens: cfg.answer_tokens,
                        temperature: 0.0,
                        stop: vec!["\n".into()],
                        ..Default::default()
                    },
                ));
                probe_of.push((i, e));
            }
        }
    }
    let forced = if probes.is_empty() {
        vec![]
    } else {
        generate(model, tok, &probes, cfg.batch, on_done)?
    };
    let mut forced_of: std::collections::HashMap<(usize, usize), Vec<&mentor_model::Generation>> =
        Default::default();
    for (key, f) in probe_of.iter().zip(&forced) {
        forced_of.entry(*key).or_default().push(f);
    }
    let mut out = Vec::with_capacity(pool.len());
    for (i, ex) in pool.iter().enumerate() {
        let explanations = &gens[i * per_item..(i + 1) * per_item];
        let finals: Vec<Option<Answer>> = explanations
            .iter()
            .map(|g| parse_answer(kind, ex, &g.text))
            .collect();
        let mut inst = 0.0;
        for e in (0..per_item).filter(|_| parts.steps) {
            let mut seq: Vec<Option<Answer>> = forced_of
                .get(&(i, e))
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|f| parse_answer(kind, ex, &format!("So the answer is{}", f.text)))
                .collect();
            seq.push(finals[e].clone());
            inst += answer_instability(&seq);
        }
        let greedy = &explanations[0];
        let n = greedy.logprobs.len().max(1) as f64;
        let mean_lp = greedy.logprobs.iter().map(|&l| l as f64).sum::<f64>() / n;
        out.push(ScoredItem {
            id: ex.id.clone(),
            uncertainty: Uncertainty {
                instability: parts.steps.then(|| inst / per_item as f64),
                entropy: parts.samples.then(|| answer_entropy(&finals[1..])),
                least_confidence: Some(1.0 - mean_lp.exp()),
            },
            explanation: greedy.text.clone(),
        });
    }
    Ok(out)
}

/// One revision job per selected item: the teacher sees the student's greedy explanation as
/// numbered steps (and the gold answer when `reveal_gold`).
pub fn revision_jobs(
    prompts: &Prompts,
    kind: TaskKind,
    selected: &[(Example, String)],
    reveal_gold: bool,
    max_steps: usize,
) -> std::result::Result<Vec<Job>, String> {
    selected
        .iter()
        .map(|(ex, explanation)| {
            let mut steps = split_steps(explanation, max_steps.max(1) * 4);
            if steps.is_empty() {
                steps.push("(the student wrote nothing)".into());
            }
            let gold = reveal_gold.then_some(ex.answer.as_str());
            let (system, user) = prompts
                .revise(kind, ex, &steps, gold)
                .map_err(|e| format!("prompt template `revise`: {e}"))?;
            Ok(Job {
                example: ex.clone(),
                sample: 0,
                system,
                user,
                teacher: None,
                context: serde_json::json!({ "student_steps": steps.len() }),
            })
        })
        .collect()
}

/// A teacher's revision, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// 1-based; None when the teacher found no flawed step.
    pub first_flawed_step: Option<usize>,
    pub revised: String,
}

/// Reads "First flawed step: N|none" and the text after "Revised explanation:". Without the
/// marker there is no revision to train on.
pub fn parse_revision(text: &str) -> Option<Revision> {
    // ASCII lowercasing keeps byte offsets, so positions in `lower` index `text`
    let lower = text.to_ascii_lowercase();
    let marker = "revised explanation:";
    let at = lower.find(marker)?;
    let revised = text[at + marker.len()..].trim().to_string();
    if revised.is_empty() {
        return None;
    }
    let first_flawed_step = lower.find("first flawed step").and_then(|p| {
        let rest = &lower[p + "first flawed step".len()..];
        let rest = rest.trim_start_matches([':', ' ', '*']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    Some(Revision {
        first_flawed_step,
        revised,
    })
}

/// Parses revisions: `{revised, first_flawed_step, answer, correct}`; ok when the revision is
/// there and ends in a readable answer.
pub fn revision_parser(kind: TaskKind) -> Parser {
    Arc::new(move |ex: &Example, text: &str| {
        let Some(r) = parse_revision(text) else {
            return (
                serde_json::json!({ "revised": null, "answer": null, "correct": false }),
                false,
            );
        };
        let answer = parse_answer(kind, ex, &r.revised);
        let correct = match (&answer, gold_answer(kind, ex)) {
            (Some(a), Some(g)) => answers_match(a, &g),
            _ => false,
        };
        let ok = answer.is_some();
        (
            serde_json::json!({
                "revised": r.revised,
                "first_flawed_step": r.first_flawed_step,
                "answer": answer,
                "correct": correct,
            }),
            ok,
        )
    })
}

/// Revisions as chains of thought to train on: the annotation's text becomes the revised
/// explanation; unparsed revisions are left out.
pub fn revision_cots(revisions: &[Annotation]) -> Vec<Annotation> {
    revisions
        .iter()
        .filter(|a| a.parse_ok)
        .filter_map(|a| {
            let revised = a.parsed.as_ref()?["revised"].as_str()?.to_string();
            Some(Annotation {
                text: revised,
                ..a.clone()
            })
        })
        .collect()
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

    #[test]
    fn steps_are_lines_or_sentences_without_the_answer_sentence() {
        let s = split_steps("First add 3.5 and 2. Then double it! The answer is 11.", 10);
        assert_eq!(s, ["First add 3.5 and 2.", "Then double it!"]);
        let s = split_steps("Step one.\nStep two\n\nStep three.\nThe answer is 4.", 2);
        assert_eq!(s, ["Step one.", "Step two"]);
        assert!(split_steps("", 5).is_empty());
    }

    #[test]
    fn entropy_and_instability_measure_disagreement() {
        assert_eq!(answer_entropy(&[num(1.0), num(1.0), num(1.0)]), 0.0);
        let all_differ = answer_entropy(&[num(1.0), num(2.0), None]);
        assert!((all_differ - 1.0).abs() < 1e-12);
        let half = answer_entropy(&[num(1.0), num(1.0), num(2.0), num(2.0)]);
        assert!((half - 2f64.ln() / 4f64.ln()).abs() < 1e-12);
        assert_eq!(answer_instability(&[num(1.0), num(1.0), num(1.0)]), 0.0);
        assert_eq!(answer_instability(&[num(1.0), num(2.0), num(1.0)]), 1.0);
        assert_eq!(answer_instability(&[None, num(2.0), num(2.0)]), 0.5);
        assert_eq!(answer_instability(&[num(3.0)]), 0.0);
    }

    fn item(id: &str, inst: f64, ent: f64, lc: f64) -> ScoredItem {
        ScoredItem {
            id: id.into(),
            uncertainty: Uncertainty {
                instability: Some(inst),
                entropy: Some(ent),
                least_confidence: Some(lc),
            },
            explanation: String::new(),
        }
    }

    #[test]
    fn selection_takes_the_budget_from_the_top_of_each_ranking() {
        let pool = [
            item("a", 0.0, 0.9, 0.1),
            item("b", 1.0, 0.5, 0.2),
            item("c", 0.2, 0.2, 0.9),
            item("d", 0.5, 0.5, 0.3),
        ];
        assert_eq!(select(&pool, SelectionStrategy::Elad, 2, 0), ["b", "d"]);
        // b and d tie on entropy (0.5): the seed, not their position, breaks the tie
        let second: std::collections::BTreeSet<String> = (0..16)
            .map(|seed| {
                let s = select(&pool, SelectionStrategy::AnswerEntropy, 2, seed);
                assert_eq!(s[0], "a");
                s[1].clone()
            })
            .collect();
        assert_eq!(second, ["b".to_string(), "d".to_string()].into());
        assert_eq!(
            select(&pool, SelectionStrategy::AnswerEntropy, 2, 5),
            select(&pool, SelectionStrategy::AnswerEntropy, 2, 5)
        );
        assert_eq!(
            select(&pool, SelectionStrategy::LeastConfidence, 1, 0),
            ["c"]
        );
        let r1 = select(&pool, SelectionStrategy::Random, 3, 7);
        assert_eq!(r1.len(), 3);
        assert_eq!(r1, select(&pool, SelectionStrategy::Random, 3, 7), "seeded");
        assert_eq!(select(&pool, SelectionStrategy::Elad, 10, 0).len(), 4);
    }

    #[test]
    fn revisions_parse_the_flawed_step_and_the_new_explanation() {
        let r = parse_revision(
            "Step 1 is fine. Step 2 adds wrongly.\nFirst flawed step: 2\nRevised explanation:\nWe have 3 apples.\nAdding 5 gives 8.\nThe answer is 8.",
        )
        .unwrap();
        assert_eq!(r.first_flawed_step, Some(2));
        assert!(r.revised.starts_with("We have 3 apples.") && r.revised.ends_with("is 8."));
        let r = parse_revision(
            "**First flawed step:** none\nRevised explanation: All good. The answer is 8.",
        )
        .unwrap();
        assert_eq!(r.first_flawed_step, None);
        assert!(parse_revision("I think the answer is 8.").is_none());
        let ex = Example {
            id: "q".into(),
            question: "What is 3 + 5?".into(),
            answer: "8".into(),
            choices: vec![],
            explanation: None,
        };
        let p = revision_parser(TaskKind::Numeric);
        let (v, ok) = p(
            &ex,
            "First flawed step: 1\nRevised explanation: 3 + 5 = 8. The answer is 8.",
        );
        assert!(
            ok && v["correct"] == true && v["first_flawed_step"] == 1,
            "{v}"
        );
        let (v, ok) = p(&ex, "no idea");
        assert!(!ok && v["revised"].is_null());
    }
}
