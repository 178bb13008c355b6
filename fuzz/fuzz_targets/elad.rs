//! ELAD's step splitter and revision parser over arbitrary teacher text: no panic; at most
//! `max` steps, none empty.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mentor_methods::elad::{parse_revision, split_steps};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let steps = split_steps(&text, 8);
    assert!(steps.len() <= 8 && steps.iter().all(|s| !s.trim().is_empty()), "{steps:?}");
    let _ = parse_revision(&text);
});
