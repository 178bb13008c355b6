//! Against the reference implementations, on the real SmolLM2-135M GGUF: our logits vs Hugging
//! Face transformers (PyTorch, float32), our greedy tokens vs transformers `generate`, our
//! tokenizer vs llama.cpp's. The reference outputs come from `benches/reference_dump.py`;
//! `scripts/check-reference.sh` installs PyTorch from PyPI, dumps them and runs this test:
//!
//!     MENTOR_REFERENCE_DIR=DIR cargo test --release -p mentor-model --test reference -- --ignored --nocapture
//!
//! Opt-in (`--ignored`): when asked for, a missing reference or model is a failure, not a skip.

use candle_core::{DType, Device, Tensor};
use mentor_model::load::{read_weights, Student, Tuning};
use mentor_model::{generate, SamplingParams, TextTokenizer};
use std::path::PathBuf;

fn reference_dir() -> PathBuf {
    let d = std::env::var_os("MENTOR_REFERENCE_DIR")
        .map(PathBuf::from)
        .expect("set MENTOR_REFERENCE_DIR (scripts/check-reference.sh does)");
    assert!(
        d.join("reference.safetensors").is_file(),
        "{} has no reference.safetensors",
        d.display()
    );
    d
}

fn model_path() -> PathBuf {
    std::env::var_os("MENTOR_REFERENCE_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("MENTOR_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::home_dir().unwrap().join(".cache/mentor"));
            home.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        })
}

#[test]
#[ignore = "needs PyTorch reference outputs: scripts/check-reference.sh"]
fn logits_greedy_tokens_and_tokenizer_match_the_references() {
    let dir = reference_dir();
    let dev = Device::Cpu;
    let w = read_weights(&model_path(), &dev).unwrap();
    let tok = TextTokenizer::from_gguf(w.gguf_metadata.as_ref().unwrap()).unwrap();
    let model = Student::new(w, Tuning::Frozen, &dev, 0).unwrap().model;
    let reference =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &dev).unwrap();

    let mut worst_rel = 0f32;
    let mut worst_abs = 0f32;
    for i in 0.. {
        let Some(ids) = reference.get(&format!("ids.{i}")) else {
            break;
        };
        let ids: Vec<u32> = ids.to_dtype(DType::U32).unwrap().to_vec1().unwrap();
        let theirs = &reference[&format!("logits.{i}")];
        let ours = model
            .forward(
                &Tensor::new(ids.as_slice(), &dev)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
            )
            .unwrap()
            .squeeze(0)
            .unwrap();
        let diff = (&ours - theirs).unwrap().abs().unwrap();
        let max_abs = diff
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let scale = theirs
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let rel = max_abs / scale;
        println!(
            "prompt {i}: {} tokens, max |Δlogit| {max_abs:.2e}, relative to max |logit| {rel:.2e}",
            ids.len()
        );
        worst_rel = worst_rel.max(rel);
        worst_abs = worst_abs.max(max_abs);

        let want: Vec<u32> = reference[&format!("greedy.{i}")]
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let params = SamplingParams {
            max_new_tokens: want.len(),
            ..SamplingParams::default()
        };
        let got = generate(&model, &tok, &[(ids.clone(), params)], 1, &mut |_| {}).unwrap();
        let got = &got[0].token_ids;
        assert_eq!(
            got[..],
            want[..got.len()],
            "prompt {i}: greedy tokens differ"
        );
        if got.len() < want.len() {
            // we stopped at an end-of-turn token; transformers (no EOS set) went on past it
            assert!(
                tok.stop_ids.contains(&want[got.len()]),
                "prompt {i}: stopped early"
            );
        }
        println!(
            "prompt {i}: greedy {} tokens identical{}",
            got.len(),
            if got.len() < want.len() {
                " (then both emit end-of-turn)"
            } else {
                ""
            }
        );
    }
    println!("logits: worst max |Δ| {worst_abs:.2e}, worst relative {worst_rel:.2e}");
    assert!(
        worst_rel < 1e-4,
        "logits differ beyond float32 tolerance: {worst_rel:.2e}"
    );

    let strings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    let rows = strings["strings"].as_array().unwrap();
    let (mut vs_llama, mut vs_tf, mut n_llama) = (0, 0, 0);
    for r in rows {
        let text = r["text"].as_str().unwrap();
        // the references tokenize without BOS; our encode adds it for models that want one
        let mut ours = tok.encode(text).unwrap();
        let bos = tok.bos_token.as_deref().and_then(|b| tok.token_to_id(b));
        if bos.is_some() && ours.first().copied() == bos {
            ours.remove(0);
        }
        let ids = |k: &str| -> Option<Vec<u32>> {
            r.get(k).map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
        };
        let llama_cpp = ids("llama_cpp");
        if let Some(l) = &llama_cpp {
            n_llama += 1;
            if *l != ours {
                vs_llama += 1;
                eprintln!("llama.cpp differs on {text:?}: ours {ours:?} theirs {l:?}");
            }
        }
        if let Some(t) = ids("transformers").filter(|t| *t != ours) {
            vs_tf += 1;
            // Where llama.cpp tokenized the string it is the reference for a GGUF vocabulary:
            // transformers' GGUF converter drops the `smollm` pre-tokenizer's digit split (which
            // llama.cpp applies: `\p{N}` before the GPT-2 regex), and turns Gemma's SentencePiece
            // vocabulary into a BPE without its merges (words fall apart into short pieces).
            // Without llama.cpp, only the digit-split difference is tolerated.
            let ws_digit = text
                .chars()
                .zip(text.chars().skip(1))
                .any(|(a, b)| a.is_whitespace() && b.is_numeric());
            assert!(
                ws_digit || llama_cpp.is_some(),
                "differs from transformers on {text:?}: ours {ours:?} theirs {t:?}"
            );
            if vs_tf <= 5 {
                eprintln!("transformers differs on {text:?}: ours {ours:?} theirs {t:?}");
            }
        }
        assert_eq!(tok.decode(&ours).unwrap(), text, "round trip of {text:?}");
    }
    println!(
        "tokenizer: {} strings; differ from llama.cpp on {vs_llama}/{n_llama}, from transformers' GGUF conversion on {vs_tf}",
        rows.len()
    );
    assert_eq!(vs_llama, 0, "tokenizer disagrees with llama.cpp");
    if n_llama == 0 {
        println!("no llama.cpp tokenizations in the reference (llama-cpp-python missing): checked against transformers only");
    }
}
