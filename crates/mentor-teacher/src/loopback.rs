//! A real OpenAI-compatible chat-completions server on 127.0.0.1, with scripted faults.
//!
//! Used by the tests (429 + Retry-After, 500, hangs, truncated JSON, empty choices, wrong content
//! type) and by `mentor bench annotate` (zero-latency teacher). It speaks HTTP/1.1 with
//! keep-alive, counts every request and every answer it completed per prompt (so a test can prove
//! no prompt was paid twice), and tracks the peak number of requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// 429 with a `Retry-After` header (seconds).
    TooManyRequests { retry_after_s: f64 },
    /// 500 Internal Server Error.
    ServerError,
    /// 400 Bad Request (not retryable).
    BadRequest,
    /// Never answer (until the client gives up).
    Hang,
    /// 200 with a body cut in the middle of the JSON.
    TruncatedJson,
    /// 200 with `"choices": []`.
    EmptyChoices,
    /// 200 with an HTML error page as `text/html`.
    WrongContentType,
}

/// Decides the fault for the `attempt`-th request (0-based) carrying `prompt`.
pub type FaultPlan = Arc<dyn Fn(&str, u32) -> Fault + Send + Sync>;
/// Produces the answer text for a prompt.
pub type Answerer = Arc<dyn Fn(&str) -> String + Send + Sync>;

#[derive(Clone)]
pub struct LoopbackConfig {
    pub latency: Duration,
    pub faults: FaultPlan,
    pub answer: Answerer,
    /// If set, requests without `Authorization: Bearer <key>` get 401.
    pub require_key: Option<String>,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        LoopbackConfig {
            latency: Duration::ZERO,
            faults: Arc::new(|_, _| Fault::None),
            answer: Arc::new(|p| format!("I read {} characters. The answer is 42.", p.len())),
            require_key: None,
        }
    }
}

/// Counters a test or benchmark reads.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub unauthorized: AtomicU64,
    /// Requests abandoned because the client disconnected before the answer was ready.
    pub aborted: AtomicU64,
    in_flight: AtomicI64,
    pub peak_in_flight: AtomicI64,
    attempts: Mutex<HashMap<String, u32>>,
    answered: Mutex<HashMap<String, u32>>,
}

impl Stats {
    /// How many complete 200 answers each prompt received ("paid" calls).
    pub fn answered(&self) -> HashMap<String, u32> {
        self.answered.lock().unwrap().clone()
    }
    pub fn attempts(&self) -> HashMap<String, u32> {
        self.attempts.lock().unwrap().clone()
    }
}

pub struct LoopbackServer {
    pub base_url: String,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LoopbackServer {
    /// Starts the server on an ephemeral port of 127.0.0.1. `base_url` ends in `/v1`.
    pub async fn start(cfg: LoopbackConfig) -> std::io::Result<LoopbackServer> {
        Self::start_on("127.0.0.1:0", cfg).await
    }

    /// Starts on a given loopback address (`127.0.0.1:PORT`).
    pub async fn start_on(addr: &str, cfg: LoopbackConfig) -> std::io::Result<LoopbackServer> {
        let listener = TcpListener::bind(addr).await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let stats = Arc::new(Stats::default());
        let (st, cfg) = (stats.clone(), Arc::new(cfg));
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_connection(sock, cfg.clone(), st.clone()));
            }
        });
        Ok(LoopbackServer {
            base_url,
            stats,
            task,
        })
    }
}

/// The last user message of a chat request: what "the prompt" means for fault plans and counts.
fn prompt_of(body: &serde_json::Value) -> String {
    body.get("messages")
        .and_then(|m| m.as_array())
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|x| x.get("role").and_then(|r| r.as_str()) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_string()
}

async fn serve_connection(
    sock: tokio::net::TcpStream,
    cfg: Arc<LoopbackConfig>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        let mut auth = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = v.trim().parse().unwrap_or(0),
                    "authorization" => auth = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; content_length];
        r.read_exact(&mut body).await?;
        stats.requests.fetch_add(1, Ordering::SeqCst);

        if request_line.starts_with("GET /v1/models") || request_line.starts_with("GET /health") {
            let b = r#"{"object":"list","data":[{"id":"loopback","object":"model"}]}"#;
            write_response(&mut w, "200 OK", "application/json", &[], b.as_bytes()).await?;
            continue;
        }
        if let Some(key) = &cfg.require_key {
            if auth.as_deref() != Some(&format!("Bearer {key}")) {
                stats.unauthorized.fetch_add(1, Ordering::SeqCst);
                let b = r#"{"error":{"message":"invalid api key","type":"invalid_request_error"}}"#;
                write_response(
                    &mut w,
                    "401 Unauthorized",
                    "application/json",
                    &[],
                    b.as_bytes(),
                )
                .await?;
                continue;
            }
        }
        let parsed: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let prompt = prompt_of(&parsed);
        let attempt = {
            let mut a = stats.attempts.lock().unwrap();
            let n = a.entry(prompt.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        if !cfg.latency.is_zero() {
            // Like vLLM, abort a request whose client hung up while it was being "generated":
            // nothing is delivered, so nothing is paid.
            let hung_up = async {
                match r.fill_buf().await {
                    Ok(b) if !b.is_empty() => std::future::pending::<()>().await,
                    _ => {}
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(cfg.latency) => {}
                _ = hung_up => {
                    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                    stats.aborted.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
            }
        }
        let fault = (cfg.faults)(&prompt, attempt);
        let result = match fault {
            Fault::Hang => {
                stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            Fault::TooManyRequests { retry_after_s } => {
                let ra = format!("{retry_after_s}");
                write_response(
                    &mut w,
                    "429 Too Many Requests",
                    "application/json",
                    &[("Retry-After", &ra)],
                    br#"{"error":{"message":"rate limited"}}"#,
                )
                .await
            }
            Fault::ServerError => {
                write_response(
                    &mut w,
                    "500 Internal Server Error",
                    "application/json",
                    &[],
                    br#"{"error":{"message":"boom"}}"#,
                )
                .await
            }
            Fault::BadRequest => {
                write_response(
                    &mut w,
                    "400 Bad Request",
                    "application/json",
                    &[],
                    br#"{"error":{"message":"bad request"}}"#,
                )
                .await
            }
            Fault::TruncatedJson => {
                let full = completion_body(&parsed, &(cfg.answer)(&prompt));
                write_response(
                    &mut w,
                    "200 OK",
                    "application/json",
                    &[],
                    &full.as_bytes()[..full.len() / 2],
                )
                .await
            }
            Fault::EmptyChoices => {
                write_response(
                    &mut w,
                    "200 OK",
                    "application/json",
                    &[],
                    br#"{"id":"x","object":"chat.completion","choices":[]}"#,
                )
                .await
            }
            Fault::WrongContentType => {
                write_response(
                    &mut w,
                    "200 OK",
                    "text/html",
                    &[],
                    b"<html><body>502 Bad Gateway</body></html>",
                )
                .await
            }
            Fault::None => {
                let b = completion_body(&parsed, &(cfg.answer)(&prompt));
                let r =
                    write_response(&mut w, "200 OK", "application/json", &[], b.as_bytes()).await;
                if r.is_ok() {
                    *stats
                        .answered
                        .lock()
                        .unwrap()
                        .entry(prompt.clone())
                        .or_insert(0) += 1;
                }
                r
            }
        };
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        result?;
    }
}

/// The completion a server would return: the answer cut at the request's `max_tokens` (4
/// characters a token, as the usage counts below) with `finish_reason: "length"`, as a real
/// server cuts a long reply; otherwise the whole answer and `"stop"`.
fn completion_body(req: &serde_json::Value, text: &str) -> String {
    let limit = req
        .get("max_tokens")
        .and_then(|m| m.as_u64())
        .map(|t| t as usize * 4);
    let (text, finish) = match limit {
        Some(n) if text.len() > n => {
            let mut cut = n;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            (&text[..cut], "length")
        }
        _ => (text, "stop"),
    };
    let prompt_chars: usize = req
        .get("messages")
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .filter_map(|x| x["content"].as_str())
                .map(str::len)
                .sum()
        })
        .unwrap_or(0);
    serde_json::json!({
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "model": req.get("model").cloned().unwrap_or_default(),
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": finish }],
        "usage": { "prompt_tokens": prompt_chars.div_ceil(4), "completion_tokens": text.len().div_ceil(4), "total_tokens": prompt_chars.div_ceil(4) + text.len().div_ceil(4) }
    })
    .to_string()
}

async fn write_response(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    status: &str,
    ctype: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    let mut buf = head.into_bytes();
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}
