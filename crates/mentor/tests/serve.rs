//! `mentor serve` as a process: it prints where it listens, answers OpenAI requests, serves as
//! the teacher of `mentor annotate` (the whole loop: HTTP, ledger, store), and exits cleanly on
//! SIGTERM with a summary.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `mentor serve` on a free port; returns the child and its `/v1` base URL.
fn serve(dir: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["serve", "--model", "student", "--port", "0", "--json"])
        .args(extra)
        .current_dir(dir)
        .env("MENTOR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("serve printed its address before exiting")
            .unwrap();
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_string();
        }
    };
    // keep draining stderr so the server never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

fn stop(child: Child) -> serde_json::Value {
    // SIGTERM, as a service manager sends it
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "serve exited with {}", out.status);
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().unwrap_or("null")).unwrap()
}

#[test]
fn serves_a_model_and_is_the_teacher_of_annotate() {
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 1024, 5);
    let (child, base) = serve(d.path(), &["--served-model-name", "tiny-teacher"]);

    let models: serde_json::Value = reqwest::blocking_get(&format!("{base}/models"));
    assert_eq!(models["data"][0]["id"], "tiny-teacher");

    let n = 6;
    common::write_sums_dataset(d.path(), n);
    std::fs::write(
        d.path().join("exp.toml"),
        format!(
            "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [1.0, 0.0, 0.0]\n\n\
             [teachers.served]\nkind = \"openai\"\nbase_url = \"{base}\"\nmodel = \"tiny-teacher\"\n\
             max_in_flight = 4\nmax_tokens = 16\ntimeout_s = 60\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["annotate", "exp.toml", "--json"])
        .current_dir(d.path())
        .env("MENTOR_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // every question reached the served model once, and its raw replies are in the ledger
    let store = mentor_store::Store::open_run_dir(d.path().join("runs/exp")).unwrap();
    let raws: Vec<String> = store
        .connection()
        .prepare("SELECT raw_response FROM teacher_calls WHERE status = 'ok'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(raws.len(), n, "one paid call per question");
    for raw in &raws {
        let body: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "tiny-teacher");
        assert!(body["usage"]["completion_tokens"].as_u64().unwrap() <= 16);
    }

    let summary = stop(child);
    assert!(
        summary["completion_tokens"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(summary["batches"].as_u64().unwrap() >= 1, "{summary}");
}

mod reqwest {
    /// A GET with the blocking client, parsed as JSON.
    pub fn blocking_get(url: &str) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { ::reqwest::get(url).await.unwrap().json().await.unwrap() })
    }
}
