use mentor_core::{Choice, Example, Split};
use mentor_store::{Annotation, CallRecord, SplitRecord, Store};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn example(i: usize) -> Example {
    Example {
        id: format!("ex{i}"),
        question: format!("What is {i} + 1?"),
        answer: format!("{}", i + 1),
        choices: if i.is_multiple_of(2) {
            vec![Choice {
                label: "A".into(),
                text: "one".into(),
            }]
        } else {
            vec![]
        },
        explanation: None,
    }
}

fn call(i: usize, ok: bool) -> CallRecord {
    CallRecord {
        namespace: "gpt".into(),
        request_hash: format!("hash{i}"),
        teacher: "gpt".into(),
        model: "m".into(),
        request: "{}".into(),
        ok,
        raw_response: Some(format!("{{\"i\":{i}}}")),
        text: Some(format!("answer {i}")),
        error: (!ok).then(|| "HTTP 500".to_string()),
        prompt_tokens: 10,
        completion_tokens: 5,
        cost_usd: 0.001,
        latency_ms: 20,
        attempts: 1,
        // even calls were cut at the token limit
        finish_reason: ok.then(|| {
            if i.is_multiple_of(2) {
                "length"
            } else {
                "stop"
            }
            .to_string()
        }),
        // calls 0–4 came through a provider batch
        batch_tag: (i < 5).then(|| "b1".to_string()),
    }
}

fn annotation(i: usize, call_id: Option<i64>) -> Annotation {
    Annotation {
        dataset: "toy".into(),
        example_id: format!("ex{i}"),
        stage: "annotate".into(),
        kind: "rationale".into(),
        source: "gpt".into(),
        round: 0,
        sample_index: 0,
        call_id,
        text: format!("because {i}"),
        parsed: Some(serde_json::json!({ "answer": i })),
        parse_ok: true,
    }
}

#[test]
fn migrates_fresh_and_reopens_at_same_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/mentor.sqlite");
    let v = Store::open(&path).unwrap().schema_version().unwrap();
    assert!(v >= 1);
    assert_eq!(Store::open(&path).unwrap().schema_version().unwrap(), v);
}

#[test]
fn refuses_a_store_from_a_newer_mentor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = Store::open(&path).err().expect("must refuse").to_string();
    assert!(
        err.contains("999") && err.contains("upgrade mentor"),
        "{err}"
    );
}

#[test]
fn examples_round_trip_with_splits_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().join("s.sqlite")).unwrap();
    let exs: Vec<Example> = (0..5).map(example).collect();
    let rows = exs
        .iter()
        .enumerate()
        .map(|(i, e)| (if i < 3 { Split::Train } else { Split::Test }, e));
    let rec = SplitRecord {
        dataset: "toy".into(),
        method: "seeded".into(),
        seed: Some(7),
        fractions: Some([0.6, 0.0, 0.4]),
        counts: [3, 0, 2],
    };
    assert_eq!(s.insert_examples("toy", rows.clone(), &rec).unwrap(), 5);
    assert_eq!(
        s.insert_examples("toy", rows, &rec).unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(s.examples("toy", Split::Train).unwrap(), exs[..3].to_vec());
    assert_eq!(s.examples("toy", Split::Test).unwrap(), exs[3..].to_vec());
    assert_eq!(s.split_record("toy").unwrap(), Some(rec));
}

#[test]
fn successful_call_is_cached_once_and_failures_accumulate() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().join("s.sqlite")).unwrap();
    assert!(s.cached_call("gpt", "hash1").unwrap().is_none());
    s.record_call(&call(1, false)).unwrap();
    assert!(
        s.cached_call("gpt", "hash1").unwrap().is_none(),
        "a failure is not a cache hit"
    );
    let id = s.record_call(&call(1, true)).unwrap();
    assert_eq!(
        s.record_call(&call(1, true)).unwrap(),
        id,
        "second success reuses the first row"
    );
    let (cid, rec) = s.cached_call("gpt", "hash1").unwrap().unwrap();
    assert_eq!((cid, rec), (id, call(1, true)));
    assert!(s.cached_call("other-namespace", "hash1").unwrap().is_none());
    let ledger = s.ledger().unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (
            ledger[0].calls_ok,
            ledger[0].calls_failed,
            ledger[0].prompt_tokens
        ),
        (1, 1, 20)
    );
    // why a reply ended survives the round trip, and the ledger counts the cut ones
    s.record_call(&call(2, true)).unwrap();
    let (_, cut) = s.cached_call("gpt", "hash2").unwrap().unwrap();
    assert!(cut.truncated() && !call(1, true).truncated());
    assert_eq!(s.ledger().unwrap()[0].calls_truncated, 1);
}

#[test]
fn annotations_are_idempotent_and_linked_to_calls() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().join("s.sqlite")).unwrap();
    let id = s
        .record_call_with_annotation(&call(3, true), &annotation(3, None))
        .unwrap();
    assert!(!s.add_annotation(&annotation(3, Some(id))).unwrap());
    let got = s.annotations("annotate", "rationale").unwrap();
    assert_eq!(got, vec![annotation(3, Some(id))]);
}

#[test]
fn metrics_series_in_step_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().join("s.sqlite")).unwrap();
    let run = s.start_training_run("t", "{}").unwrap();
    for (step, v) in [(2u64, 0.5), (1, 0.9), (3, 0.4)] {
        s.log_metric(Some(run), Some(step), Some("train"), "loss", v)
            .unwrap();
    }
    s.log_metric(Some(run), Some(1), Some("valid"), "loss", 1.0)
        .unwrap();
    assert_eq!(
        s.metric_series(run, "loss", Some("train")).unwrap(),
        vec![(1, 0.9), (2, 0.5), (3, 0.4)]
    );
    s.finish_training_run(run, true, Some("/ckpt"), Some(3), Some(0.4))
        .unwrap();
}

/// The child half of `killed_writer_keeps_every_committed_row`: writes call + annotation pairs,
/// one transaction each, and prints each id after its commit returns.
fn writer_child(path: &str) -> ! {
    let mut s = Store::open(path).unwrap();
    let out = std::io::stdout();
    for i in 0.. {
        let id = s
            .record_call_with_annotation(&call(i, true), &annotation(i, None))
            .unwrap();
        let mut o = out.lock();
        writeln!(o, "committed {i} {id}").unwrap();
        o.flush().unwrap();
    }
    unreachable!()
}

#[test]
fn killed_writer_keeps_every_committed_row() {
    if let Ok(path) = std::env::var("MENTOR_STORE_WRITER_CHILD") {
        writer_child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    for (round, kill_after) in [37usize, 211, 503].into_iter().enumerate() {
        let path = dir.path().join(format!("kill{round}.sqlite"));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "killed_writer_keeps_every_committed_row",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MENTOR_STORE_WRITER_CHILD", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut committed = Vec::new();
        while committed.len() < kill_after {
            let line = lines.next().expect("child exited early").unwrap();
            if let Some(rest) = line.strip_prefix("committed ") {
                committed.push(rest.split(' ').next().unwrap().parse::<usize>().unwrap());
            }
        }
        child.kill().unwrap(); // SIGKILL, mid-write
        child.wait().unwrap();
        for line in lines.map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("committed ") {
                committed.push(rest.split(' ').next().unwrap().parse().unwrap());
            }
        }
        let s = Store::open(&path).expect("store opens after SIGKILL");
        assert_eq!(s.integrity_check().unwrap(), "ok");
        for i in &committed {
            assert!(
                s.cached_call("gpt", &format!("hash{i}")).unwrap().is_some(),
                "committed call {i} lost"
            );
        }
        let counts: std::collections::HashMap<_, _> = s.counts().unwrap().into_iter().collect();
        assert!(counts["teacher_calls"] as usize >= committed.len());
        // call and annotation share one transaction: never one without the other
        assert_eq!(counts["teacher_calls"], counts["annotations"]);
    }
}

/// A batch is in the store before submission, gets its provider id after, and leaves the open
/// list when it ends; the ledger counts the calls answered through batches apart.
#[test]
fn batches_are_recorded_before_submission_and_close_when_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().join("s.sqlite")).unwrap();
    let rows: Vec<mentor_store::BatchRow> = (0..3)
        .map(|i| mentor_store::BatchRow {
            custom_id: format!("c{i}"),
            request_hash: format!("hash{i}"),
            request: "{}".into(),
        })
        .collect();
    s.open_batch("b1", "gpt", &rows).unwrap();
    let open = s.open_batches("gpt").unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (
            open[0].provider_id.as_deref(),
            open[0].status.as_str(),
            open[0].requests
        ),
        (None, "submitting", 3)
    );
    assert!(s.open_batches("other").unwrap().is_empty());
    s.batch_submitted("b1", "batch_abc").unwrap();
    assert_eq!(
        s.open_batches("gpt").unwrap()[0].provider_id.as_deref(),
        Some("batch_abc")
    );
    assert_eq!(s.batch_rows("b1").unwrap(), rows);
    // a tag is used once
    assert!(s.open_batch("b1", "gpt", &rows).is_err());
    for i in 0..8 {
        s.record_call(&call(i, i != 7)).unwrap();
    }
    s.batch_finished("b1", "completed").unwrap();
    assert!(s.open_batches("gpt").unwrap().is_empty());
    assert_eq!(s.batches("gpt").unwrap()[0].status, "completed");
    let l = &s.ledger().unwrap()[0];
    assert_eq!((l.calls_ok, l.calls_batch), (7, 5));
    assert!((l.cost_usd_batch - 0.005).abs() < 1e-12);
    let (_, cached) = s.cached_call("gpt", "hash2").unwrap().unwrap();
    assert_eq!(cached.batch_tag.as_deref(), Some("b1"));
}
