//! Chat-template rendering of arbitrary user text: no panic, and the text is rendered verbatim
//! (a `{{ … }}` in a message is text, never evaluated).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mentor_model::{ChatMessage, TextTokenizer};

static TOK: std::sync::LazyLock<TextTokenizer> = std::sync::LazyLock::new(TextTokenizer::byte_level);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let tok = &*TOK;
    let msgs = [ChatMessage { role: "user".into(), content: text.clone() }];
    let out = tok.apply_chat_template(&msgs, true).unwrap();
    assert!(out.contains(&text), "{text:?} not verbatim in {out:?}");
});
