//! `mentor serve`: a model behind an OpenAI-compatible HTTP API (the engine is mentor-serve).

use crate::models;
use crate::output::Summary;
use anyhow::{Context, Result};
use mentor_serve::ServeConfig;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Serve a model over an OpenAI-compatible HTTP API: /v1/chat/completions and /v1/completions
/// (JSON, or server-sent events with "stream": true), /v1/models, /health.
///
/// Requests share decode steps: between two steps, new requests join the running batch (up to
/// --max-batch rows) and finished ones leave it. At most --max-batch + --max-queue requests are
/// open at once; beyond that the answer is 429 with Retry-After. Ctrl-C or SIGTERM stops taking connections and lets open requests finish.
///
/// Any OpenAI client works, and so does mentor itself as a teacher: in an experiment config,
/// `kind = "openai"`, `base_url = "http://127.0.0.1:8080/v1"`, `model = <served name>`.
///
/// Example: mentor serve --model runs/svamp-step-by-step --port 8080
#[derive(clap::Args)]
pub struct Args {
    /// An asset name (smollm2-135m), a .gguf file, a Hugging Face directory, or a run directory
    /// (its trained student). GGUF files keep their quantised weights.
    #[arg(long)]
    model: String,
    /// Address to listen on (0.0.0.0 to accept other machines).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port; 0 picks a free one (the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The `model` name clients send; default: the asset name or the file/directory name.
    #[arg(long)]
    served_model_name: Option<String>,
    /// Requests decoded together in one batch.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Requests that may wait for a batch before the server answers 429.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// max_tokens when a request gives none (capped by the context left).
    #[arg(long, default_value_t = 512)]
    default_max_tokens: usize,
    /// Milliseconds an idle server waits, after a first request, for others sent with it to
    /// share its prefill (a CPU decode step takes 100+ ms).
    #[arg(long, default_value_t = 20)]
    batch_wait_ms: u64,
    /// Threads for the tensor kernels (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Require `Authorization: Bearer <key>` on /v1/*. Read from the environment only, so the
    /// key never shows in `ps` or shell history.
    #[arg(long = "api-key-env", value_name = "VAR")]
    api_key_env: Option<String>,
}

pub fn run(a: Args) -> Result<Summary> {
    models::set_threads(a.threads);
    let api_key = match &a.api_key_env {
        None => None,
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("--api-key-env {var}: the environment variable is not set")
        })?),
    };
    let loaded = models::load_quantized_for_inference(&a.model)?;
    let model_id = a
        .served_model_name
        .clone()
        .unwrap_or_else(|| served_name(&a.model));
    let cfg = ServeConfig {
        model_id: model_id.clone(),
        max_batch: a.max_batch,
        max_queue: a.max_queue,
        default_max_tokens: a.default_max_tokens,
        batch_wait: std::time::Duration::from_millis(a.batch_wait_ms),
        api_key,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (router, stats) = mentor_serve::app(loaded.model, loaded.tokenizer, cfg);
    let addr = format!("{}:{}", a.host, a.port);
    let started = std::time::Instant::now();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        // one plain line scripts can wait for, whatever the log level
        eprintln!(
            "mentor serve: {model_id} ({}) listening on http://{local}/v1",
            loaded.path.display()
        );
        mentor_serve::serve(listener, router, shutdown_signal())
            .await
            .context("the server stopped")
    })?;
    let batches = stats.batches.load(Ordering::Relaxed);
    let tokens = stats.completion_tokens.load(Ordering::Relaxed);
    let peak = stats.peak_batch.load(Ordering::Relaxed);
    Ok(Summary {
        human: format!(
            "served {model_id} for {:.0}s: {batches} batches (up to {peak} requests each), {tokens} tokens generated",
            started.elapsed().as_secs_f64()
        ),
        json: json!({"model": model_id, "batches": batches, "peak_batch": peak,
                     "completion_tokens": tokens, "seconds": started.elapsed().as_secs_f64()}),
    })
}

/// An asset's name, or the last component of a path (`runs/exp` → `exp`, `m.gguf` → `m`).
fn served_name(spec: &str) -> String {
    let p = std::path::Path::new(spec.trim_end_matches('/'));
    match p.extension().and_then(|e| e.to_str()) {
        Some("gguf") => p.file_stem(),
        _ => p.file_name(),
    }
    .and_then(|s| s.to_str())
    .unwrap_or(spec)
    .to_string()
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    eprintln!("mentor serve: shutting down; open requests finish first");
}
