//! OpenAI-compatible chat completions: OpenAI, vLLM, llama.cpp server, Ollama, SGLang, TGI.
//!
//! Decoding is lenient: the body is parsed as untyped JSON and the text is looked for where the
//! various servers put it (`message.content` as a string or as parts, or `text`); usage may be
//! missing (then tokens are estimated and flagged). The raw body always reaches the ledger.

use crate::backend::{send, Backend, BoxFuture, CallError, Capabilities, Reply};
use crate::batch::{BatchApi, BatchResult, BatchStatus};
use crate::request::ChatRequest;
use crate::secret::ApiKey;
use serde_json::{json, Value};
use std::time::Duration;

pub struct OpenAiBackend {
    pub model: String,
    /// The API root (`…/v1`): chat completions, files and batches hang off it.
    base: String,
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
            base: base_url.trim_end_matches('/').to_string(),
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

    fn batch_api(&self) -> Option<&dyn BatchApi> {
        Some(self)
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

// ---- the Batch API: a JSONL file through /v1/files, then /v1/batches ----------------------

impl OpenAiBackend {
    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => rb.bearer_auth(k.expose()),
            None => rb,
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, CallError> {
        let http = send(self.authed(self.client.get(url)), self.key.as_ref()).await?;
        serde_json::from_str(&http.body)
            .map_err(|e| CallError::retryable(format!("{url}: not JSON ({e})"), Some(http.body)))
    }

    fn batch_line(&self, custom_id: &str, req: &ChatRequest) -> String {
        json!({ "custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": self.body(req) })
            .to_string()
    }
}

/// One line of a batch's output or error file.
fn batch_result(line: &str) -> Option<BatchResult> {
    let v: Value = serde_json::from_str(line).ok()?;
    let custom_id = v.get("custom_id")?.as_str()?.to_string();
    let response = v.get("response").filter(|r| !r.is_null());
    let status = response
        .and_then(|r| r.get("status_code"))
        .and_then(Value::as_u64);
    let outcome = match (status, response.and_then(|r| r.get("body"))) {
        (Some(200), Some(body)) => decode(&body.to_string(), 0),
        (code, body) => {
            let err = v
                .get("error")
                .filter(|e| !e.is_null())
                .or_else(|| body.and_then(|b| b.get("error")));
            let what = err
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.get("code").and_then(Value::as_str).unwrap_or("error"),
                        e.get("message").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .unwrap_or_else(|| format!("HTTP {}", code.unwrap_or(0)));
            Err(CallError::fatal(what, Some(line.to_string())))
        }
    };
    Some(BatchResult { custom_id, outcome })
}

impl BatchApi for OpenAiBackend {
    fn limits(&self) -> (usize, usize) {
        // OpenAI: 50,000 requests and 200 MB per input file
        (50_000, 190 * 1024 * 1024)
    }

    fn request_bytes(&self, custom_id: &str, req: &ChatRequest) -> usize {
        self.batch_line(custom_id, req).len() + 1
    }

    fn submit<'a>(
        &'a self,
        tag: &'a str,
        rows: &'a [(String, ChatRequest)],
    ) -> BoxFuture<'a, Result<String, CallError>> {
        Box::pin(async move {
            let mut jsonl = String::new();
            for (id, req) in rows {
                jsonl += &self.batch_line(id, req);
                jsonl.push('\n');
            }
            let part = reqwest::multipart::Part::bytes(jsonl.into_bytes())
                .file_name(format!("{tag}.jsonl"))
                .mime_str("application/jsonl")
                .map_err(|e| CallError::fatal(e.to_string(), None))?;
            let form = reqwest::multipart::Form::new()
                .text("purpose", "batch")
                .part("file", part);
            let url = format!("{}/files", self.base);
            let http = send(
                self.authed(self.client.post(&url).multipart(form)),
                self.key.as_ref(),
            )
            .await?;
            let file: Value = serde_json::from_str(&http.body).map_err(|e| {
                CallError::retryable(format!("{url}: {e}"), Some(http.body.clone()))
            })?;
            let file_id = file["id"].as_str().ok_or_else(|| {
                CallError::retryable(format!("{url}: no file id"), Some(http.body.clone()))
            })?;
            let body = json!({ "input_file_id": file_id, "endpoint": "/v1/chat/completions",
                               "completion_window": "24h", "metadata": { "mentor_tag": tag } });
            let url = format!("{}/batches", self.base);
            let http = send(
                self.authed(self.client.post(&url).json(&body)),
                self.key.as_ref(),
            )
            .await?;
            let batch: Value = serde_json::from_str(&http.body).map_err(|e| {
                CallError::retryable(format!("{url}: {e}"), Some(http.body.clone()))
            })?;
            batch["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| CallError::retryable(format!("{url}: no batch id"), Some(http.body)))
        })
    }

    fn find<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<Option<String>, CallError>> {
        Box::pin(async move {
            let mut after: Option<String> = None;
            for _ in 0..20 {
                let mut url = format!("{}/batches?limit=100", self.base);
                if let Some(a) = &after {
                    url += &format!("&after={a}");
                }
                let page = self.get_json(&url).await?;
                let data = page["data"].as_array().cloned().unwrap_or_default();
                if let Some(b) = data
                    .iter()
                    .find(|b| b["metadata"]["mentor_tag"].as_str() == Some(tag))
                {
                    return Ok(b["id"].as_str().map(str::to_string));
                }
                if !page["has_more"].as_bool().unwrap_or(false) {
                    break;
                }
                after = data
                    .last()
                    .and_then(|b| b["id"].as_str())
                    .map(str::to_string);
            }
            Ok(None)
        })
    }

    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<BatchStatus, CallError>> {
        Box::pin(async move {
            let b = self
                .get_json(&format!("{}/batches/{id}", self.base))
                .await?;
            let status = b["status"].as_str().unwrap_or("unknown").to_string();
            let n = |k: &str| b["request_counts"][k].as_u64().unwrap_or(0);
            Ok(BatchStatus {
                ended: matches!(
                    status.as_str(),
                    "completed" | "failed" | "expired" | "cancelled"
                ),
                status,
                total: n("total"),
                completed: n("completed"),
                failed: n("failed"),
            })
        })
    }

    fn results<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<BatchResult>, CallError>> {
        Box::pin(async move {
            let b = self
                .get_json(&format!("{}/batches/{id}", self.base))
                .await?;
            let mut out = vec![];
            for key in ["output_file_id", "error_file_id"] {
                let Some(file) = b[key].as_str() else {
                    continue;
                };
                let url = format!("{}/files/{file}/content", self.base);
                let http = send(self.authed(self.client.get(&url)), self.key.as_ref()).await?;
                out.extend(http.body.lines().filter_map(batch_result));
            }
            Ok(out)
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
