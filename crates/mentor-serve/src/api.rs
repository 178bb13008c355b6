//! The OpenAI wire format: request bodies as clients send them, checked into a prompt and
//! sampling parameters, and the response and stream-chunk bodies they expect back.

use mentor_model::{ChatMessage, FinishReason, SamplingParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// An error as OpenAI returns it: an HTTP status and `{"error": {message, type, param, code}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

/// `stop`: one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Message content: a string, or a list of parts of which only text parts are understood.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The fields both endpoints share. Unknown fields are ignored, as OpenAI-compatible servers do.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    pub model: Option<String>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `prompt`: one string or a list holding one string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// Parses a body, turning serde's message into an OpenAI-style 400.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid: {e}"), None))
}

impl ChatRequest {
    pub fn chat_messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                "`messages` must hold at least one message",
                Some("messages"),
            ));
        }
        self.messages
            .iter()
            .map(|m| {
                if !["system", "developer", "user", "assistant", "tool"].contains(&m.role.as_str())
                {
                    return Err(ApiError::invalid(
                        format!("unknown message role `{}`", m.role),
                        Some("messages"),
                    ));
                }
                let text = match &m.content {
                    None => String::new(),
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => parts
                        .iter()
                        .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                            (Some("text"), Some(t)) => Ok(t),
                            _ => Err(ApiError::invalid(
                                "only text content parts are supported",
                                Some("messages"),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join(""),
                };
                // the template sees `developer` as the `system` it was written for
                let role = if m.role == "developer" {
                    "system"
                } else {
                    &m.role
                };
                Ok(ChatMessage::new(role, text))
            })
            .collect()
    }
}

impl CompletionRequest {
    pub fn prompt_text(&self) -> Result<&str, ApiError> {
        match &self.prompt {
            Prompt::One(s) => Ok(s),
            Prompt::Many(v) if v.len() == 1 => Ok(&v[0]),
            Prompt::Many(_) => Err(ApiError::invalid(
                "`prompt` must be one string (send one request per prompt; they are batched)",
                Some("prompt"),
            )),
        }
    }
}

/// Limits a request is checked against.
pub struct Limits<'a> {
    pub model_id: &'a str,
    pub max_positions: usize,
    /// `max_tokens` when the request gives none (capped by the room left in the context).
    pub default_max_tokens: usize,
}

impl Sampling {
    /// Checks the request against the served model and turns it into sampling parameters for a
    /// prompt of `prompt_tokens` tokens.
    pub fn params(
        &self,
        prompt_tokens: usize,
        limits: &Limits,
    ) -> Result<SamplingParams, ApiError> {
        if let Some(m) = &self.model {
            if m != limits.model_id {
                return Err(ApiError {
                    status: 404,
                    message: format!(
                        "The model `{m}` does not exist; this server serves `{}`",
                        limits.model_id
                    ),
                    kind: "invalid_request_error",
                    param: Some("model"),
                    code: Some("model_not_found"),
                });
            }
        }
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::invalid(
                    format!("n = {n}: this server returns one choice per request (n = 1)"),
                    Some("n"),
                ));
            }
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                format!("temperature must be between 0 and 2, got {temperature}"),
                Some("temperature"),
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid(
                format!("top_p must be in (0, 1], got {top_p}"),
                Some("top_p"),
            ));
        }
        let stop = match &self.stop {
            None => vec![],
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 || stop.iter().any(|s| s.is_empty()) {
            return Err(ApiError::invalid(
                "`stop` takes up to 4 non-empty strings",
                Some("stop"),
            ));
        }
        // a decoder starts from at least one token; an empty prompt would be padded to one the
        // room check below did not count (the serve soak found it as a 500)
        if prompt_tokens == 0 {
            return Err(ApiError::invalid(
                "the prompt is empty: it encodes to no tokens",
                Some("prompt"),
            ));
        }
        let room = limits.max_positions.saturating_sub(prompt_tokens);
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            Some(m) if m < 1 => {
                return Err(ApiError::invalid(
                    format!("max_tokens must be at least 1, got {m}"),
                    Some("max_tokens"),
                ))
            }
            Some(m) => m as usize,
            None => limits.default_max_tokens.min(room),
        };
        if room == 0 || prompt_tokens + max_tokens > limits.max_positions {
            return Err(ApiError::invalid(
                format!(
                    "This model's maximum context length is {} tokens. However, you requested \
                     {} tokens ({prompt_tokens} in the prompt, {max_tokens} for the completion).",
                    limits.max_positions,
                    prompt_tokens + max_tokens
                ),
                Some("max_tokens"),
            )
            .with_code("context_length_exceeded"));
        }
        Ok(SamplingParams {
            max_new_tokens: max_tokens,
            temperature,
            top_p,
            // no seed: a fresh one, so repeated sampled requests differ as users expect
            seed: self.seed.unwrap_or_else(rand::random),
            stop,
            ignore_eos: false,
        })
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

pub fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

pub fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits<'static> {
        Limits {
            model_id: "student",
            max_positions: 100,
            default_max_tokens: 64,
        }
    }

    #[test]
    fn checks_sampling_values_and_the_context() {
        let ok: ChatRequest = parse(br#"{"model": "student", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "stop": "\n", "seed": 3}"#).unwrap();
        let p = ok.sampling.params(10, &limits()).unwrap();
        assert_eq!((p.temperature, p.seed, p.max_new_tokens), (0.0, 3, 64));
        assert_eq!(p.stop, vec!["\n".to_string()]);
        // the default max_tokens shrinks to the room left
        assert_eq!(
            ok.sampling.params(90, &limits()).unwrap().max_new_tokens,
            10
        );
        let cases = [
            (r#"{"model": "gpt-4"}"#, 404, Some("model_not_found")),
            (r#"{"temperature": 2.5}"#, 400, None),
            (r#"{"top_p": 0}"#, 400, None),
            (r#"{"n": 3}"#, 400, None),
            (r#"{"max_tokens": 0}"#, 400, None),
            (
                r#"{"max_tokens": 95}"#,
                400,
                Some("context_length_exceeded"),
            ),
            (r#"{"stop": ["a","b","c","d","e"]}"#, 400, None),
        ];
        for (body, status, code) in cases {
            let s: Sampling = parse(body.as_bytes()).unwrap();
            let e = s.params(10, &limits()).unwrap_err();
            assert_eq!((e.status, e.code), (status, code), "{body}");
            assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        }
        // an empty prompt, even with room for every completion token, is a 400
        let e = ok.sampling.params(0, &limits()).unwrap_err();
        assert_eq!((e.status, e.param), (400, Some("prompt")));
    }

    #[test]
    fn reads_content_parts_and_rejects_bad_messages() {
        let r: ChatRequest = parse(br#"{"messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": null}]}"#).unwrap();
        let m = r.chat_messages().unwrap();
        assert_eq!(m[0], ChatMessage::new("system", "ab"));
        assert_eq!(m[1], ChatMessage::new("assistant", ""));
        for bad in [
            r#"{"messages": []}"#,
            r#"{"messages": [{"role": "wizard", "content": "x"}]}"#,
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}"#,
        ] {
            let r: ChatRequest = parse(bad.as_bytes()).unwrap();
            assert_eq!(r.chat_messages().unwrap_err().status, 400, "{bad}");
        }
        let e = parse::<ChatRequest>(b"{\"messages\": [").unwrap_err();
        assert!(e.message.contains("not valid"), "{}", e.message);
    }
}
