//! The rationale splitter and the follow-on cutter over arbitrary text: no panic; the cut text
//! is a prefix of the input; the parts of a split come from the text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mentor_core::text::{split_rationale, truncate_at_follow_on};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let cut = truncate_at_follow_on(&text, &["\n\nQ:", "Premise:", "\nQuestion:"]);
    assert!(text.starts_with(cut));
    let _ = split_rationale(&text);
});
