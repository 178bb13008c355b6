//! Our f32 decoder on the real SmolLM2-135M GGUF against candle's own quantized Llama on the same
//! file, and our quantised Gemma 3 path (the embedded teacher's) against our f32 one (which
//! `scripts/check-reference.sh` checks against transformers): the next-token choice must agree.
//! Skips (with a message) when an asset is not fetched; `MENTOR_REQUIRE_ASSETS=1` turns the skip
//! into a failure.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use mentor_model::{gguf, Llama};
use std::path::PathBuf;

fn asset_file(file: &str, name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("MENTOR_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::home_dir().unwrap().join(".cache/mentor"));
    let p = home.join("models").join(file);
    if p.is_file() {
        Some(p)
    } else {
        mentor_data::skip::skip_test(
            "gguf_reference",
            &format!("{} not fetched (mentor fetch-assets {name})", p.display()),
            "MENTOR_REQUIRE_ASSETS",
        );
        None
    }
}

fn asset() -> Option<PathBuf> {
    asset_file("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m")
}

#[test]
fn smollm2_next_tokens_agree_with_candles_quantized_llama() -> candle_core::Result<()> {
    let Some(path) = asset() else { return Ok(()) };
    let dev = Device::Cpu;
    let w = gguf::load(&path, &dev)?;
    assert_eq!(
        (
            w.arch.as_str(),
            w.config.num_hidden_layers,
            w.config.hidden_size,
            w.config.vocab_size
        ),
        ("llama", 30, 576, 49152)
    );
    let ours = Llama::new(
        &w.config,
        VarBuilder::from_tensors(w.tensors, DType::F32, &dev),
    )?;
    // Token ids of three short prompts (any ids work: both models see the same ones).
    let prompts: [&[u32]; 3] = [
        &[1, 9690, 198, 2683, 359, 253, 5356, 5646],
        &[504, 3575, 282, 4649, 314],
        &[28, 1029, 216, 33, 1073, 216, 34, 1073],
    ];
    let mut worst_rel = 0f32;
    for ids in prompts {
        // a fresh reference model per prompt: its internal KV cache must start empty
        let mut f = std::fs::File::open(&path)?;
        let content = candle_core::quantized::gguf_file::Content::read(&mut f)?;
        let mut theirs = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
            content, &mut f, &dev,
        )?;
        let input = Tensor::new(ids, &dev)?.unsqueeze(0)?;
        let ref_logits = theirs.forward(&input, 0)?.squeeze(0)?;
        let our_logits = ours.forward(&input)?.squeeze(0)?.get(ids.len() - 1)?;
        let (a, b) = (
            our_logits.argmax(D::Minus1)?.to_scalar::<u32>()?,
            ref_logits.argmax(D::Minus1)?.to_scalar::<u32>()?,
        );
        let diff = (&our_logits - &ref_logits)?
            .abs()?
            .max(D::Minus1)?
            .to_scalar::<f32>()?;
        let scale = ref_logits.abs()?.max(D::Minus1)?.to_scalar::<f32>()?;
        worst_rel = worst_rel.max(diff / scale);
        eprintln!("prompt {ids:?}: ours {a}, candle quantized {b}, max |Δlogit| {diff:.4} (of {scale:.2})");
        assert_eq!(a, b, "next token differs");
    }
    // candle's quantized matmul also quantises activations (Q8), so agreement is approximate.
    assert!(worst_rel < 0.1, "logits differ by {worst_rel} relative");
    Ok(())
}

#[test]
fn gemma3_quantized_path_picks_the_dense_paths_next_tokens() -> candle_core::Result<()> {
    let Some(path) = asset_file("gemma-3-270m-q4_k_m.gguf", "gemma-3-270m") else {
        return Ok(());
    };
    let dev = Device::Cpu;
    let w = gguf::load(&path, &dev)?;
    let g = w.config.gemma.clone().expect("a gemma3 config");
    assert_eq!(
        (
            w.arch.as_str(),
            w.config.num_hidden_layers,
            g.head_dim,
            g.sliding_window
        ),
        ("gemma3", 18, 256, 512)
    );
    let dense = Llama::new(
        &w.config,
        VarBuilder::from_tensors(w.tensors, DType::F32, &dev),
    )?;
    let q = gguf::load_quantized(&path, &dev)?;
    let quant = Llama::quantized(
        &q.config,
        VarBuilder::from_tensors(q.tensors, DType::F32, &dev),
        &q.quantized,
    )?;
    // "<bos>The capital of France is", and two more
    let prompts: [&[u32]; 3] = [
        &[2, 818, 5279, 529, 7001, 563],
        &[2, 14977, 236787, 8460, 815, 236743, 236800, 36157],
        &[2, 105, 2364, 107, 9259, 1902, 106, 107, 105, 4368, 107],
    ];
    let mut worst_rel = 0f32;
    for ids in prompts {
        let last = |m: &Llama| -> candle_core::Result<Tensor> {
            let mut cache = m.new_cache(32);
            m.forward_step(&Tensor::new(ids, &dev)?.unsqueeze(0)?, &[0], &mut cache)?
                .squeeze(0)
        };
        let (a, b) = (last(&dense)?, last(&quant)?);
        let (ta, tb) = (
            a.argmax(D::Minus1)?.to_scalar::<u32>()?,
            b.argmax(D::Minus1)?.to_scalar::<u32>()?,
        );
        let diff = (&a - &b)?.abs()?.max(D::Minus1)?.to_scalar::<f32>()?;
        let scale = a.abs()?.max(D::Minus1)?.to_scalar::<f32>()?;
        worst_rel = worst_rel.max(diff / scale);
        eprintln!(
            "prompt {ids:?}: dense {ta}, quantised {tb}, max |Δlogit| {diff:.4} (of {scale:.2})"
        );
        assert_eq!(ta, tb, "next token differs");
    }
    // the quantised kernels also quantise activations (Q8): agreement is approximate
    assert!(worst_rel < 0.1, "logits differ by {worst_rel} relative");
    Ok(())
}
