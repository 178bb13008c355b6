//! The contract between the call path and a concrete LLM endpoint.

use crate::request::ChatRequest;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a backend can do natively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Honors `seed` (so k samples can be made reproducible by seeding each).
    pub seed: bool,
    pub logprobs: bool,
    pub stop: bool,
    /// Costs nothing (replay, local): budgets in dollars do not apply.
    pub free: bool,
}

/// A successful reply. `raw` is the body exactly as received: it goes to the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub raw: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// True when the backend gave no usage and the counts are estimates.
    pub tokens_estimated: bool,
    pub finish_reason: Option<String>,
}

/// Why a call did not produce a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    pub retryable: bool,
    /// From a `Retry-After` header, when the server sent one.
    pub retry_after: Option<Duration>,
    pub reason: String,
    /// Whatever body came back, kept for the ledger.
    pub raw: Option<String>,
}

impl CallError {
    pub fn retryable(reason: impl Into<String>, raw: Option<String>) -> Self {
        CallError {
            retryable: true,
            retry_after: None,
            reason: reason.into(),
            raw,
        }
    }
    pub fn fatal(reason: impl Into<String>, raw: Option<String>) -> Self {
        CallError {
            retryable: false,
            retry_after: None,
            reason: reason.into(),
            raw,
        }
    }
}

/// One LLM endpoint. Implementations do one attempt; retries, limits and caching are the call
/// path's job.
pub trait Backend: Send + Sync {
    /// The model name as the endpoint knows it (part of the cache key).
    fn model(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// Extra request-body fields (part of the cache key).
    fn extra_body(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn call<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, CallError>>;
    /// The provider's batch endpoints, where it has them.
    fn batch_api(&self) -> Option<&dyn crate::batch::BatchApi> {
        None
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from LLM APIs and is ignored).
pub fn parse_retry_after(h: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let s = h?.to_str().ok()?.trim();
    let secs: f64 = s.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// Classifies a non-success HTTP status.
pub fn status_error(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: String,
) -> CallError {
    let excerpt: String = body.chars().take(300).collect();
    let retryable = status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error();
    CallError {
        retryable,
        retry_after,
        reason: format!("HTTP {status}: {excerpt}"),
        raw: Some(body),
    }
}

/// Classifies a transport error (timeouts and broken connections are worth retrying).
pub fn transport_error(e: &reqwest::Error) -> CallError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    // reqwest errors name the URL, never headers, so no credential can leak here.
    CallError::retryable(format!("{what}: {e}"), None)
}

/// What came back over HTTP, with any credential scrubbed from the body.
pub struct HttpReply {
    pub status: reqwest::StatusCode,
    pub retry_after: Option<Duration>,
    pub content_type: String,
    pub body: String,
}

/// Sends a prepared request; transport failures become retryable [`CallError`]s and non-2xx
/// statuses are classified by [`status_error`].
pub async fn send(
    rb: reqwest::RequestBuilder,
    key: Option<&crate::secret::ApiKey>,
) -> Result<HttpReply, CallError> {
    let resp = rb.send().await.map_err(|e| transport_error(&e))?;
    let status = resp.status();
    let retry_after = parse_retry_after(resp.headers().get(reqwest::header::RETRY_AFTER));
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.text().await.map_err(|e| transport_error(&e))?;
    let body = match key {
        Some(k) => k.scrub(&body),
        None => body,
    };
    if !status.is_success() {
        return Err(status_error(status, retry_after, body));
    }
    Ok(HttpReply {
        status,
        retry_after,
        content_type,
        body,
    })
}
