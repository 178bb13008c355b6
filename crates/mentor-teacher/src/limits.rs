//! Budgets and rate limits: what may be sent, and when.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Spending limits for a whole run, shared by all its teachers. A request is admitted only if its
/// *estimated* cost fits; its actual cost is booked when it returns.
#[derive(Debug, Default)]
pub struct Budget {
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_usd: Option<f64>,
    spent: Mutex<Spent>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spent {
    pub calls: u64,
    pub tokens: u64,
    pub usd: f64,
    /// Admitted and not yet booked.
    pub reserved_calls: u64,
    pub reserved_tokens: u64,
    pub reserved_usd: f64,
}

/// Which limit stopped a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("budget reached: {what} (limit {limit}, spent {spent})")]
pub struct BudgetExceeded {
    pub what: &'static str,
    pub limit: String,
    pub spent: String,
}

impl Budget {
    pub fn new(max_calls: Option<u64>, max_tokens: Option<u64>, max_usd: Option<f64>) -> Self {
        Budget {
            max_calls,
            max_tokens,
            max_usd,
            spent: Mutex::default(),
        }
    }

    /// Starts the run's accounting from what an earlier run already spent.
    pub fn preload(&self, calls: u64, tokens: u64, usd: f64) {
        let mut s = self.spent.lock().unwrap();
        s.calls += calls;
        s.tokens += tokens;
        s.usd += usd;
    }

    /// Reserves room for one request, or says which limit it would break.
    pub fn admit(&self, tokens: u64, usd: f64) -> Result<(), BudgetExceeded> {
        let mut s = self.spent.lock().unwrap();
        if let Some(m) = self.max_calls {
            if s.calls + s.reserved_calls + 1 > m {
                return Err(BudgetExceeded {
                    what: "calls",
                    limit: m.to_string(),
                    spent: s.calls.to_string(),
                });
            }
        }
        if let Some(m) = self.max_tokens {
            if s.tokens + s.reserved_tokens + tokens > m {
                return Err(BudgetExceeded {
                    what: "tokens",
                    limit: m.to_string(),
                    spent: s.tokens.to_string(),
                });
            }
        }
        if let Some(m) = self.max_usd {
            if s.usd + s.reserved_usd + usd > m + 1e-12 {
                return Err(BudgetExceeded {
                    what: "dollars",
                    limit: format!("{m:.4}"),
                    spent: format!("{:.4}", s.usd),
                });
            }
        }
        s.reserved_calls += 1;
        s.reserved_tokens += tokens;
        s.reserved_usd += usd;
        Ok(())
    }

    /// Replaces a reservation with what the call really cost (a failed call costs its attempts).
    pub fn settle(
        &self,
        reserved_tokens: u64,
        reserved_usd: f64,
        calls: u64,
        tokens: u64,
        usd: f64,
    ) {
        let mut s = self.spent.lock().unwrap();
        s.reserved_calls -= 1;
        s.reserved_tokens -= reserved_tokens;
        s.reserved_usd -= reserved_usd;
        s.calls += calls;
        s.tokens += tokens;
        s.usd += usd;
    }

    pub fn spent(&self) -> Spent {
        *self.spent.lock().unwrap()
    }
}

/// Requests-per-minute and tokens-per-minute over a sliding 60 s window (0 = unlimited).
#[derive(Debug)]
pub struct RateLimiter {
    rpm: u32,
    tpm: u32,
    window: Mutex<VecDeque<(Instant, u64)>>,
}

impl RateLimiter {
    pub fn new(rpm: u32, tpm: u32) -> Self {
        RateLimiter {
            rpm,
            tpm,
            window: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a request of `tokens` fits, then records it.
    pub async fn acquire(&self, tokens: u64) {
        if self.rpm == 0 && self.tpm == 0 {
            return;
        }
        loop {
            let wait = {
                let mut w = self.window.lock().unwrap();
                let now = Instant::now();
                while w
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
                {
                    w.pop_front();
                }
                let used_tokens: u64 = w.iter().map(|(_, t)| t).sum();
                let rpm_ok = self.rpm == 0 || (w.len() as u32) < self.rpm;
                // A single request larger than the TPM limit is let through alone.
                let tpm_ok =
                    self.tpm == 0 || used_tokens + tokens <= self.tpm as u64 || w.is_empty();
                if rpm_ok && tpm_ok {
                    w.push_back((now, tokens));
                    return;
                }
                w.front()
                    .map(|(t, _)| Duration::from_secs(60).saturating_sub(now.duration_since(*t)))
                    .unwrap_or_default()
            };
            tokio::time::sleep(wait.max(Duration::from_millis(5))).await;
        }
    }
}

/// Retries with full-jitter exponential backoff, never sooner than a server's `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let jittered = exp.mul_f64(rand::random::<f64>());
        match retry_after {
            Some(ra) => ra.max(jittered),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_admits_until_the_limit_counting_reservations() {
        let b = Budget::new(Some(2), None, Some(1.0));
        b.admit(10, 0.4).unwrap();
        b.admit(10, 0.4).unwrap();
        assert_eq!(b.admit(10, 0.1).unwrap_err().what, "calls");
        b.settle(10, 0.4, 1, 12, 0.5);
        b.settle(10, 0.4, 1, 12, 0.5);
        let s = b.spent();
        assert_eq!((s.calls, s.tokens, s.reserved_calls), (2, 24, 0));
        let d = Budget::new(None, None, Some(1.0));
        d.preload(0, 0, 0.9);
        assert_eq!(d.admit(1, 0.2).unwrap_err().what, "dollars");
        d.admit(1, 0.05).unwrap();
    }

    #[test]
    fn retry_delay_respects_retry_after_and_cap() {
        let p = RetryPolicy::default();
        for a in 1..10 {
            assert!(p.delay(a, None) <= p.cap);
            assert!(p.delay(a, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        }
    }

    /// When each of `tokens.len()` requests got through a limiter (virtual seconds since start).
    async fn admitted_at(r: RateLimiter, tokens: &[u64]) -> Vec<f64> {
        let t0 = Instant::now();
        let mut at = vec![];
        for &t in tokens {
            r.acquire(t).await;
            at.push(t0.elapsed().as_secs_f64());
        }
        at
    }

    // Paused time: sleeps are virtual and the runtime jumps to the next timer, so the admission
    // times are exact. A limiter that does nothing admits everything at 0 and fails these.
    #[tokio::test(start_paused = true)]
    async fn rpm_limit_spaces_requests() {
        let at = admitted_at(RateLimiter::new(2, 0), &[1, 1, 1, 1, 1]).await;
        // two a minute: the third waits until the first leaves the 60 s window
        assert_eq!(at[..2], [0.0, 0.0]);
        assert!((60.0..60.1).contains(&at[2]), "{at:?}");
        assert!((60.0..60.1).contains(&at[3]), "{at:?}");
        assert!((120.0..120.2).contains(&at[4]), "{at:?}");
        // no limit: nobody waits
        let free = admitted_at(RateLimiter::new(0, 0), &[1; 5]).await;
        assert!(free.iter().all(|&t| t == 0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_limit_waits_for_tokens_to_leave_the_window() {
        let at = admitted_at(RateLimiter::new(0, 100), &[60, 30, 20, 50, 500]).await;
        // 60 + 30 fit; 20 more would make 110: wait until both leave the window (t = 60), then
        // 20 + 50 fit; the 500, larger than the limit, goes alone once the window is empty
        assert_eq!(at[..2], [0.0, 0.0]);
        assert!((60.0..60.1).contains(&at[2]), "{at:?}");
        assert!((60.0..60.1).contains(&at[3]), "{at:?}");
        assert!((120.0..120.2).contains(&at[4]), "{at:?}");
    }
}
