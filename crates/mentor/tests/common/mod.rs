//! What several test binaries build: a tiny random student and a toy numeric dataset.
#![allow(dead_code)] // each test binary uses its own part

use mentor_model::load::Student;
use mentor_model::{LlamaConfig, TextTokenizer};
use std::path::Path;

/// A tiny random student over a real byte-level tokenizer, written as an HF directory
/// (config.json, model.safetensors, tokenizer.json); returns its config.
pub fn tiny_student(dir: &Path, max_positions: usize, seed: u64) -> LlamaConfig {
    let tok = TextTokenizer::byte_level();
    let mut cfg = LlamaConfig::tiny(tok.vocab_size());
    cfg.max_position_embeddings = max_positions;
    Student::random(&cfg, &candle_core::Device::Cpu, seed)
        .unwrap()
        .save_hf(dir)
        .unwrap();
    tok.save(dir).unwrap();
    cfg
}

/// `dir/toy.jsonl`: `n` questions "What is i + 1?" (answer i + 1).
pub fn write_sums_dataset(dir: &Path, n: usize) {
    let rows: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": \"q{i}\", \"question\": \"What is {i} + 1?\", \"answer\": {}}}\n",
                i + 1
            )
        })
        .collect();
    std::fs::write(dir.join("toy.jsonl"), rows).unwrap();
}
