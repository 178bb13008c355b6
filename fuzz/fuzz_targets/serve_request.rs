//! The serve API's request decoding over arbitrary bodies: no panic; a refusal is a 4xx.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mentor_serve::api::{parse, ChatRequest, CompletionRequest, Limits};

const LIMITS: Limits = Limits { model_id: "student", max_positions: 128, default_max_tokens: 16 };

fuzz_target!(|data: &[u8]| {
    let four = |s: u16| assert!((400..500).contains(&s), "{s}");
    match parse::<ChatRequest>(data) {
        Ok(r) => {
            if let Err(e) = r.chat_messages() {
                four(e.status);
            }
            if let Err(e) = r.sampling.params(10, &LIMITS) {
                four(e.status);
            }
        }
        Err(e) => four(e.status),
    }
    match parse::<CompletionRequest>(data) {
        Ok(r) => {
            if let Err(e) = r.sampling.params(10, &LIMITS) {
                four(e.status);
            }
        }
        Err(e) => four(e.status),
    }
});
