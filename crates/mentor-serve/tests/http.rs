//! The server over real HTTP on 127.0.0.1 with a tiny random model: answers match the library's
//! own generation (alone and batched), streams add up to the same text, bad requests get
//! OpenAI-style 4xx bodies and leave the server working, the open-request bound answers 429 to
//! real concurrent requests, a client leaving mid-stream gives its place back, a request the
//! model fails on is a 500 (or an error event in a stream) that spares the requests batched with
//! it, and every /v1 route wants the key when one is set.

use candle_core::Device;
use mentor_model::load::Student;
use mentor_model::{generate, Llama, LlamaConfig, SamplingParams, TextTokenizer};
use mentor_serve::ServeConfig;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn words() -> TextTokenizer {
    let mut t = TextTokenizer::word_level(40);
    t.chat_template = Some("{% for m in messages %}{{ m.content }} {% endfor %}".into());
    t
}

struct Server {
    base: String,
    stats: Arc<mentor_serve::engine::EngineStats>,
    reference: Llama,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(cfg: ServeConfig) -> Server {
    start_with(cfg, 40).await
}

/// A server whose model has `model_vocab` embeddings for the tokenizer's 40 words: fewer, and
/// a prompt with a word past them fails inside the model, a real decode error.
async fn start_with(cfg: ServeConfig, model_vocab: usize) -> Server {
    // the same seeded weights twice: one serves, one answers directly (seeded: random weights
    // could put two logits within float rounding of each other)
    let lcfg = LlamaConfig::tiny(model_vocab);
    let seeded = || Student::random(&lcfg, &Device::Cpu, 17).unwrap().model;
    let (model, reference) = (seeded(), seeded());
    let (router, stats) = mentor_serve::app(model, words(), cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(mentor_serve::serve(listener, router, async {
        let _ = rx.await;
    }));
    Server {
        base,
        stats,
        reference,
        shutdown: Some(tx),
        handle,
    }
}

async fn post(base: &str, path: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

impl Server {
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        post(&self.base, path, body).await
    }

    /// The library's greedy answer for `prompt`, from the same weights.
    fn direct(&self, prompt: &str, max_tokens: usize) -> String {
        let tok = words();
        let ids = tok.encode(prompt).unwrap();
        let p = SamplingParams {
            max_new_tokens: max_tokens,
            ..Default::default()
        };
        generate(&self.reference, &tok, &[(ids, p)], 1, &mut |_| {}).unwrap()[0]
            .text
            .clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_library_alone_and_batched() {
    // a generous gathering window, so the concurrent requests below surely share a batch
    let s = start(ServeConfig {
        batch_wait: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let prompts: Vec<String> = (0..6)
        .map(|i| format!("w{} w{} w{}", i, i + 3, (i * 7) % 30))
        .collect();
    // one at a time
    let (status, one) = s
        .post(
            "/v1/completions",
            &json!({"prompt": prompts[0], "max_tokens": 12, "temperature": 0}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["object"], "text_completion");
    assert_eq!(one["choices"][0]["text"], s.direct(&prompts[0], 12));
    assert_eq!(one["usage"]["prompt_tokens"], 3);
    let completion = one["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=12).contains(&completion), "{one}");
    // all at once: they share decode steps and still answer exactly as alone
    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let body = json!({"model": "student", "prompt": p, "max_tokens": 12, "temperature": 0});
            let base = s.base.clone();
            tokio::spawn(async move { post(&base, "/v1/completions", &body.to_string()).await })
        })
        .collect();
    let mut replies = vec![];
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    for (p, (status, r)) in prompts.iter().zip(&replies) {
        assert_eq!(*status, 200, "{r}");
        assert_eq!(r["choices"][0]["text"], s.direct(p, 12), "{p}");
    }
    assert!(
        s.stats.peak_batch.load(Ordering::SeqCst) > 1,
        "concurrent requests never shared a batch"
    );
    let (status, health) = get(&s, "/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(health["open_requests"], 0);
}

async fn get(s: &Server, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{}{path}", s.base)).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The `data:` payloads of an SSE body.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_stream_adds_up_to_the_whole_answer() {
    let s = start(ServeConfig::default()).await;
    let body = json!({"messages": [{"role": "system", "content": "w1 w2"}, {"role": "user", "content": "w5 w6"}],
                      "max_tokens": 10, "temperature": 0});
    let (status, whole) = s.post("/v1/chat/completions", &body.to_string()).await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
    let text = whole["choices"][0]["message"]["content"].as_str().unwrap();
    // the template renders "w1 w2 w5 w6 "
    assert_eq!(text, s.direct("w1 w2 w5 w6 ", 10));
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let ev = events(&r.text().await.unwrap());
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text);
    let finish = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        finish,
        vec![whole["choices"][0]["finish_reason"].as_str().unwrap()]
    );
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage, &whole["usage"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let s = start(ServeConfig::default()).await;
    let cases: [(&str, &str, u16, Option<&str>); 7] = [
        ("/v1/chat/completions", "{\"messages\": [", 400, None),
        ("/v1/chat/completions", "[1, 2]", 400, None),
        (
            "/v1/chat/completions",
            r#"{"model": "gpt-9", "messages": [{"role": "user", "content": "w1"}]}"#,
            404,
            Some("model_not_found"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "w1", "max_tokens": 100000}"#,
            400,
            Some("context_length_exceeded"),
        ),
        (
            "/v1/completions",
            r#"{"prompt": "w1", "temperature": -1}"#,
            400,
            None,
        ),
        (
            "/v1/completions",
            r#"{"prompt": "w1", "top_p": 7}"#,
            400,
            None,
        ),
        (
            "/v1/embeddings",
            r#"{"input": "w1"}"#,
            404,
            Some("unknown_url"),
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, err) = s.post(path, body).await;
        assert_eq!(got, status, "{path} {body}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        assert!(err["error"]["type"].is_string(), "{err}");
        assert_eq!(err["error"]["code"].as_str(), code, "{err}");
    }
    let (status, ok) = s
        .post("/v1/completions", r#"{"prompt": "w3 w4", "max_tokens": 3}"#)
        .await;
    assert_eq!(status, 200, "{ok}");
    let (status, models) = get(&s, "/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "student");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_open_request_bound_the_answer_is_429() {
    let s = start(ServeConfig {
        max_batch: 1,
        max_queue: 0,
        ..Default::default()
    })
    .await;
    // one request in flight takes the only place (taken here directly: a tiny model answers
    // too fast for a real request to be caught in flight)
    s.stats.open.fetch_add(1, Ordering::SeqCst);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/completions", s.base))
        .json(&json!({"prompt": "w2", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        s.stats.open.load(Ordering::SeqCst),
        1,
        "a refused request holds no place"
    );
    s.stats.open.fetch_sub(1, Ordering::SeqCst);
    let (status, ok) = s
        .post("/v1/completions", r#"{"prompt": "w2", "max_tokens": 2}"#)
        .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        s.stats.open.load(Ordering::SeqCst),
        0,
        "the answered request left its place"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_required_when_set_and_never_echoed() {
    let s = start(ServeConfig {
        api_key: Some("sk-serve-secret".into()),
        ..Default::default()
    })
    .await;
    let c = reqwest::Client::new();
    let url = format!("{}/v1/completions", s.base);
    let body = json!({"prompt": "w1", "max_tokens": 2});
    let r = c
        .post(&url)
        .bearer_auth("sk-wrong-guess")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-wrong-guess") && !text.contains("sk-serve-secret"));
    let r = c
        .post(&url)
        .bearer_auth("sk-serve-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&s, "/health").await.0, 200, "health needs no key");
    // every /v1 route asks for it: the model list too
    let models = format!("{}/v1/models", s.base);
    let r = c.get(&models).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"]["message"].is_string(), "{err}");
    let r = c
        .get(&models)
        .bearer_auth("sk-wrong-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(&models)
        .bearer_auth("sk-serve-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_open_request_finish() {
    let mut s = start(ServeConfig::default()).await;
    let url = format!("{}/v1/completions", s.base);
    let open = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&json!({"prompt": "w1 w2", "max_tokens": 30, "stream": true}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    // wait until the request is in
    for _ in 0..500 {
        if s.stats.open.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    s.shutdown.take().unwrap().send(()).unwrap();
    let body = open.await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    s.handle.await.unwrap().unwrap();
}

/// The open-request bound with real requests: with room for two and the decode thread holding
/// the first request while it waits for a batch mate (`batch_wait`), two more sent at once race
/// for the last place — one is answered, the other gets 429 with `Retry-After` — and every place
/// is given back. The race is real (the winner's batch may finish before the loser's request
/// lands, on a loaded machine), so it is run until it is seen, and never may a request get
/// anything but 200 or 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_requests_for_the_last_place_get_one_answer_and_one_429() {
    let s = start(ServeConfig {
        max_batch: 2,
        max_queue: 0,
        batch_wait: std::time::Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let send = |base: String, client: reqwest::Client| async move {
        let r = client
            .post(format!("{base}/v1/completions"))
            .json(&json!({"prompt": "w1 w2", "max_tokens": 60}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let _ = r.text().await;
        (status, retry)
    };
    let mut refused = None;
    for _ in 0..30 {
        let first = tokio::spawn(send(s.base.clone(), client.clone()));
        // the first request is in, held by the decode thread waiting for a batch mate
        for _ in 0..2000 {
            if s.stats.open.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(s.stats.open.load(Ordering::SeqCst), 1);
        let (b, c) = tokio::join!(
            send(s.base.clone(), client.clone()),
            send(s.base.clone(), client.clone())
        );
        assert_eq!(first.await.unwrap().0, 200);
        for r in [&b, &c] {
            assert!(r.0 == 200 || r.0 == 429, "{r:?}");
        }
        assert!(
            b.0 == 200 || c.0 == 200,
            "one of the two always gets the place: {b:?} {c:?}"
        );
        for _ in 0..2000 {
            if s.stats.open.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(
            s.stats.open.load(Ordering::SeqCst),
            0,
            "every place given back"
        );
        if let Some(r) = [b, c].into_iter().find(|r| r.0 == 429) {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("no request was ever refused at the bound");
    assert_eq!(refused.1.as_deref(), Some("1"));
}

/// A client that goes away mid-stream gives its place back; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_gives_its_place_back() {
    let s = start(ServeConfig {
        max_batch: 1,
        max_queue: 0,
        ..Default::default()
    })
    .await;
    let url = format!("{}/v1/completions", s.base);
    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({"prompt": "w1 w2", "max_tokens": 40, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(r); // the client hangs up without reading the stream
    for _ in 0..2000 {
        if s.stats.open.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(s.stats.open.load(Ordering::SeqCst), 0);
    // with room for one, a new request is answered
    let (status, ok) = s
        .post("/v1/completions", r#"{"prompt": "w2", "max_tokens": 2}"#)
        .await;
    assert_eq!(status, 200, "{ok}");
}

/// A prompt the model cannot run (a word past its embeddings: `index-select` fails inside the
/// forward) answers 500 with an OpenAI `server_error`, in a stream as an error event before
/// `[DONE]`; a good request that arrived in the same batch is still answered, exactly, and the
/// server keeps serving with no place left taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_model_fails_on_is_a_500_that_spares_its_batch() {
    let s = start_with(
        ServeConfig {
            batch_wait: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        20,
    )
    .await;
    // w30 is token 32, past the model's 20 embeddings; w1 w2 are tokens 3 and 4
    let (status, alone) = s
        .post(
            "/v1/completions",
            r#"{"prompt": "w1 w30", "max_tokens": 4}"#,
        )
        .await;
    assert_eq!(status, 500, "{alone}");
    assert_eq!(alone["error"]["type"], "server_error", "{alone}");
    assert!(
        alone["error"]["message"]
            .as_str()
            .unwrap()
            .contains("index"),
        "{alone}"
    );
    // the error's line, never a backtrace (candle attaches one under RUST_BACKTRACE)
    assert!(
        !alone["error"]["message"].as_str().unwrap().contains('\n'),
        "{alone}"
    );

    // a bad and a good request gathered into one batch: only the bad one fails
    let send = |prompt: &'static str| {
        let base = s.base.clone();
        let body = json!({"prompt": prompt, "max_tokens": 6, "temperature": 0}).to_string();
        tokio::spawn(async move { post(&base, "/v1/completions", &body).await })
    };
    let (bad, good) = (send("w30 w2"), send("w1 w2"));
    let (bad, good) = (bad.await.unwrap(), good.await.unwrap());
    assert_eq!(bad.0, 500, "{}", bad.1);
    assert_eq!(good.0, 200, "{}", good.1);
    assert_eq!(good.1["choices"][0]["text"], s.direct("w1 w2", 6));
    assert!(s.stats.batches.load(Ordering::SeqCst) >= 2);

    // streamed: the headers are gone before the failure, so it travels as an event
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&json!({"messages": [{"role": "user", "content": "w31"}], "max_tokens": 4, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ev = events(&r.text().await.unwrap());
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"), "{ev:?}");
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["type"], "server_error", "{err}");

    let (status, health) = get(&s, "/health").await;
    assert_eq!((status, health["open_requests"].as_u64()), (200, Some(0)));
    let (status, ok) = s
        .post("/v1/completions", r#"{"prompt": "w2 w3", "max_tokens": 2}"#)
        .await;
    assert_eq!(status, 200, "{ok}");
}

/// Opt-in load soak (`MENTOR_SOAK_REQUESTS=20000 cargo test --release -p mentor-serve --test
/// http -- --ignored --nocapture`): seeded random requests — raw bytes, broken JSON, JSON of the
/// wrong shape, valid requests with extreme settings, streams, unknown routes — 16 at a time.
/// Every one is answered with a completion or a JSON error (never a dropped connection), the
/// server stays up, no place stays taken, and the process's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a soak: run with --ignored"]
async fn random_and_malformed_requests_under_load_are_all_answered() {
    use rand::{Rng, SeedableRng};
    let total: usize = std::env::var("MENTOR_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let s = start(ServeConfig {
        max_batch: 8,
        max_queue: 8,
        ..Default::default()
    })
    .await;
    let rss_kb = || -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    };
    let body = |rng: &mut rand::rngs::StdRng| -> (String, Vec<u8>) {
        let words: String = (0..rng.random_range(0..12))
            .map(|_| format!("w{} ", rng.random_range(0..45)))
            .collect();
        let path =
            ["/v1/completions", "/v1/chat/completions", "/v1/nothing"][rng.random_range(0..3)];
        let b = match rng.random_range(0..8) {
            0 => (0..rng.random_range(0..200)).map(|_| rng.random::<u8>()).collect(),
            1 => br#"{"prompt": "w1", "max_tokens": "#.to_vec(),
            2 => json!({"messages": 7, "prompt": [1, 2]}).to_string().into_bytes(),
            3 => json!({"prompt": words, "max_tokens": rng.random_range(-5i64..200), "temperature": rng.random_range(-1.0..3.0)}).to_string().into_bytes(),
            4 => json!({"messages": [{"role": "user", "content": words}], "max_tokens": 4, "stream": true}).to_string().into_bytes(),
            5 => json!({"messages": [{"role": "robot", "content": words}], "top_p": rng.random_range(0.0..2.0)}).to_string().into_bytes(),
            6 => json!({"prompt": words, "max_tokens": 3, "n": rng.random_range(0..4)}).to_string().into_bytes(),
            _ => json!({"prompt": words, "max_tokens": rng.random_range(1..6), "stream": rng.random::<bool>()}).to_string().into_bytes(),
        };
        (path.to_string(), b)
    };
    let client = reqwest::Client::new();
    let before = rss_kb();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let started = std::time::Instant::now();
    let mut latencies = vec![];
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut peak = 0;
    for chunk in 0..total.div_ceil(16) {
        let mut tasks = vec![];
        for _ in 0..16.min(total - chunk * 16) {
            let (path, b) = body(&mut rng);
            let (c, url) = (client.clone(), format!("{}{path}", s.base));
            tasks.push(tokio::spawn(async move {
                let t = std::time::Instant::now();
                let sent = b.clone();
                let r = c
                    .post(url)
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let sse = r
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "text/event-stream");
                let text = r.text().await.unwrap();
                if status >= 500 {
                    eprintln!("5xx for {}: {text}", String::from_utf8_lossy(&sent));
                }
                if sse {
                    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
                } else {
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{status} not JSON ({e}): {text}"));
                    assert!(
                        status == 200 || v["error"]["message"].is_string(),
                        "{status}: {text}"
                    );
                }
                (status, t.elapsed())
            }));
        }
        for t in tasks {
            let (status, dt) = t.await.unwrap();
            *statuses.entry(status).or_default() += 1;
            latencies.push(dt);
        }
        peak = peak.max(rss_kb());
    }
    latencies.sort();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let after = rss_kb();
    eprintln!(
        "serve soak: {total} requests in {:.1} s, statuses {statuses:?}, p50 {:.2} ms, p99 {:.2} ms, RSS {} → {} MB (peak {} MB)",
        started.elapsed().as_secs_f64(),
        q(0.5),
        q(0.99),
        before / 1024,
        after / 1024,
        peak / 1024
    );
    assert!(statuses
        .keys()
        .all(|&c| c == 200 || (400..600).contains(&c)));
    assert!(
        !statuses.contains_key(&500),
        "no request made the model fail: {statuses:?}"
    );
    assert_eq!(
        s.stats.open.load(Ordering::SeqCst),
        0,
        "no place stays taken"
    );
    assert!(
        after < before + 300 * 1024,
        "memory grew from {before} kB to {after} kB"
    );
    let (status, _) = get(&s, "/health").await;
    assert_eq!(status, 200);
}
