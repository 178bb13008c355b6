//! `mentor generate` end to end on a tiny model written as a Hugging Face directory in the test
//! (config.json, model.safetensors, tokenizer.json): loads, generates in batches, and refuses a
//! bad prompts file by file and line before loading anything.

use mentor_model::load::Student;
use mentor_model::{LlamaConfig, TextTokenizer};
use std::path::Path;
use std::process::{Command, Output};

fn mentor(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(args)
        .current_dir(cwd)
        .env("MENTOR_LOG", "warn")
        .output()
        .expect("mentor runs")
}

fn tiny_model(dir: &Path) {
    let cfg = LlamaConfig::tiny(40);
    Student::random(&cfg, &candle_core::Device::Cpu, 7)
        .unwrap()
        .save_hf(dir)
        .unwrap();
    TextTokenizer::word_level(40).save(dir).unwrap();
}

#[test]
fn generates_for_every_prompt_from_an_hf_directory() {
    let d = tempfile::tempdir().unwrap();
    tiny_model(&d.path().join("model"));
    std::fs::write(
        d.path().join("p.jsonl"),
        "{\"prompt\": \"w1 w2 w3\"}\n{\"prompt\": \"w5\", \"id\": \"b\", \"max_tokens\": 3}\n{\"prompt\": \"w9 w9\"}\n",
    )
    .unwrap();
    let o = mentor(
        &[
            "generate",
            "--model",
            "model",
            "--prompts",
            "p.jsonl",
            "--raw",
            "--max-tokens",
            "6",
            "--batch",
            "2",
            "--json",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    let gens = j["generations"].as_array().unwrap();
    assert_eq!(gens.len(), 3);
    assert_eq!(gens[1]["id"], "b");
    assert!(gens[1]["tokens"].as_u64().unwrap() <= 3);
    for g in gens {
        let n = g["tokens"].as_u64().unwrap();
        assert!(n <= 6);
        assert!(g["logprob"].as_f64().unwrap() <= 0.0);
        // every generated word is in the vocabulary
        assert!(g["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .all(|w| w.starts_with('w') || w == "<pad>"));
    }
}

#[test]
fn a_bad_prompt_row_names_file_and_line_before_loading_the_model() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.jsonl"),
        "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n",
    )
    .unwrap();
    let o = mentor(
        &[
            "generate",
            "--model",
            "no-such-model",
            "--prompts",
            "p.jsonl",
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("p.jsonl:2") && err.contains("\"prompt\""),
        "{err}"
    );

    std::fs::write(d.path().join("p.jsonl"), "{\"prompt\": \"ok\"}\n").unwrap();
    let o = mentor(
        &[
            "generate",
            "--model",
            "no-such-model",
            "--prompts",
            "p.jsonl",
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("neither a known asset name"), "{err}");
}
