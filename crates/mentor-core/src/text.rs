//! Cleaning raw completions: cut at an invented follow-on example, split rationale from answer.

use regex::Regex;
use std::sync::LazyLock;

/// Markers at which few-shot completions start inventing the next example. PaLM's recorded CoTs
/// run on into "\n\nQ: …" (SVAMP, CQA) and "\n\nPremise: …" (ANLI).
pub const FOLLOW_ON_MARKERS: &[&str] = &[
    "\n\nQ:",
    "\nQ:",
    "\n\nQuestion:",
    "\nQuestion:",
    "\n\nPremise:",
    "\nPremise:",
];

/// Cuts `text` at the earliest follow-on marker (never at position 0) and trims the end.
pub fn truncate_at_follow_on<'a>(text: &'a str, markers: &[&str]) -> &'a str {
    let cut = markers
        .iter()
        .filter_map(|m| text.find(m))
        .filter(|&i| i > 0)
        .min()
        .unwrap_or(text.len());
    text[..cut].trim_end()
}

static ANSWER_IS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?:the\s+)?(?:final\s+)?answer\s+is\s*:?").unwrap());
static TRAILING_CONNECTIVE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)[\s,]*\b(?:so|therefore|thus|hence)\s*,?\s*$").unwrap());

/// A completion split into its reasoning and the answer sentence that ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RationaleSplit<'a> {
    /// Reasoning before the last "the answer is", without a dangling "So".
    pub rationale: &'a str,
    /// What follows the last "the answer is" (None when the phrase is absent).
    pub answer_span: Option<&'a str>,
}

/// Splits at the *last* "the answer is": a rationale may quote the phrase earlier.
pub fn split_rationale(text: &str) -> RationaleSplit<'_> {
    match ANSWER_IS.find_iter(text).last() {
        Some(m) => {
            let before = text[..m.start()].trim_end();
            let before = match TRAILING_CONNECTIVE.find(before) {
                Some(c) => before[..c.start()].trim_end(),
                None => before,
            };
            RationaleSplit {
                rationale: before,
                answer_span: Some(text[m.end()..].trim()),
            }
        }
        None => RationaleSplit {
            rationale: text.trim(),
            answer_span: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PALM_SVAMP: &str = "Luke scored 84 points after 2 rounds. So he scored 84 points in 2 rounds. 84 / 2 = 42. The answer is (84 / 2).\n\nQ: There are 120 students in the school. 1/3 of them are boys. How many students are boys?\nA: There are 120 students. The answer is (120 /";

    #[test]
    fn cuts_invented_follow_on_question() {
        let cut = truncate_at_follow_on(PALM_SVAMP, FOLLOW_ON_MARKERS);
        assert!(cut.ends_with("The answer is (84 / 2)."), "{cut}");
    }

    #[test]
    fn cuts_invented_premise() {
        let t = "So the answer is contradiction.\n\nPremise: The 2016–17 season is…\nHypothesis: …";
        assert_eq!(
            truncate_at_follow_on(t, FOLLOW_ON_MARKERS),
            "So the answer is contradiction."
        );
    }

    #[test]
    fn never_cuts_at_start_and_leaves_clean_text_alone() {
        assert_eq!(
            truncate_at_follow_on("Q: what?", FOLLOW_ON_MARKERS),
            "Q: what?"
        );
        assert_eq!(truncate_at_follow_on("plain  ", FOLLOW_ON_MARKERS), "plain");
    }

    #[test]
    fn splits_at_last_answer_phrase_and_drops_dangling_so() {
        let s = split_rationale("Only math problem fits. So the answer is (d) math problem.");
        assert_eq!(s.rationale, "Only math problem fits.");
        assert_eq!(s.answer_span, Some("(d) math problem."));
        let s = split_rationale("I said the answer is 3 before, but 4 + 1 = 5. The answer is 5.");
        assert_eq!(s.rationale, "I said the answer is 3 before, but 4 + 1 = 5.");
        assert_eq!(s.answer_span, Some("5."));
        let s = split_rationale("Therefore, the final answer is: 12");
        assert_eq!(s.rationale, "");
        assert_eq!(s.answer_span, Some("12"));
    }

    #[test]
    fn no_answer_phrase_keeps_everything_as_rationale() {
        let s = split_rationale("  just thinking  ");
        assert_eq!(
            s,
            RationaleSplit {
                rationale: "just thinking",
                answer_span: None
            }
        );
    }
}
