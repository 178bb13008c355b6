//! What is sent to a teacher, and the hash that makes it a cache key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role's name in chat APIs and templates.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(s: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: s.into(),
        }
    }
    pub fn user(s: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: s.into(),
        }
    }
}

/// The dataset item a request is about. Replay teachers answer from it; it is not part of the
/// cache key (the prompt already says what is asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    pub dataset: String,
    pub example_id: String,
    /// What is asked (`rationale`, `feedback`, `peer-review`, …).
    pub purpose: String,
}

/// A fully rendered chat request. Everything that changes the answer is in the cache key,
/// including `sample_index` (the i-th of k samples of the same prompt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub sample_index: u32,
    #[serde(skip)]
    pub item: Option<ItemRef>,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            temperature: None,
            top_p: None,
            max_tokens: None,
            stop: vec![],
            seed: None,
            sample_index: 0,
            item: None,
        }
    }

    /// Cache key: sha256 of the canonical JSON of (model, request, extra body). Keys and URLs are
    /// not part of it: the same question to the same model is the same call, wherever it goes.
    pub fn hash(&self, model: &str, extra: &serde_json::Value) -> String {
        let canonical = serde_json::json!({ "model": model, "request": self, "extra": extra });
        // serde_json's Map is a BTreeMap here (no `preserve_order`), so keys are sorted.
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// A rough token count for budgeting before the real count is known (4 chars a token).
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .messages
            .iter()
            .map(|m| m.content.chars().count() + 4)
            .sum();
        (chars as u64).div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_what_changes_the_answer_and_nothing_else() {
        let a = ChatRequest {
            temperature: Some(0.7),
            ..ChatRequest::new(vec![Message::user("2+2?")])
        };
        let h = a.hash("m", &serde_json::Value::Null);
        assert_eq!(h, a.clone().hash("m", &serde_json::Value::Null));
        let mut b = a.clone();
        b.sample_index = 1;
        assert_ne!(h, b.hash("m", &serde_json::Value::Null), "sample index");
        assert_ne!(h, a.hash("m2", &serde_json::Value::Null), "model");
        assert_ne!(
            h,
            a.hash("m", &serde_json::json!({"top_k": 5})),
            "extra body"
        );
        let mut c = a.clone();
        c.item = Some(ItemRef {
            dataset: "d".into(),
            example_id: "1".into(),
            purpose: "rationale".into(),
        });
        assert_eq!(
            h,
            c.hash("m", &serde_json::Value::Null),
            "item ref is bookkeeping, not content"
        );
    }
}
