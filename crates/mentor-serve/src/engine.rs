//! The decode loop: one thread owns the model and runs batches; HTTP handlers hand it jobs and
//! read back text as it grows.
//!
//! Batching is static: the thread takes every job waiting (up to `max_batch`, after waiting
//! `batch_wait` for requests sent together to arrive together), decodes them
//! together in shared steps until all are done, then takes the next lot. A job whose client
//! went away is cancelled at the next step. Admission is bounded: at most `max_batch +
//! max_queue` requests are open at once; the rest get a "busy" answer at once instead of a
//! queue that grows without end.

use mentor_model::{Decoder, FinishReason, Llama, SamplingParams, TextTokenizer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::mpsc::UnboundedSender;

/// What a job's receiver hears, in order: text deltas, then one `Done` (or `Failed`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Delta(String),
    Done {
        text: String,
        finish_reason: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    Failed(String),
}

pub struct Job {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub events: UnboundedSender<Event>,
}

/// Counters that `/health` reports (and tests read).
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Requests admitted and not yet answered.
    pub open: AtomicUsize,
    pub batches: AtomicUsize,
    /// The most rows ever decoded together.
    pub peak_batch: AtomicUsize,
    pub completion_tokens: AtomicUsize,
}

/// The handlers' side of the engine.
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    pub stats: Arc<EngineStats>,
    capacity: usize,
}

/// A place among the open requests; dropping it frees the place.
pub struct Ticket(Arc<EngineStats>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Engine {
    /// Starts the decode thread. It ends when the `Engine` is dropped and its last batch is done.
    pub fn start(
        model: Llama,
        tokenizer: Arc<TextTokenizer>,
        max_batch: usize,
        max_queue: usize,
        batch_wait: std::time::Duration,
    ) -> Engine {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(EngineStats::default());
        let thread_stats = stats.clone();
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name("mentor-serve-decode".into())
            .spawn(move || {
                decode_loop(
                    &model,
                    &tokenizer,
                    &rx,
                    max_batch,
                    batch_wait,
                    &thread_stats,
                )
            })
            .expect("spawn the decode thread");
        Engine {
            jobs: tx,
            stats,
            capacity: max_batch + max_queue,
        }
    }

    /// A place for one more request, or `None` when `max_batch + max_queue` are open.
    pub fn admit(&self) -> Option<Ticket> {
        let prev = self.stats.open.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket(self.stats.clone());
        (prev < self.capacity).then_some(ticket)
    }

    pub fn submit(&self, job: Job) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            let _ = job
                .events
                .send(Event::Failed("the decode thread has stopped".into()));
        }
    }
}

fn decode_loop(
    model: &Llama,
    tokenizer: &TextTokenizer,
    rx: &mpsc::Receiver<Job>,
    max_batch: usize,
    batch_wait: std::time::Duration,
    stats: &EngineStats,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = std::time::Instant::now() + batch_wait;
        while jobs.len() < max_batch {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        jobs.retain(|j| !j.events.is_closed());
        if jobs.is_empty() {
            continue;
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.peak_batch.fetch_max(jobs.len(), Ordering::Relaxed);
        if let Err(e) = run_batch(model, tokenizer, &jobs, stats) {
            tracing::error!("decode failed: {e}");
            for j in &jobs {
                let _ = j.events.send(Event::Failed(e.to_string()));
            }
        }
    }
}

fn run_batch(
    model: &Llama,
    tokenizer: &TextTokenizer,
    jobs: &[Job],
    stats: &EngineStats,
) -> candle_core::Result<()> {
    let reqs: Vec<(Vec<u32>, SamplingParams)> = jobs
        .iter()
        .map(|j| (j.prompt.clone(), j.params.clone()))
        .collect();
    let refs: Vec<&(Vec<u32>, SamplingParams)> = reqs.iter().collect();
    let mut dec = Decoder::new(model, tokenizer, &refs)?.track_text();
    let mut sent = vec![0usize; jobs.len()];
    let mut reported = vec![false; jobs.len()];
    while !dec.is_done() {
        dec.step()?;
        for (r, job) in jobs.iter().enumerate() {
            if reported[r] {
                continue;
            }
            if job.events.is_closed() {
                dec.cancel(r);
                reported[r] = true;
                continue;
            }
            let visible = dec.visible_text(r);
            // decoding a longer prefix can in principle rewrite the tail; then wait for it
            if visible.len() > sent[r] && visible.is_char_boundary(sent[r]) {
                let _ = job
                    .events
                    .send(Event::Delta(visible[sent[r]..].to_string()));
                sent[r] = visible.len();
            }
            if let Some(reason) = dec.finished(r) {
                reported[r] = true;
                let n = dec.generated(r);
                stats.completion_tokens.fetch_add(n, Ordering::Relaxed);
                let _ = job.events.send(Event::Done {
                    text: dec.visible_text(r).to_string(),
                    finish_reason: reason,
                    prompt_tokens: job.prompt.len(),
                    completion_tokens: n,
                });
            }
        }
    }
    Ok(())
}
