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
    /// How the Batch API (`/v1/files`, `/v1/batches`) behaves.
    pub batch: BatchBehaviour,
}

/// The loopback Batch API: a batch ends `latency` after it is created; with `expire_after`, only
/// that many of its rows are answered and the rest come back as `batch_expired` errors.
#[derive(Debug, Clone, Default)]
pub struct BatchBehaviour {
    pub latency: Duration,
    pub expire_after: Option<usize>,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        LoopbackConfig {
            latency: Duration::ZERO,
            faults: Arc::new(|_, _| Fault::None),
            answer: Arc::new(|p| format!("I read {} characters. The answer is 42.", p.len())),
            require_key: None,
            batch: BatchBehaviour::default(),
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
    /// Batches created (`POST /v1/batches`), and how often each custom id was submitted.
    pub batches_created: AtomicU64,
    batch_rows: Mutex<HashMap<String, u32>>,
    files: Mutex<HashMap<String, String>>,
    batches: Mutex<Vec<serde_json::Value>>,
}

impl Stats {
    /// How many complete 200 answers each prompt received ("paid" calls).
    pub fn answered(&self) -> HashMap<String, u32> {
        self.answered.lock().unwrap().clone()
    }
    pub fn attempts(&self) -> HashMap<String, u32> {
        self.attempts.lock().unwrap().clone()
    }
    /// Counts one more attempt at `prompt`; the 0-based number of this one.
    fn next_attempt(&self, prompt: &str) -> u32 {
        let mut a = self.attempts.lock().unwrap();
        let n = a.entry(prompt.to_string()).or_insert(0);
        *n += 1;
        *n - 1
    }

    /// Counts a complete answer to `prompt` (a paid call).
    fn paid(&self, prompt: &str) {
        *self
            .answered
            .lock()
            .unwrap()
            .entry(prompt.to_string())
            .or_insert(0) += 1;
    }

    /// How many times each custom id arrived in a batch input file.
    pub fn batch_rows(&self) -> HashMap<String, u32> {
        self.batch_rows.lock().unwrap().clone()
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

/// The Batch API's routes; `None` for any other request. Files and batches live in memory.
fn batch_route(
    request_line: &str,
    content_type: &str,
    body: &[u8],
    cfg: &Arc<LoopbackConfig>,
    stats: &Arc<Stats>,
) -> Option<(&'static str, String)> {
    use serde_json::{json, Value};
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next()?, words.next()?);
    let path = target.split('?').next().unwrap_or(target);
    let not_found = || {
        (
            "404 Not Found",
            json!({"error": {"message": "no such object"}}).to_string(),
        )
    };
    let batch_of = |id: &str| {
        stats
            .batches
            .lock()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .cloned()
    };
    match (method, path) {
        ("POST", "/v1/files") => {
            let boundary = content_type
                .split("boundary=")
                .nth(1)?
                .trim_matches('"')
                .to_string();
            let text = String::from_utf8_lossy(body);
            let (mut purpose, mut file) = (None, None);
            for part in text.split(&format!("--{boundary}")) {
                let Some((head, content)) = part.split_once("\r\n\r\n") else {
                    continue;
                };
                let content = content.strip_suffix("\r\n").unwrap_or(content);
                if head.contains("name=\"purpose\"") {
                    purpose = Some(content.to_string());
                } else if head.contains("name=\"file\"") {
                    file = Some(content.to_string());
                }
            }
            let (Some("batch"), Some(file)) = (purpose.as_deref(), file) else {
                return Some((
                    "400 Bad Request",
                    json!({"error": {"message": "want purpose=batch and a file"}}).to_string(),
                ));
            };
            let mut files = stats.files.lock().unwrap();
            let id = format!("file-{}", files.len() + 1);
            let bytes = file.len();
            files.insert(id.clone(), file);
            Some((
                "200 OK",
                json!({"id": id, "object": "file", "bytes": bytes, "purpose": "batch"}).to_string(),
            ))
        }
        ("GET", p) if p.starts_with("/v1/files/") && p.ends_with("/content") => {
            let id = p
                .trim_start_matches("/v1/files/")
                .trim_end_matches("/content");
            let f = stats.files.lock().unwrap().get(id).cloned();
            Some(f.map_or_else(not_found, |f| ("200 OK", f)))
        }
        ("POST", "/v1/batches") => {
            let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let input = req["input_file_id"].as_str().unwrap_or_default();
            let Some(lines) = stats.files.lock().unwrap().get(input).cloned() else {
                return Some(not_found());
            };
            stats.batches_created.fetch_add(1, Ordering::SeqCst);
            let rows: Vec<Value> = lines
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            for r in &rows {
                let id = r["custom_id"].as_str().unwrap_or_default().to_string();
                *stats.batch_rows.lock().unwrap().entry(id).or_insert(0) += 1;
            }
            let id = format!("batch_{}", stats.batches.lock().unwrap().len() + 1);
            let b = json!({"id": id, "object": "batch", "endpoint": req["endpoint"], "input_file_id": input,
                           "completion_window": req["completion_window"], "status": "in_progress",
                           "output_file_id": null, "error_file_id": null, "metadata": req["metadata"],
                           "request_counts": {"total": rows.len(), "completed": 0, "failed": 0}});
            stats.batches.lock().unwrap().push(b.clone());
            let (cfg, stats) = (cfg.clone(), stats.clone());
            tokio::spawn(async move {
                tokio::time::sleep(cfg.batch.latency).await;
                let (mut out, mut err) = (String::new(), String::new());
                let (mut done, mut failed) = (0, 0);
                for (i, r) in rows.iter().enumerate() {
                    let cid = &r["custom_id"];
                    let prompt = prompt_of(&r["body"]);
                    if cfg.batch.expire_after.is_some_and(|n| i >= n) {
                        failed += 1;
                        err += &format!(
                            "{}\n",
                            json!({"id": format!("req_{i}"), "custom_id": cid, "response": null,
                            "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
                        );
                        continue;
                    }
                    let attempt = stats.next_attempt(&prompt);
                    match (cfg.faults)(&prompt, attempt) {
                        Fault::None => {
                            let body: Value = serde_json::from_str(&completion_body(
                                &r["body"],
                                &(cfg.answer)(&prompt),
                            ))
                            .unwrap();
                            out += &format!(
                                "{}\n",
                                json!({"id": format!("req_{i}"), "custom_id": cid,
                                "response": {"status_code": 200, "request_id": format!("r{i}"), "body": body}, "error": null})
                            );
                            stats.paid(&prompt);
                            done += 1;
                        }
                        _ => {
                            failed += 1;
                            err += &format!(
                                "{}\n",
                                json!({"id": format!("req_{i}"), "custom_id": cid,
                                "response": {"status_code": 500, "request_id": format!("r{i}"),
                                             "body": {"error": {"message": "boom", "type": "server_error", "code": "server_error"}}}, "error": null})
                            );
                        }
                    }
                }
                let mut files = stats.files.lock().unwrap();
                let mut file = |text: String| {
                    let id = format!("file-{}", files.len() + 1);
                    files.insert(id.clone(), text);
                    id
                };
                let out_id = (!out.is_empty()).then(|| file(out));
                let err_id = (!err.is_empty()).then(|| file(err));
                drop(files);
                let mut batches = stats.batches.lock().unwrap();
                if let Some(b) = batches.iter_mut().find(|b| b["id"] == id) {
                    b["status"] =
                        json!(if cfg.batch.expire_after.is_some_and(|n| n < rows.len()) {
                            "expired"
                        } else {
                            "completed"
                        });
                    b["output_file_id"] = json!(out_id);
                    b["error_file_id"] = json!(err_id);
                    b["request_counts"] =
                        json!({"total": rows.len(), "completed": done, "failed": failed});
                }
            });
            Some(("200 OK", b.to_string()))
        }
        ("POST", "/v1/messages/batches") => {
            let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let rows = req["requests"].as_array().cloned().unwrap_or_default();
            stats.batches_created.fetch_add(1, Ordering::SeqCst);
            for r in &rows {
                let id = r["custom_id"].as_str().unwrap_or_default().to_string();
                *stats.batch_rows.lock().unwrap().entry(id).or_insert(0) += 1;
            }
            let id = format!("msgbatch_{}", stats.batches.lock().unwrap().len() + 1);
            let b = json!({"id": id, "type": "message_batch", "processing_status": "in_progress",
                           "request_counts": {"processing": rows.len(), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                           "results_url": null});
            stats.batches.lock().unwrap().push(b.clone());
            let (cfg, stats) = (cfg.clone(), stats.clone());
            tokio::spawn(async move {
                tokio::time::sleep(cfg.batch.latency).await;
                let mut results = String::new();
                let (mut ok, mut errored, mut expired) = (0, 0, 0);
                for (i, r) in rows.iter().enumerate() {
                    let (cid, params) = (&r["custom_id"], &r["params"]);
                    let prompt = prompt_of(params);
                    let result = if cfg.batch.expire_after.is_some_and(|n| i >= n) {
                        expired += 1;
                        json!({"type": "expired"})
                    } else {
                        let attempt = stats.next_attempt(&prompt);
                        match (cfg.faults)(&prompt, attempt) {
                            Fault::None => {
                                ok += 1;
                                stats.paid(&prompt);
                                json!({"type": "succeeded", "message": anthropic_message(params, &(cfg.answer)(&prompt))})
                            }
                            _ => {
                                errored += 1;
                                json!({"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "boom"}}})
                            }
                        }
                    };
                    results += &format!("{}\n", json!({"custom_id": cid, "result": result}));
                }
                let file = format!("results-{id}");
                stats.files.lock().unwrap().insert(file, results);
                let mut batches = stats.batches.lock().unwrap();
                if let Some(b) = batches.iter_mut().find(|b| b["id"] == id) {
                    b["processing_status"] = json!("ended");
                    b["results_url"] = json!(null); // the client falls back to …/{id}/results
                    b["request_counts"] = json!({"processing": 0, "succeeded": ok, "errored": errored, "canceled": 0, "expired": expired});
                }
            });
            Some(("200 OK", b.to_string()))
        }
        ("GET", p) if p.starts_with("/v1/messages/batches/") && p.ends_with("/results") => {
            let id = p
                .trim_start_matches("/v1/messages/batches/")
                .trim_end_matches("/results");
            let f = stats
                .files
                .lock()
                .unwrap()
                .get(&format!("results-{id}"))
                .cloned();
            Some(f.map_or_else(not_found, |f| ("200 OK", f)))
        }
        ("GET", p) if p.starts_with("/v1/messages/batches/") => {
            let id = p.trim_start_matches("/v1/messages/batches/");
            Some(batch_of(id).map_or_else(not_found, |b| ("200 OK", b.to_string())))
        }
        ("GET", "/v1/batches") => {
            let data: Vec<Value> = stats
                .batches
                .lock()
                .unwrap()
                .iter()
                .rev()
                .cloned()
                .collect();
            Some((
                "200 OK",
                json!({"object": "list", "data": data, "has_more": false}).to_string(),
            ))
        }
        ("GET", p) if p.starts_with("/v1/batches/") => {
            let id = p.trim_start_matches("/v1/batches/");
            Some(batch_of(id).map_or_else(not_found, |b| ("200 OK", b.to_string())))
        }
        _ => None,
    }
}

/// An Anthropic message answering `params` with `text`, cut at its `max_tokens` (4 characters a
/// token) with `stop_reason: "max_tokens"`, as the Messages API does.
fn anthropic_message(params: &serde_json::Value, text: &str) -> serde_json::Value {
    let openai = serde_json::from_str::<serde_json::Value>(&completion_body(params, text)).unwrap();
    let choice = &openai["choices"][0];
    let stop = if choice["finish_reason"] == "length" {
        "max_tokens"
    } else {
        "end_turn"
    };
    serde_json::json!({"id": "msg_loopback", "type": "message", "role": "assistant",
        "model": params["model"], "content": [{"type": "text", "text": choice["message"]["content"]}],
        "stop_reason": stop,
        "usage": {"input_tokens": openai["usage"]["prompt_tokens"], "output_tokens": openai["usage"]["completion_tokens"]}})
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
        let mut content_type = String::new();
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
                    "content-type" => content_type = v.trim().to_string(),
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
        if let Some((status, b)) = batch_route(&request_line, &content_type, &body, &cfg, &stats) {
            write_response(&mut w, status, "application/json", &[], b.as_bytes()).await?;
            continue;
        }
        let parsed: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let prompt = prompt_of(&parsed);
        let attempt = stats.next_attempt(&prompt);
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
                    stats.paid(&prompt);
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
