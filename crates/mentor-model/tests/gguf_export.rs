//! A model written as GGUF reads back as the same model: the same config, the same logits
//! (exactly in f32; within rounding in f16 and Q8_0), and a tokenizer that encodes the same —
//! for `llama` (Q/K permuted into llama.cpp's layout and back) and `qwen2` (biases) alike.

use candle_core::{Device, Result, Tensor};
use mentor_model::gguf::{self, ExportType};
use mentor_model::load::{read_weights, Student, Tuning};
use mentor_model::{LlamaConfig, TextTokenizer};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn round_trip(cfg: LlamaConfig, ty: ExportType) -> Result<f32> {
    let dev = Device::Cpu;
    let tok = TextTokenizer::byte_level();
    let original = Student::random(&cfg, &dev, 11)?;
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("m.gguf");
    gguf::write(
        &path,
        "tiny",
        &cfg,
        &original.model.merged_tensors()?,
        tok.gguf_metadata(cfg.vocab_size).unwrap(),
        ty,
    )?;
    let w = read_weights(&path, &dev)?;
    // GGUF stores ε as f32
    assert!((w.config.rms_norm_eps - cfg.rms_norm_eps).abs() < 1e-9);
    let mut w = w;
    w.config.rms_norm_eps = cfg.rms_norm_eps;
    assert_eq!(w.config, cfg);
    let back_tok = TextTokenizer::from_gguf(w.gguf_metadata.as_ref().unwrap()).unwrap();
    let text = "Step 1: 12 + 30 = 42. The answer is 42.";
    let ids = tok.encode(text).unwrap();
    assert_eq!(back_tok.encode(text).unwrap(), ids);
    assert_eq!(back_tok.eos_token, tok.eos_token);
    let back = Student::new(w, Tuning::Frozen, &dev, 0)?;
    let input = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
    let a = original.model.forward(&input)?;
    let b = back.model.forward(&input)?;
    Ok(max_abs_diff(&a, &b))
}

fn tiny(tied: bool, qwen: bool) -> LlamaConfig {
    LlamaConfig {
        tie_word_embeddings: tied,
        attention_bias: qwen,
        max_position_embeddings: 128,
        gemma: None,
        ..LlamaConfig::tiny(TextTokenizer::byte_level().vocab_size())
    }
}

#[test]
fn f32_gguf_reads_back_as_the_same_model() -> Result<()> {
    for (tied, qwen) in [(true, false), (false, false), (true, true), (false, true)] {
        let diff = round_trip(tiny(tied, qwen), ExportType::F32)?;
        assert!(
            diff < 1e-5,
            "tied {tied} qwen {qwen}: logits differ by {diff}"
        );
    }
    Ok(())
}

#[test]
fn f16_and_q8_gguf_stay_within_rounding() -> Result<()> {
    // hidden 32 is one Q8_0 block wide, so the projections really are quantised
    for ty in [ExportType::F16, ExportType::Q8_0] {
        let diff = round_trip(tiny(false, false), ty)?;
        assert!(diff > 0.0 && diff < 0.05, "{ty:?}: logits differ by {diff}");
    }
    Ok(())
}

#[test]
fn a_tokenizer_with_more_ids_than_the_model_has_rows_is_refused() {
    let tok = TextTokenizer::byte_level();
    let e = tok.gguf_metadata(10).unwrap_err().to_string();
    assert!(e.contains("embedding rows"), "{e}");
    // fewer tokenizer ids than rows: padded with unused tokens
    let md = tok.gguf_metadata(tok.vocab_size() + 3).unwrap();
    let tokens = md
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
        .unwrap()
        .1
        .to_vec()
        .unwrap()
        .len();
    assert_eq!(tokens, tok.vocab_size() + 3);
}
