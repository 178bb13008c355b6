//! The embedded teacher: a [`Backend`] that answers from a local model in this process (any
//! GGUF or HF directory the student engine loads: Qwen2.5, Llama, SmolLM2, Gemma 3), so a
//! distillation needs no API key and no server.
//!
//! Requests arrive concurrently from the annotation stage (up to the teacher's `max_in_flight`);
//! one worker thread owns the model, takes every request waiting (up to `batch`), and decodes
//! them together in one batched generation, each with its own seed. Replies carry exact token
//! counts; the call path's cache and ledger treat it like any other teacher (cost 0).

use mentor_model::{ChatMessage, Llama, SamplingParams, TextTokenizer};
use mentor_teacher::backend::BoxFuture;
use mentor_teacher::{Backend, CallError, Capabilities, ChatRequest, Reply};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

struct Job {
    req: ChatRequest,
    reply: oneshot::Sender<Result<Reply, CallError>>,
}

/// Loads the model and its tokenizer (on the worker thread, at the first request).
pub type Loader = Box<dyn FnOnce() -> anyhow::Result<(Llama, TextTokenizer)> + Send>;

pub struct LocalBackend {
    name: String,
    queue: Mutex<mpsc::Sender<Job>>,
}

/// Used when a request sets no temperature: greedy (one sample a question wants the likeliest).
const DEFAULT_TEMPERATURE: f64 = 0.0;

impl LocalBackend {
    /// Starts the worker; it loads the model at the first request (a rerun whose answers are
    /// all in the store never loads it), and decodes up to `batch` requests together.
    pub fn start(name: String, load: Loader, batch: usize) -> LocalBackend {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("local-teacher".into())
            .spawn(move || worker(load, rx, batch.max(1)))
            .expect("spawn the local teacher thread");
        LocalBackend {
            name,
            queue: Mutex::new(tx),
        }
    }
}

fn prepare(
    tokenizer: &TextTokenizer,
    req: &ChatRequest,
) -> Result<(Vec<u32>, SamplingParams), CallError> {
    let msgs: Vec<ChatMessage> = req
        .messages
        .iter()
        .map(|m| ChatMessage::new(m.role.as_str(), m.content.clone()))
        .collect();
    let text = tokenizer
        .apply_chat_template(&msgs, true)
        .map_err(|e| CallError::fatal(format!("chat template: {e}"), None))?;
    let ids = tokenizer
        .encode(&text)
        .map_err(|e| CallError::fatal(format!("tokenizer: {e}"), None))?;
    let params = SamplingParams {
        max_new_tokens: req.max_tokens.unwrap_or(512) as usize,
        temperature: req.temperature.unwrap_or(DEFAULT_TEMPERATURE),
        top_p: req.top_p.unwrap_or(1.0),
        seed: req.seed.unwrap_or(req.sample_index as u64),
        stop: req.stop.clone(),
        ignore_eos: false,
    };
    params.validate().map_err(|e| CallError::fatal(e, None))?;
    Ok((ids, params))
}

fn worker(load: Loader, rx: mpsc::Receiver<Job>, batch: usize) {
    let Ok(first) = rx.recv() else { return };
    let (model, tok) = match load() {
        Ok(m) => m,
        Err(e) => {
            let msg = format!("the local teacher's model did not load: {e:#}");
            let _ = first.reply.send(Err(CallError::fatal(msg.clone(), None)));
            while let Ok(j) = rx.recv() {
                let _ = j.reply.send(Err(CallError::fatal(msg.clone(), None)));
            }
            return;
        }
    };
    let mut next = Some(first);
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut jobs = vec![first];
        // Requests of one annotation wave arrive within milliseconds of each other.
        let deadline = std::time::Instant::now() + Duration::from_millis(20);
        while jobs.len() < batch {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // Requests that cannot be prepared fail alone; the rest decode together.
        let mut ready = vec![];
        for j in jobs {
            match prepare(&tok, &j.req) {
                Ok(p) => ready.push((j, p)),
                Err(e) => {
                    let _ = j.reply.send(Err(e));
                }
            }
        }
        let (jobs, reqs): (Vec<Job>, Vec<(Vec<u32>, SamplingParams)>) = ready.into_iter().unzip();
        match mentor_model::generate(&model, &tok, &reqs, batch, &mut |_| {}) {
            Ok(gens) => {
                for (j, g) in jobs.into_iter().zip(gens) {
                    let finish = format!("{:?}", g.finish_reason).to_lowercase();
                    let raw = serde_json::json!({
                        "text": g.text, "finish_reason": finish,
                        "prompt_tokens": g.prompt_tokens, "completion_tokens": g.token_ids.len(),
                    })
                    .to_string();
                    let _ = j.reply.send(Ok(Reply {
                        text: g.text,
                        raw,
                        prompt_tokens: g.prompt_tokens as u64,
                        completion_tokens: g.token_ids.len() as u64,
                        tokens_estimated: false,
                        finish_reason: Some(finish),
                    }));
                }
            }
            Err(e) => {
                for j in jobs {
                    let _ = j.reply.send(Err(CallError::fatal(
                        format!("local generation failed: {e}"),
                        None,
                    )));
                }
            }
        }
    }
}

impl Backend for LocalBackend {
    fn model(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed: true,
            logprobs: false,
            stop: true,
            free: true,
        }
    }

    fn call<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.queue
                .lock()
                .unwrap()
                .send(Job {
                    req: req.clone(),
                    reply: tx,
                })
                .map_err(|_| CallError::fatal("the local teacher's worker has stopped", None))?;
            rx.await
                .map_err(|_| CallError::fatal("the local teacher's worker has stopped", None))?
        })
    }
}
