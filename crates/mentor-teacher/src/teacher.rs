//! The one call path every teacher request takes:
//! cache → budget → rate limit → retry → backend → ledger.
//!
//! A request whose answer is in the run store is never sent again. A request is sent only if the
//! run's budget admits its estimated cost. Every attempt's outcome — the reply, or the final
//! failure with its reason and whatever body came back — is written to the ledger before the
//! caller sees (and parses) anything.

use crate::backend::{Backend, CallError};
use crate::limits::{Budget, BudgetExceeded, RateLimiter, RetryPolicy};
use crate::request::ChatRequest;
use mentor_store::{CallRecord, Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Dollars per million tokens, online and through the provider's batch API.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pricing {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub batch_input_per_mtok: f64,
    pub batch_output_per_mtok: f64,
}

impl Pricing {
    /// Online rates, with batch rates at the providers' usual discount.
    pub fn with_batch_discount(input_per_mtok: f64, output_per_mtok: f64) -> Pricing {
        Pricing {
            input_per_mtok,
            output_per_mtok,
            batch_input_per_mtok: input_per_mtok * crate::prices::BATCH_DISCOUNT,
            batch_output_per_mtok: output_per_mtok * crate::prices::BATCH_DISCOUNT,
        }
    }

    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_per_mtok
            + completion_tokens as f64 * self.output_per_mtok)
            / 1e6
    }

    /// The same tokens at the batch rate.
    pub fn batch_cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.batch_input_per_mtok
            + completion_tokens as f64 * self.batch_output_per_mtok)
            / 1e6
    }
}

/// Per-teacher settings of the call path.
#[derive(Debug, Clone)]
pub struct TeacherOptions {
    /// The teacher's name in the config (and in the ledger).
    pub name: String,
    /// Cache namespace; teachers sharing one share answers. Defaults to the name.
    pub namespace: String,
    pub max_in_flight: usize,
    pub rpm: u32,
    pub tpm: u32,
    pub retry: RetryPolicy,
    pub pricing: Pricing,
    /// False for a paid API model with no price in the table or the config: its cost shows as
    /// unknown (recorded as $0), and a dollar budget refuses to run it.
    pub price_known: bool,
    /// Completion-token estimate for budgeting when a request sets no `max_tokens`.
    pub default_max_tokens: u32,
    /// This teacher's sampling temperature and token limit, applied to every request it is
    /// given by [`Teacher::configure`] (None: the stage's own value stands).
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Send a stage's requests through the provider's batch API, polled this way
    /// ([`Teacher::prefetch_batch`]); `None`: online.
    pub batch: Option<crate::batch::BatchPolling>,
    /// How many new batches to send a batch's failed rows in before asking online.
    pub batch_resubmits: u32,
}

impl TeacherOptions {
    pub fn new(name: &str) -> Self {
        TeacherOptions {
            name: name.into(),
            namespace: name.into(),
            max_in_flight: 8,
            rpm: 0,
            tpm: 0,
            retry: RetryPolicy::default(),
            pricing: Pricing::default(),
            price_known: true,
            default_max_tokens: 512,
            temperature: None,
            max_tokens: None,
            batch: None,
            batch_resubmits: 0,
        }
    }
}

/// A teacher's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Ledger row of the call that produced it.
    pub call_id: i64,
    /// Answered from the run store: nothing was sent or paid now.
    pub cached: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub attempts: u32,
    /// Why the reply ended, as the backend said (`stop`, `length`, `max_tokens`, …).
    pub finish_reason: Option<String>,
}

impl Completion {
    /// The reply was cut at the token limit: it may stop mid-sentence, before its answer.
    pub fn truncated(&self) -> bool {
        mentor_store::is_truncation(self.finish_reason.as_deref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    /// Recorded in the ledger as failed (after retries, or at once for a non-retryable error).
    #[error("teacher `{teacher}` failed after {attempts} attempt(s): {reason}")]
    Failed {
        teacher: String,
        call_id: i64,
        attempts: u32,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type SharedStore = Arc<Mutex<Store>>;

pub struct Teacher {
    pub opts: TeacherOptions,
    backend: Arc<dyn Backend>,
    store: SharedStore,
    budget: Arc<Budget>,
    limiter: RateLimiter,
    in_flight: Semaphore,
}

impl Teacher {
    pub fn new(
        opts: TeacherOptions,
        backend: Arc<dyn Backend>,
        store: SharedStore,
        budget: Arc<Budget>,
    ) -> Self {
        let limiter = RateLimiter::new(opts.rpm, opts.tpm);
        let in_flight = Semaphore::new(opts.max_in_flight.max(1));
        Teacher {
            opts,
            backend,
            store,
            budget,
            limiter,
            in_flight,
        }
    }

    pub fn name(&self) -> &str {
        &self.opts.name
    }

    pub fn model(&self) -> &str {
        self.backend.model()
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// A stage's request with this teacher's own sampling settings applied.
    pub fn configure(&self, mut req: ChatRequest) -> ChatRequest {
        if self.opts.temperature.is_some() {
            req.temperature = self.opts.temperature;
        }
        if self.opts.max_tokens.is_some() {
            req.max_tokens = self.opts.max_tokens;
        }
        req
    }

    pub(crate) fn store(&self) -> &SharedStore {
        &self.store
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The rendered request as the ledger keeps it (no credentials: those are headers).
    pub(crate) fn request_json(&self, req: &ChatRequest) -> String {
        serde_json::json!({ "model": self.backend.model(), "request": req, "extra": self.backend.extra_body() }).to_string()
    }

    /// The cache key of a request for this teacher.
    pub fn request_hash(&self, req: &ChatRequest) -> String {
        req.hash(self.backend.model(), &self.backend.extra_body())
    }

    /// The cached answer to `req`, if this run already paid for it.
    pub fn cached(&self, req: &ChatRequest) -> Result<Option<Completion>, TeacherError> {
        let hash = self.request_hash(req);
        let hit = self
            .store
            .lock()
            .unwrap()
            .cached_call(&self.opts.namespace, &hash)?;
        Ok(hit.map(|(id, rec)| Completion {
            text: rec.text.unwrap_or_default(),
            call_id: id,
            cached: true,
            prompt_tokens: rec.prompt_tokens,
            completion_tokens: rec.completion_tokens,
            cost_usd: rec.cost_usd,
            attempts: rec.attempts,
            finish_reason: rec.finish_reason,
        }))
    }

    /// Estimated (tokens, dollars) of a request, for budgets and `--dry-run`.
    pub fn estimate(&self, req: &ChatRequest) -> (u64, u64, f64) {
        let p = req.estimated_prompt_tokens();
        let c = req.max_tokens.unwrap_or(self.opts.default_max_tokens) as u64;
        let usd = if self.backend.capabilities().free {
            0.0
        } else {
            self.opts.pricing.cost(p, c)
        };
        (p, c, usd)
    }

    /// Answers `req` through the whole call path.
    pub async fn complete(&self, req: &ChatRequest) -> Result<Completion, TeacherError> {
        if let Some(hit) = self.cached(req)? {
            return Ok(hit);
        }
        let (p_est, c_est, usd_est) = self.estimate(req);
        self.budget.admit(p_est + c_est, usd_est)?;
        let result = self.send(req, p_est + c_est).await;
        let (calls, tokens, usd) = match &result {
            Ok(c) => (1, c.prompt_tokens + c.completion_tokens, c.cost_usd),
            Err(_) => (1, 0, 0.0),
        };
        self.budget
            .settle(p_est + c_est, usd_est, calls, tokens, usd);
        result
    }

    async fn send(&self, req: &ChatRequest, est_tokens: u64) -> Result<Completion, TeacherError> {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .expect("semaphore never closed");
        let hash = self.request_hash(req);
        let request_json = self.request_json(req);
        let started = Instant::now();
        let mut attempts = 0u32;
        let last_err: CallError = loop {
            attempts += 1;
            self.limiter.acquire(est_tokens).await;
            match self.backend.call(req).await {
                Ok(reply) => {
                    let cost = if self.backend.capabilities().free {
                        0.0
                    } else {
                        self.opts
                            .pricing
                            .cost(reply.prompt_tokens, reply.completion_tokens)
                    };
                    let rec = CallRecord {
                        namespace: self.opts.namespace.clone(),
                        request_hash: hash.clone(),
                        teacher: self.opts.name.clone(),
                        model: self.backend.model().to_string(),
                        request: request_json.clone(),
                        ok: true,
                        raw_response: Some(reply.raw),
                        text: Some(reply.text.clone()),
                        error: None,
                        prompt_tokens: reply.prompt_tokens,
                        completion_tokens: reply.completion_tokens,
                        cost_usd: cost,
                        latency_ms: started.elapsed().as_millis() as u64,
                        attempts,
                        finish_reason: reply.finish_reason.clone(),
                        batch_tag: None,
                    };
                    let call_id = self.store.lock().unwrap().record_call(&rec)?;
                    return Ok(Completion {
                        text: reply.text,
                        call_id,
                        cached: false,
                        prompt_tokens: reply.prompt_tokens,
                        completion_tokens: reply.completion_tokens,
                        cost_usd: cost,
                        attempts,
                        finish_reason: reply.finish_reason,
                    });
                }
                Err(e) if e.retryable && attempts <= self.opts.retry.max_retries => {
                    let delay = self.opts.retry.delay(attempts, e.retry_after);
                    tracing::debug!(teacher = %self.opts.name, "attempt {attempts} failed ({}); retrying in {:.2}s", e.reason, delay.as_secs_f64());
                    tokio::time::sleep(delay).await;
                }
                Err(e) => break e,
            }
        };
        let rec = CallRecord {
            namespace: self.opts.namespace.clone(),
            request_hash: hash,
            teacher: self.opts.name.clone(),
            model: self.backend.model().to_string(),
            request: request_json,
            ok: false,
            raw_response: last_err.raw.clone(),
            text: None,
            error: Some(last_err.reason.clone()),
            latency_ms: started.elapsed().as_millis() as u64,
            attempts,
            ..Default::default()
        };
        let call_id = self.store.lock().unwrap().record_call(&rec)?;
        Err(TeacherError::Failed {
            teacher: self.opts.name.clone(),
            call_id,
            attempts,
            reason: last_err.reason,
        })
    }
}

/// How long a retry schedule can take at most (for timeouts in tests and docs).
pub fn worst_case_retry_time(p: &RetryPolicy) -> Duration {
    (1..=p.max_retries)
        .map(|a| p.base.saturating_mul(1u32 << a.min(16)).min(p.cap))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::ReplayBackend;
    use crate::request::Message;

    #[test]
    fn each_teacher_applies_its_own_sampling_settings() {
        let dir = std::env::temp_dir().join(format!("mentor-configure-{}", std::process::id()));
        let store = Arc::new(Mutex::new(Store::open(dir.join("s.sqlite")).unwrap()));
        let budget = Arc::new(Budget::default());
        let mut hot = TeacherOptions::new("hot");
        hot.temperature = Some(1.0);
        hot.max_tokens = Some(64);
        let hot = Teacher::new(
            hot,
            Arc::new(ReplayBackend::new("r")),
            store.clone(),
            budget.clone(),
        );
        let plain = Teacher::new(
            TeacherOptions::new("plain"),
            Arc::new(ReplayBackend::new("r")),
            store,
            budget,
        );
        let stage = ChatRequest {
            temperature: Some(0.7),
            max_tokens: Some(512),
            ..ChatRequest::new(vec![Message::user("q")])
        };
        let h = hot.configure(stage.clone());
        assert_eq!((h.temperature, h.max_tokens), (Some(1.0), Some(64)));
        let p = plain.configure(stage.clone());
        assert_eq!(
            (p.temperature, p.max_tokens),
            (Some(0.7), Some(512)),
            "no setting: the stage's stands"
        );
        assert_ne!(
            hot.request_hash(&h),
            plain.request_hash(&p),
            "different settings are different calls"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
