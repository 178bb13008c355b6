//! Self-evaluation verdicts (Mind's Mirror): a critique of a chain of thought that ends in
//! "Evaluation result: the given answer is correct / wrong / uncertain".

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Correct,
    Wrong,
    Uncertain,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Wrong => "wrong",
            Verdict::Uncertain => "uncertain",
        }
    }

    /// The vote weight Tree-of-Thoughts gives a value judgement (`sure` 20, `likely` 1,
    /// `impossible` 0.001), as Mind's Mirror's teacher prompts use them.
    pub fn vote_weight(self) -> f64 {
        match self {
            Verdict::Correct => 20.0,
            Verdict::Uncertain => 1.0,
            Verdict::Wrong => 0.001,
        }
    }

    /// The sentence a self-evaluation ends with.
    pub fn sentence(self) -> String {
        format!("Evaluation result: the given answer is {}.", self.as_str())
    }
}

// "the given answer is correct", "answer is incorrect", "Evaluation result: wrong", …
static VERDICT_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:evaluation result|answer is|solution is|verdict)\W{0,3}(?:\w+\W+){0,2}?(not correct|incorrect|correct|wrong|right|uncertain|unsure|unclear)\b").unwrap()
});
static VERDICT_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(not correct|incorrect|correct|wrong|uncertain)\b").unwrap()
});

fn word_verdict(w: &str) -> Verdict {
    match w.to_ascii_lowercase().as_str() {
        "correct" | "right" => Verdict::Correct,
        "uncertain" | "unsure" | "unclear" => Verdict::Uncertain,
        _ => Verdict::Wrong,
    }
}

/// The verdict of a self-evaluation, read tolerantly: the last verdict phrase ("…answer is
/// wrong", "Evaluation result: correct"); failing that, a verdict word on the last non-empty
/// line. None when neither is there (the text is kept raw and counted by the caller).
pub fn parse_verdict(text: &str) -> Option<Verdict> {
    if let Some(c) = VERDICT_PHRASE.captures_iter(text).last() {
        return Some(word_verdict(&c[1]));
    }
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    VERDICT_WORD
        .captures_iter(last)
        .last()
        .map(|c| word_verdict(&c[1]))
}

/// A self-evaluation as a training target: the critique with its verdict written as the one
/// canonical last line (`verdict.sentence()`), whatever phrase or line the teacher ended with,
/// so the student learns a single format that [`parse_verdict`] reads without guessing. Trailing
/// verdict lines ("Evaluation result: …", "Verdict: wrong", a bare "Correct.") are replaced;
/// prose that mentions a verdict stays as written.
pub fn normalise_self_eval(text: &str, verdict: Verdict) -> String {
    let is_verdict_line = |line: &str| {
        let Some(m) = VERDICT_PHRASE
            .find_iter(line)
            .last()
            .or_else(|| VERDICT_WORD.find_iter(line).last())
        else {
            return false;
        };
        let before = line[..m.start()].trim().to_lowercase();
        let after = line[m.end()..].trim();
        before.starts_with("evaluation result")
            || before.starts_with("verdict")
            || before.split_whitespace().count() <= 3 && after.len() <= 2
    };
    let mut lines: Vec<&str> = text.trim_end().lines().collect();
    while let Some(last) = lines.last() {
        if last.trim().is_empty() || is_verdict_line(last) {
            lines.pop();
        } else {
            break;
        }
    }
    let body = lines.join("\n");
    let body = body.trim_end();
    if body.is_empty() {
        verdict.sentence()
    } else {
        format!("{body}\n\n{}", verdict.sentence())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_release_format_and_variants() {
        let t = "The reasoning divides 84 by 2, which is accurate.\n\nEvaluation result: the given answer is correct.";
        assert_eq!(parse_verdict(t), Some(Verdict::Correct));
        assert_eq!(
            parse_verdict("Step 2 is off. Evaluation result: the given answer is wrong."),
            Some(Verdict::Wrong)
        );
        assert_eq!(
            parse_verdict("I cannot tell. The given answer is uncertain"),
            Some(Verdict::Uncertain)
        );
        assert_eq!(
            parse_verdict("The answer is incorrect because 3 + 4 = 7."),
            Some(Verdict::Wrong)
        );
        // The last phrase wins: a critique may quote the claim before judging it.
        assert_eq!(
            parse_verdict("It says the answer is correct, but it is not.\nEvaluation result: the given answer is wrong."),
            Some(Verdict::Wrong)
        );
        assert_eq!(
            parse_verdict("Looks fine to me.\nCorrect."),
            Some(Verdict::Correct)
        );
        assert_eq!(parse_verdict("I like trains."), None);
        assert_eq!(parse_verdict(""), None);
    }

    #[test]
    fn sentence_round_trips() {
        for v in [Verdict::Correct, Verdict::Wrong, Verdict::Uncertain] {
            assert_eq!(parse_verdict(&v.sentence()), Some(v));
        }
    }

    #[test]
    fn normalised_targets_end_in_one_canonical_verdict_line() {
        let canonical =
            "The reasoning divides 84 by 2.\n\nEvaluation result: the given answer is correct.";
        assert_eq!(normalise_self_eval(canonical, Verdict::Correct), canonical);
        assert_eq!(
            normalise_self_eval("The steps add instead of multiplying.\nVerdict: WRONG\n\n", Verdict::Wrong),
            "The steps add instead of multiplying.\n\nEvaluation result: the given answer is wrong."
        );
        // prose that mentions a verdict stays; the canonical line follows it
        assert_eq!(
            normalise_self_eval("It checks out, so the answer is correct.", Verdict::Correct),
            "It checks out, so the answer is correct.\n\nEvaluation result: the given answer is correct."
        );
        assert_eq!(
            normalise_self_eval("Step 2 is off by one.\nIncorrect.", Verdict::Wrong),
            "Step 2 is off by one.\n\nEvaluation result: the given answer is wrong."
        );
        // the gold verdict replaces the teacher's
        let t = normalise_self_eval(canonical, Verdict::Wrong);
        assert_eq!(parse_verdict(&t), Some(Verdict::Wrong));
        assert!(t.starts_with("The reasoning divides 84 by 2."));
        assert_eq!(
            normalise_self_eval("", Verdict::Uncertain),
            "Evaluation result: the given answer is uncertain."
        );
    }
}
