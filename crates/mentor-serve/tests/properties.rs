//! The serve API's request decoding over arbitrary bodies — bytes, broken JSON, JSON of every
//! shape, requests with extreme numbers — never panics: a request is accepted, or refused with
//! an OpenAI-style 4xx (never a 5xx) naming what is wrong. `scripts/fuzz.sh` runs this at 10^6
//! cases.

use mentor_serve::api::{parse, ChatRequest, CompletionRequest, Limits};
use proptest::prelude::*;
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("messages".to_string()),
                    Just("prompt".to_string()),
                    Just("role".to_string()),
                    Just("content".to_string()),
                    Just("max_tokens".to_string()),
                    Just("temperature".to_string()),
                    Just("top_p".to_string()),
                    Just("stop".to_string()),
                    Just("n".to_string()),
                    Just("model".to_string()),
                    Just("stream".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const LIMITS: Limits = Limits {
    model_id: "student",
    max_positions: 128,
    default_max_tokens: 16,
};

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(r) = parse::<ChatRequest>(body) {
        if let Err(e) = r.chat_messages() {
            prop_assert!((400..500).contains(&e.status), "{}", e.status);
        }
        if let Err(e) = r.sampling.params(10, &LIMITS) {
            prop_assert!((400..500).contains(&e.status), "{}", e.status);
        }
    } else if let Err(e) = parse::<ChatRequest>(body) {
        prop_assert!((400..500).contains(&e.status), "{}", e.status);
    }
    if let Ok(r) = parse::<CompletionRequest>(body) {
        if let Err(e) = r.prompt_text() {
            prop_assert!((400..500).contains(&e.status), "{}", e.status);
        }
        if let Err(e) = r.sampling.params(200, &LIMITS) {
            prop_assert!((400..500).contains(&e.status), "{}", e.status);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_json_body_is_accepted_or_refused_with_a_4xx(v in json_value()) {
        check(v.to_string().as_bytes())?;
    }

    #[test]
    fn any_bytes_are_refused_with_a_4xx(b in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&b)?;
    }

    #[test]
    fn requests_of_the_right_shape_with_any_numbers(max_tokens in any::<i64>(), t in any::<f64>(), p in any::<f64>(), n in any::<i64>(), content in "\\PC{0,40}") {
        let body = json!({
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens, "temperature": if t.is_finite() { json!(t) } else { Value::Null },
            "top_p": if p.is_finite() { json!(p) } else { Value::Null }, "n": n,
        });
        check(body.to_string().as_bytes())?;
    }
}
