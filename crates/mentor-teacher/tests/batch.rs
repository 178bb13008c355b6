//! The batch route against the loopback server's Batch API (`/v1/files`, `/v1/batches`):
//! results land in the ledger at the batch rate and the cache serves them; a stopped run
//! re-attaches without submitting again; failed and expired rows are recorded and asked online.

use mentor_store::Store;
use mentor_teacher::loopback::{BatchBehaviour, Fault, LoopbackConfig, LoopbackServer};
use mentor_teacher::openai::OpenAiBackend;
use mentor_teacher::{
    BatchApi, BatchPolling, Budget, ChatRequest, Message, Pricing, Teacher, TeacherOptions,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn teacher(server: &LoopbackServer, store: &Arc<Mutex<Store>>) -> Teacher {
    let backend = OpenAiBackend::new(
        &server.base_url,
        "loopback-model",
        None,
        serde_json::Value::Null,
        Duration::from_secs(5),
    )
    .unwrap();
    let mut opts = TeacherOptions::new("t");
    opts.pricing = Pricing::with_batch_discount(1.0, 2.0);
    Teacher::new(
        opts,
        Arc::new(backend),
        store.clone(),
        Arc::new(Budget::default()),
    )
}

fn reqs(n: usize) -> Vec<ChatRequest> {
    (0..n)
        .map(|i| ChatRequest {
            max_tokens: Some(32),
            ..ChatRequest::new(vec![Message::user(format!("question {i}"))])
        })
        .collect()
}

const FAST: BatchPolling = BatchPolling {
    initial: Duration::from_millis(20),
    max: Duration::from_millis(100),
};

fn store() -> (tempfile::TempDir, Arc<Mutex<Store>>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("s.sqlite")).unwrap();
    (dir, Arc::new(Mutex::new(s)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_completes_into_the_ledger_at_the_batch_rate_and_the_cache_serves_it() {
    let server = LoopbackServer::start(LoopbackConfig {
        batch: BatchBehaviour {
            latency: Duration::from_millis(150),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let (_d, store) = store();
    let t = teacher(&server, &store);
    let mut rs = reqs(10);
    rs.push(rs[3].clone()); // a repeated request is sent once
    let mut polls = 0;
    let rep = t
        .prefetch_batch(&rs, FAST, &AtomicBool::new(false), |_, _, _| polls += 1)
        .await
        .unwrap();
    assert_eq!(
        (rep.requested, rep.returned, rep.failed),
        (10, 10, 0),
        "{rep:?}"
    );
    assert!(polls >= 2, "the batch was in progress at first: {polls}");
    assert_eq!(server.stats.batches_created.load(Ordering::SeqCst), 1);
    assert!(server.stats.batch_rows().values().all(|&n| n == 1));
    let online_before = server.stats.requests.load(Ordering::SeqCst);
    for r in &rs {
        let c = t.complete(r).await.unwrap();
        assert!(c.cached, "answered from the batch's results");
        assert!(c.text.contains("The answer is 42"), "{}", c.text);
        let want =
            Pricing::with_batch_discount(1.0, 2.0).batch_cost(c.prompt_tokens, c.completion_tokens);
        assert!((c.cost_usd - want).abs() < 1e-12 && c.cost_usd > 0.0);
    }
    assert_eq!(
        server.stats.requests.load(Ordering::SeqCst),
        online_before,
        "nothing went online"
    );
    let ledger = store.lock().unwrap().ledger().unwrap();
    assert_eq!((ledger[0].calls_ok, ledger[0].calls_batch), (10, 10));
    // a second pass has nothing to submit
    let rep = t
        .prefetch_batch(&rs, FAST, &AtomicBool::new(false), |_, _, _| {})
        .await
        .unwrap();
    assert_eq!((rep.requested, rep.reattached), (0, 0));
    assert_eq!(server.stats.batches_created.load(Ordering::SeqCst), 1);
}

/// Stopped while the provider works (as a killed run is), relaunched: the new teacher, on the
/// same store, re-attaches to the open batch and submits nothing again — also when the first
/// run died between the provider's acceptance and recording it (found by its tag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_reattaches_and_never_submits_twice() {
    let server = LoopbackServer::start(LoopbackConfig {
        batch: BatchBehaviour {
            latency: Duration::from_millis(600),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let (_d, store) = store();
    let rs = reqs(8);
    let stop = Arc::new(AtomicBool::new(false));
    let first = teacher(&server, &store);
    let s2 = stop.clone();
    let rep = first
        .prefetch_batch(&rs, FAST, &stop, move |_, st, _| {
            assert!(!st.ended);
            s2.store(true, Ordering::SeqCst); // stop at the first poll
        })
        .await
        .unwrap();
    assert!(rep.stopped.is_some() && rep.returned == 0, "{rep:?}");
    assert_eq!(store.lock().unwrap().open_batches("t").unwrap().len(), 1);
    let again = teacher(&server, &store);
    let rep = again
        .prefetch_batch(&rs, FAST, &AtomicBool::new(false), |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (rep.requested, rep.reattached, rep.returned),
        (0, 8, 8),
        "{rep:?}"
    );
    assert_eq!(server.stats.batches_created.load(Ordering::SeqCst), 1);
    assert!(store.lock().unwrap().open_batches("t").unwrap().is_empty());

    // died after the provider accepted a batch, before its id was recorded
    let more = reqs(12)[8..].to_vec();
    let t = teacher(&server, &store);
    let rows: Vec<mentor_store::BatchRow> = more
        .iter()
        .map(|r| mentor_store::BatchRow {
            custom_id: t.request_hash(r),
            request_hash: t.request_hash(r),
            request: "{}".into(),
        })
        .collect();
    store
        .lock()
        .unwrap()
        .open_batch("lost-tag", "t", &rows)
        .unwrap();
    let backend = OpenAiBackend::new(
        &server.base_url,
        "loopback-model",
        None,
        serde_json::Value::Null,
        Duration::from_secs(5),
    )
    .unwrap();
    let submitted: Vec<(String, ChatRequest)> = more
        .iter()
        .map(|r| (t.request_hash(r), r.clone()))
        .collect();
    backend.submit("lost-tag", &submitted).await.unwrap();
    let rep = t
        .prefetch_batch(&more, FAST, &AtomicBool::new(false), |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (rep.requested, rep.reattached, rep.returned),
        (0, 4, 4),
        "{rep:?}"
    );
    assert_eq!(server.stats.batches_created.load(Ordering::SeqCst), 2);
    assert!(
        server.stats.batch_rows().values().all(|&n| n == 1),
        "no request submitted twice"
    );
}

/// Rows that fail in the batch, or expire with it, are recorded failed with their reason, never
/// dropped; the online path then answers them at the online rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_expired_rows_are_kept_and_asked_online() {
    let server = LoopbackServer::start(LoopbackConfig {
        // "question 1" fails its first attempt (in the batch), then answers online
        faults: Arc::new(|p, a| {
            if p == "question 1" && a == 0 {
                Fault::ServerError
            } else {
                Fault::None
            }
        }),
        batch: BatchBehaviour {
            latency: Duration::from_millis(50),
            expire_after: Some(7),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let (_d, store) = store();
    let t = teacher(&server, &store);
    let rs = reqs(10);
    let rep = t
        .prefetch_batch(&rs, FAST, &AtomicBool::new(false), |_, _, _| {})
        .await
        .unwrap();
    // rows 7, 8, 9 expired; row 1 failed
    assert_eq!(
        (rep.requested, rep.returned, rep.failed),
        (10, 6, 4),
        "{rep:?}"
    );
    assert!(
        rep.failures.iter().any(|f| f.contains("batch_expired")),
        "{rep:?}"
    );
    assert!(
        rep.failures.iter().any(|f| f.contains("server_error")),
        "{rep:?}"
    );
    let ledger = store.lock().unwrap().ledger().unwrap();
    assert_eq!((ledger[0].calls_ok, ledger[0].calls_failed), (6, 4));
    for (i, r) in rs.iter().enumerate() {
        let c = t.complete(r).await.unwrap();
        assert_eq!(c.cached, ![1, 7, 8, 9].contains(&i), "row {i}");
        if !c.cached {
            let online =
                Pricing::with_batch_discount(1.0, 2.0).cost(c.prompt_tokens, c.completion_tokens);
            assert!(
                (c.cost_usd - online).abs() < 1e-12,
                "row {i} is priced online"
            );
        }
    }
    assert!(
        server.stats.answered().values().all(|&n| n == 1),
        "nothing paid twice"
    );
}

/// The same route through Anthropic's Message Batches: answers into the cache at the batch rate,
/// an errored and an expired row recorded with their reason and left uncached for the online
/// path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_message_batches_take_the_same_route() {
    use mentor_teacher::anthropic::AnthropicBackend;
    let server = LoopbackServer::start(LoopbackConfig {
        faults: Arc::new(|p, a| {
            if p == "question 2" && a == 0 {
                Fault::ServerError
            } else {
                Fault::None
            }
        }),
        batch: BatchBehaviour {
            latency: Duration::from_millis(100),
            expire_after: Some(5),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let (_d, store) = store();
    let base = server.base_url.trim_end_matches("/v1").to_string();
    let backend = AnthropicBackend::new(
        &base,
        "claude-3-5-haiku-20241022",
        None,
        serde_json::Value::Null,
        Duration::from_secs(5),
    )
    .unwrap();
    let mut opts = TeacherOptions::new("claude");
    opts.pricing = Pricing::with_batch_discount(1.0, 2.0);
    let t = Teacher::new(
        opts,
        Arc::new(backend),
        store.clone(),
        Arc::new(Budget::default()),
    );
    let rs = reqs(6);
    let rep = t
        .prefetch_batch(&rs, FAST, &AtomicBool::new(false), |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        (rep.requested, rep.returned, rep.failed),
        (6, 4, 2),
        "{rep:?}"
    );
    assert!(
        rep.failures.iter().any(|f| f.contains("expired")),
        "{rep:?}"
    );
    assert!(
        rep.failures.iter().any(|f| f.contains("api_error: boom")),
        "{rep:?}"
    );
    assert_eq!(server.stats.batches_created.load(Ordering::SeqCst), 1);
    for (i, r) in rs.iter().enumerate() {
        let c = t.cached(r).unwrap();
        assert_eq!(c.is_some(), ![2, 5].contains(&i), "row {i}");
        if let Some(c) = c {
            assert!(c.text.contains("The answer is 42"), "{}", c.text);
            assert_eq!(c.finish_reason.as_deref(), Some("end_turn"));
            let want = Pricing::with_batch_discount(1.0, 2.0)
                .batch_cost(c.prompt_tokens, c.completion_tokens);
            assert!((c.cost_usd - want).abs() < 1e-12 && c.cost_usd > 0.0);
        }
    }
}
