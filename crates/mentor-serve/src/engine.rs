//! The decode loop: one thread owns the model and runs batches; HTTP handlers hand it jobs and
//! read back text as it grows.
//!
//! Batching is continuous: between two decode steps, requests that arrived are prefilled together
//! and join the running batch (up to `max_batch` rows), and rows that finished leave it, so no
//! request waits for another's last token. An idle server waits `batch_wait` after the first
//! request for others sent with it. A job whose client went away is cancelled at the next step.
//! Admission is bounded: at most `max_batch +
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
    /// Groups of requests prefilled together (each then joins the running batch).
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
    let mut running: Option<Batch> = None;
    loop {
        let mut arrivals = vec![];
        match &running {
            // idle: wait for a request, then briefly for others sent with it
            None => {
                let Ok(first) = rx.recv() else { return };
                arrivals.push(first);
                let deadline = std::time::Instant::now() + batch_wait;
                while arrivals.len() < max_batch {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(j) => arrivals.push(j),
                        Err(_) => break,
                    }
                }
            }
            // busy: whoever is waiting joins, up to max_batch rows
            Some(b) => {
                while b.jobs.len() + arrivals.len() < max_batch {
                    match rx.try_recv() {
                        Ok(j) => arrivals.push(j),
                        Err(mpsc::TryRecvError::Empty) => break,
                        // no more senders: finish what runs, then stop
                        Err(mpsc::TryRecvError::Disconnected) => break,
                    }
                }
            }
        }
        arrivals.retain(|j| !j.events.is_closed());
        if let Some(b) = running.as_mut() {
            if let Err(e) = b.step(stats) {
                b.fail(&e.to_string());
                running = None;
            }
        }
        if !arrivals.is_empty() {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            for newcomers in prefill_isolating(model, tokenizer, arrivals, stats) {
                match running.as_mut() {
                    None => running = Some(newcomers),
                    Some(b) => {
                        if let Err(e) = b.merge(newcomers) {
                            b.fail(&e.to_string());
                            running = None;
                        }
                    }
                }
            }
        }
        if let Some(b) = running.as_mut() {
            stats.peak_batch.fetch_max(b.jobs.len(), Ordering::Relaxed);
            if let Err(e) = b.retire_finished() {
                b.fail(&e.to_string());
                running = None;
            } else if b.jobs.is_empty() {
                running = None;
            }
        }
    }
}

/// Prefills `jobs` together; when that fails, each one alone, so that one request the model
/// cannot run (a token id past its embeddings, a prompt it cannot fit) fails by itself with a
/// 500 and does not take the requests that arrived with it down too.
fn prefill_isolating<'a>(
    model: &'a Llama,
    tokenizer: &'a TextTokenizer,
    jobs: Vec<Job>,
    stats: &EngineStats,
) -> Vec<Batch<'a>> {
    let (jobs, e) = match Batch::prefill(model, tokenizer, jobs, stats) {
        Ok(b) => return vec![b],
        Err(failed) => failed,
    };
    if jobs.len() == 1 {
        tracing::error!("prefill failed: {e}");
        let _ = jobs[0].events.send(Event::Failed(e));
        return vec![];
    }
    jobs.into_iter()
        .filter_map(|j| match Batch::prefill(model, tokenizer, vec![j], stats) {
            Ok(b) => Some(b),
            Err((mut one, e)) => {
                tracing::error!("prefill failed: {e}");
                let _ = one.remove(0).events.send(Event::Failed(e));
                None
            }
        })
        .collect()
}

/// The rows decoding together and the jobs they answer (row r ↔ `jobs[r]`).
struct Batch<'a> {
    decoder: Decoder<'a>,
    jobs: Vec<Job>,
    /// Bytes of each row's text already sent.
    sent: Vec<usize>,
}

impl<'a> Batch<'a> {
    /// Starts `jobs` together: their prompts' prefill and first token. On failure the jobs
    /// come back with the error, to be told.
    fn prefill(
        model: &'a Llama,
        tokenizer: &'a TextTokenizer,
        jobs: Vec<Job>,
        stats: &EngineStats,
    ) -> Result<Batch<'a>, (Vec<Job>, String)> {
        let reqs: Vec<(Vec<u32>, SamplingParams)> = jobs
            .iter()
            .map(|j| (j.prompt.clone(), j.params.clone()))
            .collect();
        let refs: Vec<&(Vec<u32>, SamplingParams)> = reqs.iter().collect();
        let decoder = match Decoder::new(model, tokenizer, &refs) {
            Ok(d) => d.track_text(),
            Err(e) => return Err((jobs, e.to_string())),
        };
        let sent = vec![0; jobs.len()];
        let mut b = Batch {
            decoder,
            jobs,
            sent,
        };
        match b.step(stats) {
            Ok(()) => Ok(b),
            Err(e) => Err((b.jobs, e.to_string())),
        }
    }

    /// One decode step for every row, then each row's new text (and end) to its client.
    fn step(&mut self, stats: &EngineStats) -> candle_core::Result<()> {
        self.decoder.step()?;
        for (r, job) in self.jobs.iter().enumerate() {
            if job.events.is_closed() {
                self.decoder.cancel(r);
                continue;
            }
            let visible = self.decoder.visible_text(r);
            let sent = &mut self.sent[r];
            // decoding a longer prefix can in principle rewrite the tail; then wait for it
            if visible.len() > *sent && visible.is_char_boundary(*sent) {
                let _ = job.events.send(Event::Delta(visible[*sent..].to_string()));
                *sent = visible.len();
            }
            if let Some(reason) = self.decoder.finished(r) {
                let n = self.decoder.generated(r);
                stats.completion_tokens.fetch_add(n, Ordering::Relaxed);
                let _ = job.events.send(Event::Done {
                    text: visible.to_string(),
                    finish_reason: reason,
                    prompt_tokens: job.prompt.len(),
                    completion_tokens: n,
                });
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: Batch<'a>) -> candle_core::Result<()> {
        self.decoder.merge(other.decoder)?;
        self.jobs.extend(other.jobs);
        self.sent.extend(other.sent);
        Ok(())
    }

    /// Finished (and cancelled) rows leave the batch; their `Done` went out when they finished.
    fn retire_finished(&mut self) -> candle_core::Result<()> {
        let keep: Vec<bool> = (0..self.jobs.len())
            .map(|r| self.decoder.finished(r).is_none())
            .collect();
        if keep.iter().all(|&k| k) {
            return Ok(());
        }
        self.decoder.retain(&keep)?;
        let mut r = 0;
        self.jobs.retain(|_| {
            r += 1;
            keep[r - 1]
        });
        let mut r = 0;
        self.sent.retain(|_| {
            r += 1;
            keep[r - 1]
        });
        Ok(())
    }

    fn fail(&self, e: &str) {
        tracing::error!("decode failed: {e}");
        for j in &self.jobs {
            let _ = j.events.send(Event::Failed(e.to_string()));
        }
    }
}
