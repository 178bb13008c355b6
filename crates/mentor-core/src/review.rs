//! Peer reviews (MAPD / FAIR): a teacher scores another teacher's rationale 1–5, the score
//! written in brackets at the end of its reply.

use regex::Regex;
use std::sync::LazyLock;

static BRACKET: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[([^\[\]]*)\]").unwrap());
static LEADING_NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*\d+(?:\.\d+)?)?\s*$").unwrap());

static LAST_INTEGER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").unwrap());

/// The score of a review: the number in the *last* bracketed group ("[4]", "[4/5]", "[ 3 ]");
/// with no bracket at all, the last integer of the reply, as FAIR's code falls back to ("I give
/// it a 4."). None when the bracketed group is not a number, or the number is outside 1–5 (the
/// caller keeps the raw text and counts it invalid).
pub fn parse_review_score(text: &str) -> Option<f64> {
    let n: f64 = match BRACKET.captures_iter(text).last() {
        Some(last) => LEADING_NUMBER.captures(&last[1])?[1].parse().ok()?,
        None => LAST_INTEGER.find_iter(text).last()?.as_str().parse().ok()?,
    };
    (1.0..=5.0).contains(&n).then_some(n)
}

/// Whether a rationale is accepted: the mean of its valid scores is above `threshold`; a
/// rationale with no valid score is not accepted.
pub fn accepted(scores: &[Option<f64>], threshold: f64) -> bool {
    let valid: Vec<f64> = scores.iter().flatten().copied().collect();
    !valid.is_empty() && valid.iter().sum::<f64>() / valid.len() as f64 > threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_bracket_wins_and_range_is_checked() {
        assert_eq!(parse_review_score("Sound reasoning. [4]"), Some(4.0));
        assert_eq!(parse_review_score("Score: [4/5]"), Some(4.0));
        assert_eq!(
            parse_review_score("Step [1] is fine, step [2] too. Overall [ 5 ]"),
            Some(5.0)
        );
        assert_eq!(parse_review_score("[83]"), None);
        assert_eq!(parse_review_score("[0]"), None);
        // no bracket: the last integer, as FAIR falls back to
        assert_eq!(parse_review_score("I give it a 4."), Some(4.0));
        assert_eq!(parse_review_score("Steps 1 and 2 are fine: 3"), Some(3.0));
        assert_eq!(parse_review_score("Out of 10, a 7"), None);
        assert_eq!(parse_review_score("no score at all"), None);
        assert_eq!(parse_review_score("[good]"), None);
    }

    #[test]
    fn acceptance_is_the_mean_of_valid_scores_above_the_threshold() {
        assert!(accepted(&[Some(5.0), Some(2.0)], 3.0));
        assert!(!accepted(&[Some(4.0), Some(2.0)], 3.0));
        assert!(accepted(&[Some(4.0), None], 3.0));
        assert!(!accepted(&[None, None], 3.0));
        // a mean exactly at the threshold is not above it
        assert!(!accepted(&[Some(3.0), Some(3.0)], 3.0));
        assert!(!accepted(&[Some(4.0), Some(2.0)], 3.0));
        assert!(accepted(&[Some(4.0), Some(3.0)], 3.0));
        // another threshold moves the line
        assert!(!accepted(&[Some(4.0), Some(4.0)], 4.0));
        assert!(accepted(&[Some(5.0), Some(4.0)], 4.0));
        assert!(accepted(&[Some(3.0)], 2.5));
    }
}
