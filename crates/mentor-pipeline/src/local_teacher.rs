//! The embedded teacher: a [`Backend`] that answers from a local model in this process (any
//! GGUF or HF directory the student engine loads: Qwen2.5, Llama, SmolLM2, Gemma 3), so a
//! distillation needs no API key and no server.
//!
//! Requests arrive concurrently from the annotation stage (up to the teacher's `max_in_flight`);
//! one worker thread owns the model and decodes them in one continuous batch of up to `batch`
//! rows (`generate_continuous`): a finished reply goes back at once, and requests that arrived
//! meanwhile are prefilled and merged into the running batch, so a wave never waits for its
//! longest reply. Each request decodes with its own seed. Replies carry exact token
//! counts; the call path's cache and ledger treat it like any other teacher (cost 0).

use mentor_model::{ChatMessage, Llama, SamplingParams, TextTokenizer};
use mentor_teacher::backend::BoxFuture;
use mentor_teacher::{Backend, CallError, Capabilities, ChatRequest, Reply};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Job {
    req: ChatRequest,
    reply: Replier,
}

type Replier = oneshot::Sender<Result<Reply, CallError>>;

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
    /// all in the store never loads it), and decodes up to `batch` requests at a time.
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
    let mut first = Some(first);
    let mut closed = false;
    while !closed {
        // the replies owed for requests handed to the decoder, by key
        let open: RefCell<HashMap<u64, Replier>> = RefCell::new(HashMap::new());
        let mut key = 0u64;
        let result = mentor_model::generate_continuous(
            &model,
            &tok,
            batch,
            &mut |room, idle| {
                let mut jobs = vec![];
                if idle {
                    // nothing decoding: wait for a request, then take what else arrives within
                    // 20 ms (an annotation wave's requests come within milliseconds)
                    match first.take().map_or_else(|| rx.recv(), Ok) {
                        Ok(j) => jobs.push(j),
                        Err(_) => {
                            closed = true;
                            return vec![];
                        }
                    }
                    let deadline = Instant::now() + Duration::from_millis(20);
                    while jobs.len() < room {
                        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                } else {
                    // rows are decoding: whatever has arrived joins them
                    while jobs.len() < room {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                }
                // a request that cannot be prepared fails alone
                let mut ready = vec![];
                for j in jobs {
                    match prepare(&tok, &j.req) {
                        Ok(p) => {
                            key += 1;
                            open.borrow_mut().insert(key, j.reply);
                            ready.push((key, p));
                        }
                        Err(e) => {
                            let _ = j.reply.send(Err(e));
                        }
                    }
                }
                ready
            },
            &mut |k, g| {
                if let Some(reply) = open.borrow_mut().remove(&k) {
                    let _ = reply.send(Ok(reply_of(g)));
                }
            },
        );
        if let Err(e) = result {
            // the batch is lost: its unanswered requests fail (fatal, like a failed load)
            for (_, reply) in open.borrow_mut().drain() {
                let _ = reply.send(Err(CallError::fatal(
                    format!("local generation failed: {e}"),
                    None,
                )));
            }
        }
    }
}

/// A finished generation as the call path's reply (exact token counts).
fn reply_of(g: mentor_model::Generation) -> Reply {
    let finish = format!("{:?}", g.finish_reason).to_lowercase();
    let raw = serde_json::json!({
        "text": g.text, "finish_reason": finish,
        "prompt_tokens": g.prompt_tokens, "completion_tokens": g.token_ids.len(),
    })
    .to_string();
    Reply {
        text: g.text,
        raw,
        prompt_tokens: g.prompt_tokens as u64,
        completion_tokens: g.token_ids.len() as u64,
        tokens_estimated: false,
        finish_reason: Some(finish),
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

#[cfg(test)]
mod tests {
    use super::*;
    use mentor_model::load::Student;
    use mentor_model::LlamaConfig;
    use mentor_teacher::request::Message;
    use std::sync::Arc;

    fn model() -> (Llama, TextTokenizer) {
        let tok = TextTokenizer::byte_level();
        let mut cfg = LlamaConfig::tiny(tok.vocab_size());
        cfg.max_position_embeddings = 512;
        let m = Student::random(&cfg, &candle_core::Device::Cpu, 7)
            .unwrap()
            .model;
        (m, tok)
    }

    /// Eight requests of unequal length through a worker of 3 rows: the first three start the
    /// batch, the others wait in the channel and join it as rows finish (merged mid-decode).
    /// Each reply is what its request decodes alone, and goes to the request that asked it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn arrivals_join_the_running_batch_and_decode_as_alone() {
        let backend = Arc::new(LocalBackend::start(
            "local:test".into(),
            Box::new(|| Ok(model())),
            3,
        ));
        let reqs: Vec<ChatRequest> = (0..8u32)
            .map(|i| {
                let mut r = ChatRequest::new(vec![Message::user(format!(
                    "question {i}{}",
                    "?".repeat(i as usize)
                ))]);
                r.max_tokens = Some(4 + 5 * (i % 4));
                r.temperature = Some(0.8);
                r.seed = Some(100 + i as u64);
                r
            })
            .collect();
        let mut calls = vec![];
        for r in reqs.clone() {
            let b = backend.clone();
            calls.push(tokio::spawn(async move { b.call(&r).await }));
        }
        let (m, tok) = model();
        for (r, call) in reqs.iter().zip(calls) {
            let got = call.await.unwrap().expect("a reply");
            let alone =
                mentor_model::generate(&m, &tok, &[prepare(&tok, r).unwrap()], 1, &mut |_| {})
                    .unwrap()
                    .remove(0);
            assert_eq!(got.text, alone.text, "{:?}", r.messages[0].content);
            assert_eq!(got.completion_tokens, alone.token_ids.len() as u64);
        }
    }
}
