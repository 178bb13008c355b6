//! The batch route of the call path: a stage's uncached requests go to the provider's batch API
//! (about half the price, answered within a day) and come back into the same ledger and cache,
//! so the stage then reads every reply as if it had been answered online.
//!
//! Submitted once, never twice: a batch and its requests are in the run store before they are
//! sent, and its provider id as soon as the provider accepts it. A relaunched run re-attaches to
//! its open batches (and finds a batch whose acceptance it did not live to record by the tag it
//! gave it) before it submits anything. Rows that fail, expire or never come back are recorded as
//! failed with their reason; the stage then asks for them online.

use crate::backend::{BoxFuture, CallError, Reply};
use crate::request::ChatRequest;
use crate::teacher::{Teacher, TeacherError};
use mentor_store::{BatchRow, CallRecord};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A provider's batch status.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStatus {
    /// The provider's word (`validating`, `in_progress`, `completed`, `expired`, `ended`, …).
    pub status: String,
    /// No more results will come.
    pub ended: bool,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

/// One result line of a finished batch.
#[derive(Debug, Clone)]
pub struct BatchResult {
    pub custom_id: String,
    pub outcome: Result<Reply, CallError>,
}

/// A provider's batch endpoints (OpenAI `/v1/files` + `/v1/batches`, Anthropic
/// `/v1/messages/batches`).
pub trait BatchApi: Send + Sync {
    /// Most requests and bytes one batch may hold.
    fn limits(&self) -> (usize, usize);
    /// The bytes `req` takes in a batch input.
    fn request_bytes(&self, custom_id: &str, req: &ChatRequest) -> usize;
    /// Submits the rows as one batch labelled `tag`; the provider's batch id.
    fn submit<'a>(
        &'a self,
        tag: &'a str,
        rows: &'a [(String, ChatRequest)],
    ) -> BoxFuture<'a, Result<String, CallError>>;
    /// The provider id of a batch labelled `tag`, if the provider has one.
    fn find<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<Option<String>, CallError>>;
    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<BatchStatus, CallError>>;
    /// Every result of an ended batch (successes and per-row errors).
    fn results<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<BatchResult>, CallError>>;
}

/// How often to ask a provider about a batch: from `initial`, half as often again each time, up
/// to `max` (a day-long batch is polled a few hundred times, not thousands).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPolling {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BatchPolling {
    fn default() -> Self {
        BatchPolling {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

/// What the batch route did for one stage and teacher.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BatchReport {
    /// Requests sent in new batches now.
    pub requested: u64,
    /// Requests of batches submitted by an earlier, stopped run, re-attached now.
    pub reattached: u64,
    /// Results recorded as answered.
    pub returned: u64,
    /// Results recorded as failed (a row error, expiry, cancellation, or no result at all):
    /// the stage asks for these online.
    pub failed: u64,
    pub batches: Vec<String>,
    /// The first few failure reasons.
    pub failures: Vec<String>,
    /// Why waiting stopped early (`interrupted`, budget); the batches stay open for a rerun.
    pub stopped: Option<String>,
}

impl Teacher {
    /// Sends those of `reqs` that are neither cached nor in an open batch through the provider's
    /// batch API, waits for every open batch of this teacher, and records each result in the
    /// ledger at the batch rate. Afterwards [`Teacher::complete`] answers the returned ones from
    /// the cache. `stop` ends the wait early, leaving the batches open for a rerun.
    pub async fn prefetch_batch(
        &self,
        reqs: &[ChatRequest],
        polling: BatchPolling,
        stop: &AtomicBool,
        mut on_status: impl FnMut(&str, &BatchStatus, Duration),
    ) -> Result<BatchReport, TeacherError> {
        let api = self.backend().batch_api().ok_or_else(|| {
            self.batch_failure(
                0,
                format!(
                "`{}` has no batch API here (batch = true needs an OpenAI or Anthropic teacher)",
                self.model()
            ),
            )
        })?;
        let mut report = BatchReport::default();
        let fail = |reason: String| self.batch_failure(1, reason);

        // 1. batches an earlier run left open: nothing in them is submitted again
        let open = self.store().lock().unwrap().open_batches(self.name())?;
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut waiting: Vec<(String, String)> = vec![]; // (tag, provider id)
        for b in open {
            let rows = self.store().lock().unwrap().batch_rows(&b.tag)?;
            in_flight.extend(rows.iter().map(|r| r.request_hash.clone()));
            report.reattached += rows.len() as u64;
            let id = match b.provider_id {
                Some(id) => id,
                // killed between sending and recording the provider's answer: ask the provider
                None => match api.find(&b.tag).await.map_err(|e| fail(e.reason))? {
                    Some(id) => {
                        self.store().lock().unwrap().batch_submitted(&b.tag, &id)?;
                        id
                    }
                    None => {
                        // never reached the provider: send it now, under the same tag
                        let by_hash: HashMap<String, &ChatRequest> =
                            reqs.iter().map(|r| (self.request_hash(r), r)).collect();
                        let rows: Vec<(String, ChatRequest)> = rows
                            .iter()
                            .filter_map(|r| {
                                by_hash
                                    .get(&r.request_hash)
                                    .map(|q| (r.custom_id.clone(), (*q).clone()))
                            })
                            .collect();
                        let id = api
                            .submit(&b.tag, &rows)
                            .await
                            .map_err(|e| fail(e.reason))?;
                        self.store().lock().unwrap().batch_submitted(&b.tag, &id)?;
                        id
                    }
                },
            };
            tracing::info!(teacher = %self.name(), "re-attached to batch {id} ({} requests)", b.requests);
            waiting.push((b.tag, id));
        }

        // 2. what is left to ask: neither answered nor in an open batch, each once, in batches
        //    within the provider's limits, under the budget at the batch rate
        let mut todo: Vec<(String, ChatRequest)> = vec![];
        let mut reserved: HashMap<String, (u64, f64)> = HashMap::new();
        let mut seen = HashSet::new();
        for r in reqs {
            let hash = self.request_hash(r);
            if in_flight.contains(&hash) || !seen.insert(hash.clone()) || self.cached(r)?.is_some()
            {
                continue;
            }
            let (p, c, _) = self.estimate(r);
            let usd = self.opts.pricing.batch_cost(p, c);
            if let Err(e) = self.budget().admit(p + c, usd) {
                report.stopped = Some(e.to_string());
                break;
            }
            reserved.insert(hash.clone(), (p + c, usd));
            todo.push((hash, r.clone()));
        }
        let (max_requests, max_bytes) = api.limits();
        let mut chunk: Vec<(String, ChatRequest)> = vec![];
        let mut bytes = 0;
        let mut chunks = vec![];
        for (hash, r) in todo {
            let b = api.request_bytes(&hash, &r);
            if !chunk.is_empty() && (chunk.len() >= max_requests || bytes + b > max_bytes) {
                chunks.push(std::mem::take(&mut chunk));
                bytes = 0;
            }
            bytes += b;
            chunk.push((hash, r));
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        for rows in chunks {
            let tag = format!("mentor-{}-{:016x}", self.name(), rand::random::<u64>());
            let stored: Vec<BatchRow> = rows
                .iter()
                .map(|(hash, r)| BatchRow {
                    custom_id: hash.clone(),
                    request_hash: hash.clone(),
                    request: self.request_json(r),
                })
                .collect();
            self.store()
                .lock()
                .unwrap()
                .open_batch(&tag, self.name(), &stored)?;
            let id = api.submit(&tag, &rows).await.map_err(|e| fail(e.reason))?;
            self.store().lock().unwrap().batch_submitted(&tag, &id)?;
            tracing::info!(teacher = %self.name(), "submitted batch {id} ({} requests)", rows.len());
            report.requested += rows.len() as u64;
            waiting.push((tag, id));
        }

        // 3. wait for every batch, then record its results
        let started = Instant::now();
        let mut delay = polling.initial;
        while !waiting.is_empty() {
            let mut still = vec![];
            for (tag, id) in waiting {
                let st = api.status(&id).await.map_err(|e| fail(e.reason))?;
                on_status(&id, &st, started.elapsed());
                if st.ended {
                    self.ingest(api, &tag, &id, &st, &mut reserved, &mut report)
                        .await?;
                } else {
                    still.push((tag, id));
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            let until = Instant::now() + delay;
            while Instant::now() < until {
                if stop.load(Ordering::SeqCst) {
                    report.stopped = Some("interrupted; the batches stay open for a rerun".into());
                    for (tokens, usd) in reserved.into_values() {
                        self.budget().settle(tokens, usd, 0, 0, 0.0);
                    }
                    return Ok(report);
                }
                tokio::time::sleep(Duration::from_millis(50).min(delay)).await;
            }
            delay = delay.mul_f64(1.5).min(polling.max);
        }
        Ok(report)
    }

    /// A failure of the batch route itself (no ledger row: no call was answered or refused).
    fn batch_failure(&self, attempts: u32, reason: String) -> TeacherError {
        TeacherError::Failed {
            teacher: self.name().to_string(),
            call_id: 0,
            attempts,
            reason,
        }
    }

    /// Records every row of an ended batch: its reply at the batch rate, or a failure with its
    /// reason; a row the provider returned nothing for fails as missing.
    async fn ingest(
        &self,
        api: &dyn BatchApi,
        tag: &str,
        id: &str,
        st: &BatchStatus,
        reserved: &mut HashMap<String, (u64, f64)>,
        report: &mut BatchReport,
    ) -> Result<(), TeacherError> {
        let results = api.results(id).await.map_err(|e| {
            self.batch_failure(
                1,
                format!("batch {id}: cannot read its results: {}", e.reason),
            )
        })?;
        let mut by_id: BTreeMap<String, Result<Reply, CallError>> = results
            .into_iter()
            .map(|r| (r.custom_id, r.outcome))
            .collect();
        let rows = self.store().lock().unwrap().batch_rows(tag)?;
        for row in rows {
            let outcome = by_id.remove(&row.custom_id).unwrap_or_else(|| {
                Err(CallError::fatal(
                    format!(
                        "batch {id} ({}) returned no result for this request",
                        st.status
                    ),
                    None,
                ))
            });
            let mut rec = CallRecord {
                namespace: self.opts.namespace.clone(),
                request_hash: row.request_hash.clone(),
                teacher: self.name().to_string(),
                model: self.model().to_string(),
                request: row.request.clone(),
                attempts: 1,
                batch_tag: Some(tag.to_string()),
                ..Default::default()
            };
            // a request reserved its estimate when this process submitted it; one re-attached
            // from an earlier run adds to the spend as it arrives
            let mut account = |calls, tokens, usd| match reserved.remove(&row.request_hash) {
                Some((t, u)) => self.budget().settle(t, u, calls, tokens, usd),
                None => self.budget().preload(calls, tokens, usd),
            };
            match outcome {
                Ok(reply) => {
                    rec.ok = true;
                    rec.cost_usd = self
                        .opts
                        .pricing
                        .batch_cost(reply.prompt_tokens, reply.completion_tokens);
                    rec.prompt_tokens = reply.prompt_tokens;
                    rec.completion_tokens = reply.completion_tokens;
                    rec.text = Some(reply.text);
                    rec.raw_response = Some(reply.raw);
                    rec.finish_reason = reply.finish_reason;
                    account(
                        1,
                        reply.prompt_tokens + reply.completion_tokens,
                        rec.cost_usd,
                    );
                    report.returned += 1;
                }
                Err(e) => {
                    rec.error = Some(format!("batch {id}: {}", e.reason));
                    rec.raw_response = e.raw;
                    account(1, 0, 0.0);
                    if report.failures.len() < 5 {
                        report.failures.push(format!("batch {id}: {}", e.reason));
                    }
                    report.failed += 1;
                }
            }
            self.store().lock().unwrap().record_call(&rec)?;
        }
        self.store()
            .lock()
            .unwrap()
            .batch_finished(tag, &st.status)?;
        report.batches.push(id.to_string());
        tracing::info!(teacher = %self.name(), "batch {id} {}: {} answered, {} failed so far", st.status, report.returned, report.failed);
        Ok(())
    }
}
