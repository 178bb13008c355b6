//! Scoring predictions against gold labels and summarising accuracy.

use crate::example::Example;
use crate::extract::{answers_match, extract, gold_answer, Answer, NumericRule};
use crate::task::TaskKind;
use serde::{Deserialize, Serialize};

/// The verdict on one prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub correct: bool,
    /// False when no answer could be read from the prediction (counted, never dropped).
    pub parsed: bool,
    pub predicted: Option<Answer>,
    pub gold: Option<Answer>,
}

/// Scores one raw model output against an example.
pub fn score_prediction(
    kind: TaskKind,
    example: &Example,
    output: &str,
    rule: NumericRule,
) -> Score {
    let gold = gold_answer(kind, example);
    let predicted = extract(kind, output, example, rule).answer;
    let correct = match (&predicted, &gold) {
        (Some(p), Some(g)) => answers_match(p, g),
        _ => false,
    };
    Score {
        correct,
        parsed: predicted.is_some(),
        predicted,
        gold,
    }
}

/// Accuracy over a set of predictions, with the counts a reader needs to trust it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Predictions from which no answer could be read (they count as wrong).
    pub unparseable: usize,
    /// Gold labels that could not be parsed (a dataset problem; those rows count as wrong).
    pub bad_gold: usize,
    /// Half-width of the 95% Wilson interval around `accuracy`.
    pub ci95: f64,
}

impl ScoreSummary {
    pub fn from_scores<'a>(scores: impl IntoIterator<Item = &'a Score>) -> Self {
        let mut s = ScoreSummary::default();
        for sc in scores {
            s.n += 1;
            s.correct += sc.correct as usize;
            s.unparseable += (!sc.parsed) as usize;
            s.bad_gold += sc.gold.is_none() as usize;
        }
        if s.n > 0 {
            s.accuracy = s.correct as f64 / s.n as f64;
            s.ci95 = wilson_half_width(s.correct, s.n);
        }
        s
    }
}

/// Half-width of the 95% Wilson score interval: honest error bars for small eval sets.
pub fn wilson_half_width(correct: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let z = 1.959_964f64;
    let n = n as f64;
    let p = correct as f64 / n;
    let denom = 1.0 + z * z / n;
    (z / denom) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(answer: &str) -> Example {
        Example {
            id: "1".into(),
            question: "q".into(),
            answer: answer.into(),
            choices: vec![],
            explanation: None,
        }
    }

    #[test]
    fn summary_counts_unparseable_as_wrong() {
        let e = ex("42");
        let scores = vec![
            score_prediction(TaskKind::Numeric, &e, "#### 42", NumericRule::Auto),
            score_prediction(TaskKind::Numeric, &e, "no idea", NumericRule::Auto),
            score_prediction(TaskKind::Numeric, &e, "#### 41", NumericRule::Auto),
        ];
        let s = ScoreSummary::from_scores(&scores);
        assert_eq!((s.n, s.correct, s.unparseable, s.bad_gold), (3, 1, 1, 0));
        assert!((s.accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!(s.ci95 > 0.2 && s.ci95 < 0.5, "{}", s.ci95);
    }

    #[test]
    fn wilson_interval_is_sane() {
        assert_eq!(wilson_half_width(0, 0), 0.0);
        let w = wilson_half_width(50, 100);
        assert!((w - 0.0962).abs() < 0.002, "{w}");
        assert!(wilson_half_width(500, 1000) < w);
    }
}
