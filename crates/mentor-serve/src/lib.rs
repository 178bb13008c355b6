//! `mentor serve`: an OpenAI-compatible HTTP server for one model.
//!
//! Routes: `POST /v1/chat/completions` and `POST /v1/completions` (JSON or, with `"stream":
//! true`, server-sent events ending in `data: [DONE]`), `GET /v1/models`, `GET /health`.
//! Handlers check a request ([`api`]), take a place among the open requests (or answer 429 at
//! once), and hand the prompt to the decode thread ([`engine`]), which decodes everything waiting
//! in one shared batch. Every error is a 4xx/5xx with OpenAI's `{"error": {...}}` body; nothing a
//! client sends can stop the server. Shutdown (Ctrl-C, SIGTERM) stops accepting connections
//! and lets open requests finish.

pub mod api;
pub mod engine;

use api::{ApiError, ChatRequest, CompletionRequest, Limits, Sampling};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use engine::{Engine, EngineStats, Event, Job, Ticket};
use mentor_model::{Llama, TextTokenizer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How the server is set up (`mentor serve`'s flags).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The name clients pass as `model` (and `/v1/models` lists).
    pub model_id: String,
    /// Requests decoded together in one batch.
    pub max_batch: usize,
    /// Requests that may wait for a batch; beyond `max_batch + max_queue` open requests the
    /// server answers 429 with `Retry-After`.
    pub max_queue: usize,
    /// `max_tokens` when a request gives none (capped by the room left in the context).
    pub default_max_tokens: usize,
    /// How long the decode thread waits, after a request arrives at an idle server, for others
    /// to join its batch: tens of milliseconds against a CPU decode step of hundreds.
    pub batch_wait: std::time::Duration,
    /// When set, requests to `/v1/*` must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            model_id: "student".into(),
            max_batch: 8,
            max_queue: 64,
            default_max_tokens: 512,
            batch_wait: std::time::Duration::from_millis(20),
            api_key: None,
        }
    }
}

struct Inner {
    engine: Engine,
    tokenizer: Arc<TextTokenizer>,
    cfg: ServeConfig,
    max_positions: usize,
    created: u64,
}

type AppState = Arc<Inner>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

/// The router for `model`, and the engine's counters. The decode thread stops once the
/// router (every clone of it) is dropped.
pub fn app(model: Llama, tokenizer: TextTokenizer, cfg: ServeConfig) -> (Router, Arc<EngineStats>) {
    let tokenizer = Arc::new(tokenizer);
    let max_positions = model.cfg.max_position_embeddings;
    let engine = Engine::start(
        model,
        tokenizer.clone(),
        cfg.max_batch,
        cfg.max_queue,
        cfg.batch_wait,
    );
    let stats = engine.stats.clone();
    let state = Arc::new(Inner {
        engine,
        tokenizer,
        cfg,
        max_positions,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    let router = Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .fallback(unknown_route)
        .with_state(state);
    (router, stats)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: 404,
        message: format!("Unknown request URL: {method} {}", uri.path()),
        kind: "invalid_request_error",
        param: None,
        code: Some("unknown_url"),
    }
}

async fn health(State(s): State<AppState>) -> Response {
    let st = &s.engine.stats;
    let load = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
    axum::Json(json!({
        "status": "ok",
        "model": s.cfg.model_id,
        "open_requests": load(&st.open),
        "batches": load(&st.batches),
        "peak_batch": load(&st.peak_batch),
        "completion_tokens": load(&st.completion_tokens),
    }))
    .into_response()
}

async fn models(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    Ok(axum::Json(json!({
        "object": "list",
        "data": [{"id": s.cfg.model_id, "object": "model", "created": s.created, "owned_by": "mentor",
                  "max_model_len": s.max_positions}],
    }))
    .into_response())
}

fn authorize(s: &Inner, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &s.cfg.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(key.as_str()) {
        return Ok(());
    }
    // never echo what was sent: it may be someone's real key
    Err(ApiError {
        status: 401,
        message: "Incorrect or missing API key (Authorization: Bearer <key>)".into(),
        kind: "invalid_request_error",
        param: None,
        code: Some("invalid_api_key"),
    })
}

/// The two endpoints differ only in how the prompt is built and how a choice is written.
#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Chat,
    Completion,
}

async fn chat_completions(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let req: ChatRequest = api::parse(&body)?;
    let messages = req.chat_messages()?;
    let prompt = s
        .tokenizer
        .apply_chat_template(&messages, true)
        .map_err(|e| ApiError::invalid(e.to_string(), Some("messages")))?;
    run(s, Endpoint::Chat, &prompt, &req.sampling).await
}

async fn completions(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&s, &headers)?;
    let req: CompletionRequest = api::parse(&body)?;
    let prompt = req.prompt_text()?.to_string();
    run(s, Endpoint::Completion, &prompt, &req.sampling).await
}

async fn run(
    s: AppState,
    endpoint: Endpoint,
    prompt: &str,
    sampling: &Sampling,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let ids = s
        .tokenizer
        .encode(prompt)
        .map_err(|e| server_error(e.to_string()))?;
    let limits = Limits {
        model_id: &s.cfg.model_id,
        max_positions: s.max_positions,
        default_max_tokens: s.cfg.default_max_tokens,
    };
    let params = sampling.params(ids.len(), &limits)?;
    let ticket = s.engine.admit().ok_or_else(|| ApiError {
        status: 429,
        message: format!(
            "The server is busy ({} requests open: max_batch + max_queue); retry shortly",
            s.cfg.max_batch + s.cfg.max_queue
        ),
        kind: "rate_limit_error",
        param: None,
        code: Some("rate_limit_exceeded"),
    })?;
    let (tx, rx) = mpsc::unbounded_channel();
    s.engine.submit(Job {
        prompt: ids,
        params,
        events: tx,
    });
    let reply = Reply {
        id: format!(
            "{}-{:016x}",
            if endpoint == Endpoint::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            },
            rand::random::<u64>()
        ),
        endpoint,
        model: s.cfg.model_id.clone(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    if sampling.stream {
        return Ok(stream(reply, rx, ticket, sampling.include_usage(), started));
    }
    let mut rx = rx;
    let _ticket = ticket;
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Delta(_) => {}
            Event::Done {
                text,
                finish_reason,
                prompt_tokens,
                completion_tokens,
            } => {
                log_done(&reply, prompt_tokens, completion_tokens, started);
                let choice = match endpoint {
                    Endpoint::Chat => json!({"index": 0, "logprobs": null,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": api::finish_reason(finish_reason)}),
                    Endpoint::Completion => json!({"index": 0, "logprobs": null, "text": text,
                        "finish_reason": api::finish_reason(finish_reason)}),
                };
                let mut body = reply.envelope(false);
                body["choices"] = json!([choice]);
                body["usage"] = api::usage(prompt_tokens, completion_tokens);
                return Ok(axum::Json(body).into_response());
            }
            Event::Failed(m) => return Err(server_error(m)),
        }
    }
    Err(server_error("the decode thread stopped".into()))
}

fn server_error(message: String) -> ApiError {
    // candle errors carry a backtrace when RUST_BACKTRACE is set: the log has it (the decode
    // thread logs every failure); the client gets the error's own line
    let message = message.lines().next().unwrap_or("").to_string();
    ApiError {
        status: 500,
        message,
        kind: "server_error",
        param: None,
        code: None,
    }
}

fn log_done(reply: &Reply, prompt_tokens: usize, completion_tokens: usize, started: Instant) {
    tracing::info!(
        id = %reply.id,
        prompt_tokens,
        completion_tokens,
        ms = started.elapsed().as_millis() as u64,
        "request done"
    );
}

/// What every body and chunk of one response shares.
struct Reply {
    id: String,
    endpoint: Endpoint,
    model: String,
    created: u64,
}

impl Reply {
    fn envelope(&self, chunk: bool) -> Value {
        let object = match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model})
    }

    /// One stream chunk with a choice carrying `text` (and `finish_reason` once done).
    fn chunk(&self, text: Option<&str>, first: bool, finish: Option<&str>) -> String {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut delta = json!({});
                if first {
                    delta["role"] = json!("assistant");
                }
                if let Some(t) = text {
                    delta["content"] = json!(t);
                }
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completion => {
                json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish})
            }
        };
        let mut body = self.envelope(true);
        body["choices"] = json!([choice]);
        sse(&body)
    }
}

fn sse(body: &Value) -> String {
    format!("data: {body}\n\n")
}

/// A server-sent-events response fed from the job's events. The forwarding task holds the
/// request's place until the stream ends; if the client leaves, the send fails, the task
/// drops the job's receiver and the decode thread cancels the row.
fn stream(
    reply: Reply,
    mut rx: mpsc::UnboundedReceiver<Event>,
    ticket: Ticket,
    include_usage: bool,
    started: Instant,
) -> Response {
    let (out, body_rx) = mpsc::channel::<Result<String, std::io::Error>>(64);
    tokio::spawn(async move {
        let _ticket = ticket;
        let mut first = true;
        if reply.endpoint == Endpoint::Chat {
            if out
                .send(Ok(reply.chunk(Some(""), true, None)))
                .await
                .is_err()
            {
                return;
            }
            first = false;
        }
        while let Some(ev) = rx.recv().await {
            let last = !matches!(ev, Event::Delta(_));
            let chunks = match ev {
                Event::Delta(t) => vec![reply.chunk(Some(&t), first, None)],
                Event::Done {
                    finish_reason,
                    prompt_tokens,
                    completion_tokens,
                    ..
                } => {
                    log_done(&reply, prompt_tokens, completion_tokens, started);
                    let mut v =
                        vec![reply.chunk(None, first, Some(api::finish_reason(finish_reason)))];
                    if include_usage {
                        let mut u = reply.envelope(true);
                        u["choices"] = json!([]);
                        u["usage"] = api::usage(prompt_tokens, completion_tokens);
                        v.push(sse(&u));
                    }
                    v.push("data: [DONE]\n\n".into());
                    v
                }
                // headers are gone already: the error travels as an event, as OpenAI does
                Event::Failed(m) => vec![sse(&server_error(m).body()), "data: [DONE]\n\n".into()],
            };
            first = false;
            for c in chunks {
                if out.send(Ok(c)).await.is_err() {
                    return;
                }
            }
            if last {
                return;
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(body_rx),
        ))
        .expect("a valid response")
}
