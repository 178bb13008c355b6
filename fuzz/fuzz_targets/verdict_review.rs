//! Self-evaluation verdicts and peer-review scores over arbitrary text: no panic; a score is
//! within 1–5; a verdict's canonical sentence reads back as that verdict.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mentor_core::review::parse_review_score;
use mentor_core::verdict::{normalise_self_eval, parse_verdict};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(v) = parse_verdict(&text) {
        assert_eq!(parse_verdict(&normalise_self_eval(&text, v)), Some(v));
    }
    if let Some(s) = parse_review_score(&text) {
        assert!((1.0..=5.0).contains(&s), "{text:?}: {s}");
    }
});
