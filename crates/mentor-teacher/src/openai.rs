//! OpenAI-compatible chat completions: OpenAI, vLLM, llama.cpp server, Ollama, SGLang, TGI.
//!
//! Decoding is lenient: the body is parsed as untyped JSON and the text is looked for where the
//! various servers put it (`message.content` as a string or as parts, or `text`); usage may be
//! missing (then tokens are estimated and flagged). The raw body always reaches the ledger.

use crate::backend::{send, Backend, BoxFuture, CallError, Capabilities, Reply};
use crate::request::ChatRequest;
use crate::secret::ApiKey;
use serde_json::{json, Value};
use std::time::Duration;

pub struct OpenAiBackend {
    pub model: String,
    endpoint: String,
    key: Option<ApiKey>,
    extra: Value,
    client: reqwest::Client,
}

impl OpenAiBackend {
    /// `base_url` is the API root (`http://127.0.0.1:8000/v1`); `/chat/completions` is appended.
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<ApiKey>,
        extra: Value,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OpenAiBackend {
            model: model.to_string(),
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            key,
            extra,
            client,
        })
    }

    pub fn body(&self, req: &ChatRequest) -> Value {
        let mut b = json!({ "model": self.model, "messages": req.messages });
        let o = b.as_object_mut().unwrap();
        if let Some(t) = req.temperature {
            o.insert("temperature".into(), json!(t));
        }
        if let Some(p) = req.top_p {
            o.insert("top_p".into(), json!(p));
        }
        if let Some(m) = req.max_tokens {
            o.insert("max_tokens".into(), json!(m));
        }
        if !req.stop.is_empty() {
            o.insert("stop".into(), json!(req.stop));
        }
        if let Some(s) = req.seed {
            o.insert("seed".into(), json!(s));
        }
        if let Value::Object(extra) = &self.extra {
            for (k, v) in extra {
                o.insert(k.clone(), v.clone());
            }
        }
        b
    }
}

/// Pulls text, usage and finish reason out of a chat-completions body.
pub fn decode(raw: &str, prompt_estimate: u64) -> Result<Reply, CallError> {
    let v: Value = serde_json::from_str(raw).map_err(|e| {
        CallError::retryable(
            format!("response is not valid JSON ({e}); truncated?"),
            Some(raw.to_string()),
        )
    })?;
    if let Some(err) = v.get("error") {
        return Err(CallError::retryable(
            format!("server reported an error: {err}"),
            Some(raw.to_string()),
        ));
    }
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| CallError::retryable("response has no choices", Some(raw.to_string())))?;
    let content = choice
        .get("message")
        .and_then(|m| m.get("content"))
        .or_else(|| choice.get("text"));
    let text = match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => {
            return Err(CallError::retryable(
                "response choice has no text content",
                Some(raw.to_string()),
            ))
        }
    };
    let usage = v.get("usage");
    let num = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64);
    let (prompt_tokens, completion_tokens, estimated) = match (
        num("prompt_tokens").or(num("input_tokens")),
        num("completion_tokens").or(num("output_tokens")),
    ) {
        (Some(p), Some(c)) => (p, c, false),
        _ => (
            prompt_estimate,
            (text.chars().count() as u64).div_ceil(4),
            true,
        ),
    };
    Ok(Reply {
        text,
        raw: raw.to_string(),
        prompt_tokens,
        completion_tokens,
        tokens_estimated: estimated,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

impl Backend for OpenAiBackend {
    fn model(&self) -> &str {
        &self.model
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed: true,
            logprobs: true,
            stop: true,
            free: false,
        }
    }

    fn extra_body(&self) -> Value {
        self.extra.clone()
    }

    fn call<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(async move {
            let mut rb = self.client.post(&self.endpoint).json(&self.body(req));
            if let Some(k) = &self.key {
                rb = rb.bearer_auth(k.expose());
            }
            let http = send(rb, self.key.as_ref()).await?;
            let (body, content_type) = (http.body, http.content_type);
            match decode(&body, req.estimated_prompt_tokens()) {
                Ok(r) => Ok(r),
                Err(mut e) if !content_type.contains("json") => {
                    e.reason = format!("unexpected content type `{content_type}`: {}", e.reason);
                    Err(e)
                }
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_standard_and_lenient_shapes() {
        let r = decode(r#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#, 9).unwrap();
        assert_eq!(
            (
                r.text.as_str(),
                r.prompt_tokens,
                r.completion_tokens,
                r.tokens_estimated
            ),
            ("hi", 5, 1, false)
        );
        let r = decode(r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#, 9).unwrap();
        assert_eq!(
            (r.text.as_str(), r.prompt_tokens, r.tokens_estimated),
            ("ab", 9, true)
        );
        let r = decode(r#"{"choices":[{"text":"completion style"}]}"#, 1).unwrap();
        assert_eq!(r.text, "completion style");
    }

    #[test]
    fn faults_are_retryable_and_keep_the_body() {
        for bad in [
            r#"{"choices":[{"message":{"content":"trunc"#,
            r#"{"choices":[]}"#,
            r#"{"error":{"message":"overloaded"}}"#,
            "<html>",
        ] {
            let e = decode(bad, 1).unwrap_err();
            assert!(e.retryable, "{bad}");
            assert_eq!(e.raw.as_deref(), Some(bad));
        }
    }
}
