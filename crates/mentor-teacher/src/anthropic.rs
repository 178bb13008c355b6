//! Anthropic Messages API (`POST {base}/v1/messages`).

use crate::backend::{send, Backend, BoxFuture, CallError, Capabilities, Reply};
use crate::batch::{BatchApi, BatchResult, BatchStatus};
use crate::request::{ChatRequest, Role};
use crate::secret::ApiKey;
use serde_json::{json, Value};
use std::time::Duration;

pub struct AnthropicBackend {
    pub model: String,
    /// The API root without `/v1`.
    base: String,
    endpoint: String,
    key: Option<ApiKey>,
    extra: Value,
    client: reqwest::Client,
}

/// Anthropic requires max_tokens; used when the request sets none.
const DEFAULT_MAX_TOKENS: u32 = 1024;

impl AnthropicBackend {
    /// `base_url` is the API root (`https://api.anthropic.com`); `/v1/messages` is appended.
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<ApiKey>,
        extra: Value,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let base = base_url.trim_end_matches('/').trim_end_matches("/v1");
        Ok(AnthropicBackend {
            model: model.into(),
            base: base.to_string(),
            endpoint: format!("{base}/v1/messages"),
            key,
            extra,
            client,
        })
    }

    pub fn body(&self, req: &ChatRequest) -> Value {
        // The system prompt is a top-level field, not a message.
        let system: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let messages: Vec<Value> = req
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| json!({ "role": if m.role == Role::Assistant { "assistant" } else { "user" }, "content": m.content }))
            .collect();
        let mut b = json!({ "model": self.model, "messages": messages, "max_tokens": req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) });
        let o = b.as_object_mut().unwrap();
        if !system.is_empty() {
            o.insert("system".into(), json!(system.join("\n\n")));
        }
        if let Some(t) = req.temperature {
            o.insert("temperature".into(), json!(t));
        }
        if let Some(p) = req.top_p {
            o.insert("top_p".into(), json!(p));
        }
        if !req.stop.is_empty() {
            o.insert("stop_sequences".into(), json!(req.stop));
        }
        if let Value::Object(extra) = &self.extra {
            for (k, v) in extra {
                o.insert(k.clone(), v.clone());
            }
        }
        b
    }
}

pub fn decode(raw: &str, prompt_estimate: u64) -> Result<Reply, CallError> {
    let v: Value = serde_json::from_str(raw).map_err(|e| {
        CallError::retryable(
            format!("response is not valid JSON ({e})"),
            Some(raw.into()),
        )
    })?;
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Err(CallError::retryable(
            format!("server reported an error: {}", v["error"]),
            Some(raw.into()),
        ));
    }
    let parts = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| CallError::retryable("response has no content", Some(raw.into())))?;
    let text: String = parts
        .iter()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let usage = v.get("usage");
    let num = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64);
    let (p, c, est) = match (num("input_tokens"), num("output_tokens")) {
        (Some(p), Some(c)) => (p, c, false),
        _ => (
            prompt_estimate,
            (text.chars().count() as u64).div_ceil(4),
            true,
        ),
    };
    Ok(Reply {
        text,
        raw: raw.into(),
        prompt_tokens: p,
        completion_tokens: c,
        tokens_estimated: est,
        finish_reason: v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

impl Backend for AnthropicBackend {
    fn model(&self) -> &str {
        &self.model
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed: false,
            logprobs: false,
            stop: true,
            free: false,
        }
    }
    fn extra_body(&self) -> Value {
        self.extra.clone()
    }
    fn batch_api(&self) -> Option<&dyn BatchApi> {
        Some(self)
    }
    fn call<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(async move {
            let mut rb = self
                .client
                .post(&self.endpoint)
                .header("anthropic-version", "2023-06-01")
                .json(&self.body(req));
            if let Some(k) = &self.key {
                rb = rb.header("x-api-key", k.expose());
            }
            // 529 "overloaded" is Anthropic's; as a server error it is retried.
            let body = send(rb, self.key.as_ref()).await?.body;
            decode(&body, req.estimated_prompt_tokens())
        })
    }
}

// ---- Message Batches: /v1/messages/batches -----------------------------------------------

impl AnthropicBackend {
    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let rb = rb.header("anthropic-version", "2023-06-01");
        match &self.key {
            Some(k) => rb.header("x-api-key", k.expose()),
            None => rb,
        }
    }

    async fn get(&self, url: &str) -> Result<String, CallError> {
        Ok(send(self.authed(self.client.get(url)), self.key.as_ref())
            .await?
            .body)
    }

    async fn get_json(&self, url: &str) -> Result<Value, CallError> {
        let body = self.get(url).await?;
        serde_json::from_str(&body)
            .map_err(|e| CallError::retryable(format!("{url}: not JSON ({e})"), Some(body)))
    }
}

/// One line of a batch's results: `succeeded` carries the message; `errored`, `canceled` and
/// `expired` are failures with that reason.
fn batch_result(line: &str) -> Option<BatchResult> {
    let v: Value = serde_json::from_str(line).ok()?;
    let custom_id = v.get("custom_id")?.as_str()?.to_string();
    let result = v.get("result")?;
    let outcome = match result.get("type").and_then(Value::as_str) {
        Some("succeeded") => decode(&result["message"].to_string(), 0),
        kind => {
            let err = &result["error"]["error"];
            let what = match err.get("message").and_then(Value::as_str) {
                Some(m) => format!("{}: {m}", err["type"].as_str().unwrap_or("error")),
                None => kind.unwrap_or("unknown").to_string(),
            };
            Err(CallError::fatal(what, Some(line.to_string())))
        }
    };
    Some(BatchResult { custom_id, outcome })
}

impl BatchApi for AnthropicBackend {
    fn limits(&self) -> (usize, usize) {
        // Anthropic: 100,000 requests or 256 MB per batch
        (100_000, 240 * 1024 * 1024)
    }

    fn request_bytes(&self, custom_id: &str, req: &ChatRequest) -> usize {
        json!({ "custom_id": custom_id, "params": self.body(req) })
            .to_string()
            .len()
            + 1
    }

    fn submit<'a>(
        &'a self,
        _tag: &'a str,
        rows: &'a [(String, ChatRequest)],
    ) -> BoxFuture<'a, Result<String, CallError>> {
        Box::pin(async move {
            let requests: Vec<Value> = rows
                .iter()
                .map(|(id, r)| json!({ "custom_id": id, "params": self.body(r) }))
                .collect();
            let url = format!("{}/v1/messages/batches", self.base);
            let http = send(
                self.authed(
                    self.client
                        .post(&url)
                        .json(&json!({ "requests": requests })),
                ),
                self.key.as_ref(),
            )
            .await?;
            let b: Value = serde_json::from_str(&http.body).map_err(|e| {
                CallError::retryable(format!("{url}: {e}"), Some(http.body.clone()))
            })?;
            b["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| CallError::retryable(format!("{url}: no batch id"), Some(http.body)))
        })
    }

    /// Message batches carry no metadata to find one by: a batch the provider accepted in the
    /// instant before a kill, before its id was recorded, is submitted again (the window is one
    /// HTTP round trip).
    fn find<'a>(&'a self, _tag: &'a str) -> BoxFuture<'a, Result<Option<String>, CallError>> {
        Box::pin(async move { Ok(None) })
    }

    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<BatchStatus, CallError>> {
        Box::pin(async move {
            let b = self
                .get_json(&format!("{}/v1/messages/batches/{id}", self.base))
                .await?;
            let status = b["processing_status"]
                .as_str()
                .unwrap_or("unknown")
                .to_string();
            let n = |k: &str| b["request_counts"][k].as_u64().unwrap_or(0);
            let failed = n("errored") + n("canceled") + n("expired");
            Ok(BatchStatus {
                ended: status == "ended",
                status,
                total: n("processing") + n("succeeded") + failed,
                completed: n("succeeded"),
                failed,
            })
        })
    }

    fn results<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<BatchResult>, CallError>> {
        Box::pin(async move {
            let b = self
                .get_json(&format!("{}/v1/messages/batches/{id}", self.base))
                .await?;
            let url = match b["results_url"].as_str() {
                Some(u) => u.to_string(),
                None => format!("{}/v1/messages/batches/{id}/results", self.base),
            };
            Ok(self
                .get(&url)
                .await?
                .lines()
                .filter_map(batch_result)
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Message;

    #[test]
    fn system_prompt_moves_to_top_level() {
        let b = AnthropicBackend::new(
            "https://api.anthropic.com/v1",
            "claude",
            None,
            Value::Null,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(b.endpoint, "https://api.anthropic.com/v1/messages");
        let body = b.body(&ChatRequest::new(vec![
            Message::system("be brief"),
            Message::user("hi"),
        ]));
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert_eq!(body["max_tokens"], 1024);
    }

    #[test]
    fn decodes_text_blocks_and_usage() {
        let r = decode(r#"{"type":"message","content":[{"type":"text","text":"4"}],"usage":{"input_tokens":3,"output_tokens":1},"stop_reason":"end_turn"}"#, 0).unwrap();
        assert_eq!(
            (r.text.as_str(), r.prompt_tokens, r.completion_tokens),
            ("4", 3, 1)
        );
        assert!(
            decode(r#"{"type":"error","error":{"type":"overloaded_error"}}"#, 0)
                .unwrap_err()
                .retryable
        );
    }
}
