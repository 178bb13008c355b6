//! User and model text through the student's chat template and tokenizer, over arbitrary input:
//! the template never evaluates what a message says (`{{ 7*7 }}` stays text), the rendered
//! prompt holds each message verbatim, and the byte-level tokenizer gives back exactly the text
//! it was given. `scripts/fuzz.sh` runs this at 10^6 cases.

use mentor_model::{ChatMessage, TextTokenizer};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "\\PC{1,6}",
        Just("{{ 7*7 }}".to_string()),
        Just("{% for x in messages %}".to_string()),
        Just("{# note #}".to_string()),
        Just("<|im_start|>".to_string()),
        Just("<|im_end|>".to_string()),
        Just("\n".to_string()),
        Just("\u{0}".to_string()),
    ];
    prop::collection::vec(piece, 0..20).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn messages_are_rendered_verbatim_never_evaluated(user in text(), answer in text()) {
        let tok = TextTokenizer::byte_level();
        let msgs = vec![ChatMessage::new("user", user.clone()), ChatMessage::new("assistant", answer.clone())];
        let out = tok.apply_chat_template(&msgs, false).unwrap();
        prop_assert!(out.contains(&user));
        prop_assert!(out.contains(&answer));
        if !user.contains("{{") && !answer.contains("{{") {
            prop_assert!(!out.contains("49") || user.contains("49") || answer.contains("49"));
        }
        let with_prompt = tok.apply_chat_template(&msgs[..1], true).unwrap();
        prop_assert!(with_prompt.ends_with("<|im_start|>assistant\n"));
    }

    /// Any text without a special token's string (see
    /// `special_token_strings_in_text_are_special_tokens`).
    #[test]
    fn byte_level_round_trips_any_text(t in "\\PC{0,80}|[\\x00-\\x7f]{0,80}") {
        prop_assume!(!t.contains("<|im_start|>") && !t.contains("<|im_end|>") && !t.contains("<|endoftext|>"));
        let tok = TextTokenizer::byte_level();
        let ids = tok.encode(&t).unwrap();
        prop_assert_eq!(tok.decode(&ids).unwrap(), t);
    }
}

#[test]
fn a_template_in_a_message_stays_text() {
    let tok = TextTokenizer::byte_level();
    let out = tok
        .apply_chat_template(
            &[ChatMessage::new(
                "user",
                "{{ 7*7 }} {% if true %}x{% endif %}",
            )],
            true,
        )
        .unwrap();
    assert!(out.contains("{{ 7*7 }} {% if true %}x{% endif %}"), "{out}");
    assert!(!out.contains("49"), "{out}");
}

/// Found by the round-trip property: a special token's string inside text ("<|im_start|>") is
/// encoded as that special token, and decoding leaves specials out — as transformers does with
/// `apply_chat_template(tokenize=True)`, since the rendered prompt is one string in which the
/// template's own markers must be specials. A question that contains such a string therefore
/// changes the prompt's structure; kept as a known limitation, pinned here.
#[test]
fn special_token_strings_in_text_are_special_tokens() {
    let tok = TextTokenizer::byte_level();
    let ids = tok.encode("a<|im_start|>b").unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], 257);
    assert_eq!(tok.decode(&ids).unwrap(), "ab");
}
