//! The call path against a real HTTP server on 127.0.0.1 with injected faults.

use mentor_store::Store;
use mentor_teacher::loopback::{Fault, LoopbackConfig, LoopbackServer};
use mentor_teacher::openai::OpenAiBackend;
use mentor_teacher::{
    ApiKey, Budget, ChatRequest, Message, RetryPolicy, Teacher, TeacherError, TeacherOptions,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Rig {
    server: LoopbackServer,
    store: Arc<Mutex<Store>>,
    _dir: tempfile::TempDir,
}

async fn rig(cfg: LoopbackConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Mutex::new(
        Store::open(dir.path().join("s.sqlite")).unwrap(),
    ));
    Rig {
        server: LoopbackServer::start(cfg).await.unwrap(),
        store,
        _dir: dir,
    }
}

fn teacher(r: &Rig, budget: Budget, key: Option<ApiKey>, in_flight: usize) -> Teacher {
    let backend = OpenAiBackend::new(
        &r.server.base_url,
        "loopback-model",
        key,
        serde_json::Value::Null,
        Duration::from_millis(400),
    )
    .unwrap();
    let mut opts = TeacherOptions::new("t");
    opts.retry = RetryPolicy {
        max_retries: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
    };
    opts.max_in_flight = in_flight;
    opts.pricing.input_per_mtok = 1.0;
    opts.pricing.output_per_mtok = 2.0;
    Teacher::new(opts, Arc::new(backend), r.store.clone(), Arc::new(budget))
}

fn req(p: &str) -> ChatRequest {
    ChatRequest {
        max_tokens: Some(32),
        ..ChatRequest::new(vec![Message::user(p)])
    }
}

fn plan(f: impl Fn(&str, u32) -> Fault + Send + Sync + 'static) -> LoopbackConfig {
    LoopbackConfig {
        faults: Arc::new(f),
        ..Default::default()
    }
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let r = rig(plan(|_, a| {
        if a == 0 {
            Fault::TooManyRequests { retry_after_s: 0.3 }
        } else {
            Fault::None
        }
    }))
    .await;
    let t = teacher(&r, Budget::default(), None, 4);
    let t0 = Instant::now();
    let c = t.complete(&req("q")).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "waited {:?}",
        t0.elapsed()
    );
    assert_eq!((c.attempts, c.cached), (2, false));
    assert!(c.text.contains("The answer is 42"));
    assert!(c.cost_usd > 0.0);
}

#[tokio::test]
async fn every_transient_fault_is_retried_then_answered() {
    for fault in [
        Fault::ServerError,
        Fault::TruncatedJson,
        Fault::EmptyChoices,
        Fault::WrongContentType,
        Fault::Hang,
    ] {
        let f = fault.clone();
        let r = rig(plan(
            move |_, a| if a == 0 { f.clone() } else { Fault::None },
        ))
        .await;
        let t = teacher(&r, Budget::default(), None, 4);
        let c = t
            .complete(&req("q"))
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(c.attempts, 2, "{fault:?}");
        assert_eq!(r.server.stats.answered()["q"], 1, "{fault:?}");
    }
}

#[tokio::test]
async fn persistent_faults_are_recorded_as_failed_with_reason_and_body() {
    for (fault, reason, body) in [
        (Fault::ServerError, "HTTP 500", Some("boom")),
        (
            Fault::TruncatedJson,
            "not valid JSON",
            Some("{\"choices\":[{"),
        ),
        (Fault::EmptyChoices, "no choices", Some("\"choices\":[]")),
        (Fault::WrongContentType, "text/html", Some("Bad Gateway")),
        (Fault::Hang, "timed out", None),
    ] {
        let f = fault.clone();
        let r = rig(plan(move |_, _| f.clone())).await;
        let t = teacher(&r, Budget::default(), None, 4);
        let err = t.complete(&req("q")).await.unwrap_err();
        let TeacherError::Failed {
            call_id,
            attempts,
            reason: why,
            ..
        } = err
        else {
            panic!("{fault:?}: {err}")
        };
        assert_eq!(attempts, 4, "{fault:?}: 1 + max_retries");
        assert!(why.contains(reason), "{fault:?}: {why}");
        let store = r.store.lock().unwrap();
        let (status, error, raw): (String, String, Option<String>) = store
            .connection()
            .query_row(
                "SELECT status, error, raw_response FROM teacher_calls WHERE id = ?1",
                [call_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(status, "failed");
        assert!(error.contains(reason));
        match body {
            Some(b) => assert!(
                raw.as_deref().unwrap_or("").contains(b),
                "{fault:?}: raw {raw:?}"
            ),
            None => assert!(raw.is_none()),
        }
        assert_eq!(store.ledger().unwrap()[0].calls_failed, 1);
    }
}

#[tokio::test]
async fn a_bad_request_is_not_retried() {
    let r = rig(plan(|_, _| Fault::BadRequest)).await;
    let t = teacher(&r, Budget::default(), None, 4);
    match t.complete(&req("q")).await.unwrap_err() {
        TeacherError::Failed {
            attempts, reason, ..
        } => {
            assert_eq!(attempts, 1);
            assert!(reason.contains("400"));
        }
        e => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_cached_call_is_never_sent_again_even_after_restart() {
    let r = rig(LoopbackConfig::default()).await;
    let t = teacher(&r, Budget::default(), None, 4);
    let first = t.complete(&req("q")).await.unwrap();
    let again = t.complete(&req("q")).await.unwrap();
    assert!(again.cached && again.text == first.text && again.call_id == first.call_id);
    // a new teacher over the same store: a resumed run
    let t2 = teacher(&r, Budget::default(), None, 4);
    assert!(t2.complete(&req("q")).await.unwrap().cached);
    let mut other_sample = req("q");
    other_sample.sample_index = 1;
    assert!(
        !t2.complete(&other_sample).await.unwrap().cached,
        "sample 1 is a different call"
    );
    assert_eq!(r.server.stats.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_budget_stops_sending_at_the_limit() {
    let r = rig(LoopbackConfig::default()).await;
    let t = teacher(&r, Budget::new(Some(3), None, None), None, 4);
    let mut ok = 0;
    let mut stopped = 0;
    for i in 0..6 {
        match t.complete(&req(&format!("q{i}"))).await {
            Ok(_) => ok += 1,
            Err(TeacherError::Budget(b)) => {
                assert_eq!(b.what, "calls");
                stopped += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, stopped), (3, 3));
    assert_eq!(r.server.stats.requests.load(Ordering::SeqCst), 3);
    // dollars: each call is estimated before sending
    let r = rig(LoopbackConfig::default()).await;
    let t = teacher(&r, Budget::new(None, None, Some(0.0002)), None, 4);
    let mut sent = 0;
    for i in 0..10 {
        if t.complete(&req(&format!("d{i}"))).await.is_ok() {
            sent += 1;
        }
    }
    assert!((1..10).contains(&sent), "sent {sent}");
    let spent = r.store.lock().unwrap().ledger().unwrap()[0].cost_usd;
    assert!(spent <= 0.0002 + 1e-12, "spent {spent}");
}

#[tokio::test]
async fn max_in_flight_bounds_concurrency() {
    let r = rig(LoopbackConfig {
        latency: Duration::from_millis(60),
        ..Default::default()
    })
    .await;
    let t = Arc::new(teacher(&r, Budget::default(), None, 3));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..15 {
        let t = t.clone();
        set.spawn(async move { t.complete(&req(&format!("p{i}"))).await.unwrap() });
    }
    while let Some(res) = set.join_next().await {
        res.unwrap();
    }
    assert_eq!(r.server.stats.peak_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_api_key_is_sent_but_never_stored() {
    let key = "sk-test-MENTOR-7f3a9c1e55d2";
    // SAFETY: unique variable name; no other test reads it.
    unsafe { std::env::set_var("MENTOR_TEST_KEY_CALL_PATH", key) };
    let r = rig(LoopbackConfig {
        require_key: Some(key.into()),
        ..Default::default()
    })
    .await;
    let api_key = ApiKey::from_env("MENTOR_TEST_KEY_CALL_PATH").unwrap();
    assert!(!format!("{api_key:?}").contains("MENTOR-7f3a"));
    let t = teacher(&r, Budget::default(), Some(api_key), 2);
    t.complete(&req("q")).await.unwrap();
    assert_eq!(r.server.stats.unauthorized.load(Ordering::SeqCst), 0);
    // without the key the server refuses, and the failure is recorded without any key in it
    let t_nokey = teacher(&r, Budget::default(), None, 2);
    assert!(t_nokey.complete(&req("other")).await.is_err());
    let dir = r._dir.path().to_path_buf();
    drop(t);
    drop(t_nokey);
    let mut text = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        text.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let hay = String::from_utf8_lossy(&text);
    assert!(hay.contains("loopback-model"), "the store files were read");
    assert!(
        !hay.contains("MENTOR-7f3a9c1e55d2"),
        "key found in the run store"
    );
}
