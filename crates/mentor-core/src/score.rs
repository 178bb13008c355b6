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
    /// The 95% Wilson score interval of `accuracy`, `[lo, hi]`. It is not centred on the
    /// accuracy (7/40 = 17.5% has [8.7%, 32.0%]), so it is never printed as ± a half-width.
    pub ci95: [f64; 2],
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
            s.ci95 = wilson_interval(s.correct, s.n);
        }
        s
    }
}

/// The 95% Wilson score interval `[lo, hi]` of `correct / n`: honest error bars for small eval
/// sets. Its centre is pulled towards ½, so it is not accuracy ± a half-width. `[0, 1]` for n = 0.
pub fn wilson_interval(correct: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let z = 1.959_963_984_540_054f64;
    let n = n as f64;
    let p = correct as f64 / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = (z / denom) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// `[lo, hi]` as percentages: `[8.7, 32.0]`.
pub fn format_interval(ci: [f64; 2]) -> String {
    format!("[{:.1}, {:.1}]", 100.0 * ci[0], 100.0 * ci[1])
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
        // Wilson 95% for 1/3: [0.0615, 0.7923]
        assert!((s.ci95[0] - 0.061_5).abs() < 5e-4, "{:?}", s.ci95);
        assert!((s.ci95[1] - 0.792_3).abs() < 5e-4, "{:?}", s.ci95);
    }

    #[test]
    fn wilson_interval_matches_hand_worked_values() {
        // statsmodels proportion_confint(7, 40, method="wilson") = (0.08745, 0.31950): the interval
        // is not 17.5 ± 11.6 (5.9–29.1), which printing a half-width used to suggest.
        let [lo, hi] = wilson_interval(7, 40);
        assert!(
            (lo - 0.087_4).abs() < 5e-4 && (hi - 0.319_6).abs() < 5e-4,
            "{lo} {hi}"
        );
        assert_eq!(format_interval([lo, hi]), "[8.7, 31.9]");
        let [lo, hi] = wilson_interval(50, 100);
        assert!(
            (lo - 0.403_8).abs() < 5e-4 && (hi - 0.596_2).abs() < 5e-4,
            "{lo} {hi}"
        );
        assert_eq!(wilson_interval(0, 0), [0.0, 1.0]);
        let [lo, hi] = wilson_interval(0, 10);
        assert!(lo == 0.0 && (hi - 0.277_5).abs() < 5e-4, "{hi}");
        let [lo, hi] = wilson_interval(10, 10);
        assert!(
            (hi - 1.0).abs() < 1e-12 && (lo - 0.722_5).abs() < 5e-4,
            "{lo}"
        );
    }
}
