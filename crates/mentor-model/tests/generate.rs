//! Batched KV-cache generation agrees with the full forward and with itself: left padding,
//! batch composition and the cache change nothing; seeds reproduce; stops stop.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use mentor_model::GemmaConfig;
use mentor_model::{generate, FinishReason, Llama, LlamaConfig, SamplingParams, TextTokenizer};

/// Seeded weights: with fresh random ones per run, a near-tie between two logits once in a
/// few dozen runs let float rounding (batched vs alone) pick another token.
fn tiny() -> Llama {
    let cfg = LlamaConfig {
        tie_word_embeddings: false,
        attention_bias: true,
        ..LlamaConfig::tiny(40)
    };
    mentor_model::load::Student::random(&cfg, &Device::Cpu, 17)
        .unwrap()
        .model
}

fn words() -> TextTokenizer {
    TextTokenizer::word_level(40)
}

#[test]
fn cached_steps_match_the_full_forward_with_left_padding() -> Result<()> {
    let m = tiny();
    let long: Vec<u32> = vec![5, 9, 13, 2, 30, 7];
    let short: Vec<u32> = vec![11, 4, 25];
    // batch: short row left-padded by 3
    let pad = [0usize, 3];
    let mut ids = long.clone();
    ids.extend([1, 1, 1]);
    ids.extend(&short);
    let mut cache = m.new_cache(16);
    let first = m.forward_step(
        &Tensor::from_vec(ids, (2, 6), &Device::Cpu)?,
        &pad,
        &mut cache,
    )?;
    let next = Tensor::new(&[[17u32], [19]], &Device::Cpu)?;
    let second = m.forward_step(&next, &pad, &mut cache)?;
    for (row, prompt, nxt) in [(0usize, &long, 17u32), (1, &short, 19)] {
        let mut seq = prompt.clone();
        let full = m.forward(&Tensor::new(seq.as_slice(), &Device::Cpu)?.unsqueeze(0)?)?;
        let want = full.get(0)?.get(seq.len() - 1)?;
        let d = (first.get(row)? - want)?
            .abs()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(d < 1e-4, "row {row} prefill differs by {d}");
        seq.push(nxt);
        let full = m.forward(&Tensor::new(seq.as_slice(), &Device::Cpu)?.unsqueeze(0)?)?;
        let want = full.get(0)?.get(seq.len() - 1)?;
        let d = (second.get(row)? - want)?
            .abs()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(d < 1e-4, "row {row} cached step differs by {d}");
    }
    Ok(())
}

#[test]
fn batched_generation_equals_one_at_a_time() -> Result<()> {
    let (m, tok) = (tiny(), words());
    let greedy = SamplingParams {
        max_new_tokens: 12,
        ..SamplingParams::default()
    };
    let sampled = |seed| SamplingParams {
        max_new_tokens: 12,
        temperature: 0.9,
        top_p: 0.9,
        seed,
        ..SamplingParams::default()
    };
    let reqs = vec![
        (vec![5, 9, 13, 2, 30, 7], greedy.clone()),
        (vec![11, 4], greedy.clone()),
        (vec![8, 8, 8, 21], sampled(1)),
        (vec![8, 8, 8, 21], sampled(2)),
        (vec![8, 8, 8, 21], sampled(1)),
    ];
    let together = generate(&m, &tok, &reqs, 8, &mut |_| {})?;
    for (i, r) in reqs.iter().enumerate() {
        let alone = generate(&m, &tok, std::slice::from_ref(r), 1, &mut |_| {})?;
        assert_eq!(alone[0].token_ids, together[i].token_ids, "request {i}");
        let d = alone[0]
            .logprobs
            .iter()
            .zip(&together[i].logprobs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-4, "request {i}: logprobs differ by {d}");
    }
    assert_eq!(
        together[2].token_ids, together[4].token_ids,
        "same seed, same sample"
    );
    assert!(together
        .iter()
        .all(|g| g.logprobs.iter().all(|&l| l <= 0.0)));
    // logprobs are the model's: check the greedy row's first token against the full forward
    let full = m.forward(&Tensor::new(&[11u32, 4], &Device::Cpu)?.unsqueeze(0)?)?;
    let lp = candle_nn::ops::log_softmax(&full.get(0)?.get(1)?, 0)?.to_vec1::<f32>()?;
    let first = together[1].token_ids[0] as usize;
    assert!((lp[first] - together[1].logprobs[0]).abs() < 1e-4);
    let best = lp.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(lp[first], best, "greedy picks the argmax");
    Ok(())
}

#[test]
fn stop_strings_and_limits_end_generation() -> Result<()> {
    let (m, tok) = (tiny(), words());
    let free = generate(
        &m,
        &tok,
        &[(
            vec![3, 4, 5],
            SamplingParams {
                max_new_tokens: 10,
                ..Default::default()
            },
        )],
        1,
        &mut |_| {},
    )?;
    let g = &free[0];
    // the seeded tiny model runs to the limit (no end token in its first 10)
    assert_eq!(g.finish_reason, FinishReason::Length, "{g:?}");
    assert_eq!(g.token_ids.len(), 10);
    // stop at the third generated word: the text ends before it
    let words: Vec<&str> = g.text.split(' ').collect();
    assert!(words.len() >= 3, "{:?}", g.text);
    {
        let stop = words[2].to_string();
        let first = g.text.find(&stop).unwrap();
        let cut = generate(
            &m,
            &tok,
            &[(
                vec![3, 4, 5],
                SamplingParams {
                    max_new_tokens: 10,
                    stop: vec![stop.clone()],
                    ..Default::default()
                },
            )],
            1,
            &mut |_| {},
        )?;
        assert_eq!(cut[0].finish_reason, FinishReason::Stop);
        assert_eq!(cut[0].text, g.text[..first]);
    }
    Ok(())
}

/// The quantised inference path ([`Llama::quantized`]): the same weights in Q8_0 blocks give
/// the dense model's logits to within Q8_0's rounding (weights and, in the kernels,
/// activations: a few % on a tiny random model) — and not exactly them, which shows the
/// quantised path ran. A wrong or transposed weight is off by ~100 %.
#[test]
fn quantized_projections_match_the_dense_model() -> Result<()> {
    use candle_core::quantized::{GgmlDType, QTensor};
    use std::sync::Arc;
    for tied in [false, true] {
        let cfg = LlamaConfig {
            tie_word_embeddings: tied,
            attention_bias: true,
            ..LlamaConfig::tiny(40)
        };
        let dense = mentor_model::load::Student::random(&cfg, &Device::Cpu, 7)?.model;
        let mut quant = mentor_model::QuantizedWeights::new();
        let mut rest = std::collections::HashMap::new();
        for (name, t) in dense.merged_tensors()? {
            let head = name == "lm_head.weight" || (tied && name == "model.embed_tokens.weight");
            if name.ends_with("_proj.weight") || head {
                quant.insert(
                    name.clone(),
                    Arc::new(QTensor::quantize(&t, GgmlDType::Q8_0)?),
                );
                if name == "lm_head.weight" {
                    continue;
                }
            }
            if !name.ends_with("_proj.weight") {
                rest.insert(name, t);
            }
        }
        assert_eq!(quant.len(), 7 * cfg.num_hidden_layers + 1);
        let q = Llama::quantized(
            &cfg,
            VarBuilder::from_tensors(rest, DType::F32, &Device::Cpu),
            &quant,
        )?;
        // 12 rows take the quantised kernels; 40 rows (prefill) the dequantised weights
        for t in [6usize, 20] {
            let ids: Vec<u32> = (0..2 * t as u32).map(|i| (7 * i + 3) % 40).collect();
            let ids = Tensor::from_vec(ids, (2, t), &Device::Cpu)?;
            let pad = [0usize, 2];
            let want = dense.forward_step(&ids, &pad, &mut dense.new_cache(32))?;
            let got = q.forward_step(&ids, &pad, &mut q.new_cache(32))?;
            let scale = want.abs()?.max_keepdim(1)?.max(0)?.to_vec1::<f32>()?[0];
            let err = (got - &want)?
                .abs()?
                .max_keepdim(1)?
                .max(0)?
                .to_vec1::<f32>()?[0];
            assert!(
                err > 0.0,
                "tied={tied} t={t}: identical logits: the dense path ran"
            );
            assert!(
                err < 0.05 * scale,
                "tied={tied} t={t}: max error {err} against logits up to {scale}"
            );
        }
    }
    Ok(())
}

#[test]
fn rows_joining_and_leaving_a_running_batch_decode_as_they_would_alone() -> Result<()> {
    use mentor_model::Decoder;
    let m = tiny();
    let tok = words();
    let greedy = |n| SamplingParams {
        max_new_tokens: n,
        ..Default::default()
    };
    let reqs = [
        (vec![5u32, 9, 13, 2, 30, 7], greedy(10)),
        // joins after 3 steps with a shorter prompt: it is left-padded into the batch
        (vec![11u32, 4], greedy(12)),
        // joins with a prompt longer than the batch's cache: the batch is left-padded
        (
            vec![3u32, 8, 21, 6, 6, 9, 12, 17, 25, 31, 2, 2, 14],
            greedy(6),
        ),
        // sampled: its own random stream, whatever the batch
        (
            vec![19u32, 23, 29],
            SamplingParams {
                temperature: 0.9,
                seed: 5,
                ..greedy(9)
            },
        ),
    ];
    let alone: Vec<Vec<u32>> = reqs
        .iter()
        .map(|r| {
            generate(&m, &tok, std::slice::from_ref(r), 1, &mut |_| {}).unwrap()[0]
                .token_ids
                .clone()
        })
        .collect();
    let mut batch = Decoder::new(&m, &tok, &[&reqs[0]])?;
    let mut ids = vec![0usize];
    let mut got: Vec<Option<Vec<u32>>> = vec![None; reqs.len()];
    let mut step = 0;
    while batch.rows() > 0 || step < 5 {
        if batch.rows() > 0 {
            batch.step()?;
        }
        step += 1;
        let joining: &[usize] = match step {
            3 => &[1, 2],
            5 => &[3],
            _ => &[],
        };
        for &j in joining {
            let mut newcomer = Decoder::new(&m, &tok, &[&reqs[j]])?;
            newcomer.step()?;
            batch.merge(newcomer)?;
            ids.push(j);
        }
        let keep: Vec<bool> = (0..batch.rows())
            .map(|r| batch.finished(r).is_none())
            .collect();
        for r in 0..batch.rows() {
            if !keep[r] {
                got[ids[r]] = Some(batch.tokens(r).to_vec());
            }
        }
        batch.retain(&keep)?;
        let mut r = 0;
        ids.retain(|_| {
            r += 1;
            keep[r - 1]
        });
    }
    for (i, (g, a)) in got.iter().zip(&alone).enumerate() {
        assert_eq!(g.as_ref(), Some(a), "request {i}");
    }
    Ok(())
}

/// A tiny Gemma 3 (seeded): heads of 16 apart from hidden / heads, layer 0 local with a window
/// of `window`, layer 1 global.
fn tiny_gemma(window: usize) -> Llama {
    let cfg = LlamaConfig {
        rope_theta: 1_000_000.0,
        gemma: Some(GemmaConfig {
            head_dim: 16,
            sliding_window: window,
            sliding_window_pattern: 2,
            rope_local_theta: 10_000.0,
            query_pre_attn_scalar: 16.0,
        }),
        ..LlamaConfig::tiny(40)
    };
    mentor_model::load::Student::random(&cfg, &Device::Cpu, 23)
        .unwrap()
        .model
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

#[test]
fn gemma_sliding_window_decodes_as_its_prefill_and_the_window_matters() -> Result<()> {
    let dev = Device::Cpu;
    let seq: Vec<u32> = (0..9).map(|i| (i * 7 % 39 + 1) as u32).collect();
    let m = tiny_gemma(3);
    // the whole sequence at once, one token at a time, and left-padded in a batch: the same
    let mut c = m.new_cache(16);
    let prefill = m.forward_step(
        &Tensor::new(seq.as_slice(), &dev)?.unsqueeze(0)?,
        &[0],
        &mut c,
    )?;
    let mut c = m.new_cache(16);
    let mut stepped = None;
    for &t in &seq {
        stepped = Some(m.forward_step(&Tensor::new(&[[t]], &dev)?, &[0], &mut c)?);
    }
    assert!(max_diff(&prefill, &stepped.unwrap())? < 1e-4);
    let mut padded = vec![0u32, 0];
    padded.extend(&seq);
    let mut other = seq.clone();
    other.reverse();
    other.extend([5, 6]);
    let mut c = m.new_cache(16);
    let batch = m.forward_step(
        &Tensor::from_vec([other, padded].concat(), (2, 11), &dev)?,
        &[0, 2],
        &mut c,
    )?;
    assert!(max_diff(&batch.get(1)?.unsqueeze(0)?, &prefill)? < 1e-4);
    // within the window, the training forward computes the same logits
    let short = &seq[..3];
    let mut c = m.new_cache(8);
    let step = m.forward_step(&Tensor::new(short, &dev)?.unsqueeze(0)?, &[0], &mut c)?;
    let full = m.forward(&Tensor::new(short, &dev)?.unsqueeze(0)?)?;
    assert!(max_diff(&step, &full.get(0)?.get(2)?.unsqueeze(0)?)? < 1e-4);
    // the same weights with a window wider than the sequence see more, and say otherwise
    let wide = tiny_gemma(64);
    let mut c = wide.new_cache(16);
    let seen = wide.forward_step(
        &Tensor::new(seq.as_slice(), &dev)?.unsqueeze(0)?,
        &[0],
        &mut c,
    )?;
    assert!(
        max_diff(&seen, &prefill)? > 1e-3,
        "the window changed nothing"
    );
    // the training forward refuses sequences longer than the window rather than ignore it
    assert!(m
        .forward(&Tensor::new(seq.as_slice(), &dev)?.unsqueeze(0)?)
        .is_err());
    Ok(())
}

/// `generate` keeps its batch full: rows that finish leave, waiting requests join mid-decode.
/// With answers of every length (0 to 14 new tokens), prompts of several lengths and a batch
/// smaller than the requests, every output is the one the request decodes alone, and progress
/// counts every request once.
#[test]
fn a_continuous_batch_of_unequal_answers_decodes_each_as_alone() -> Result<()> {
    let (m, tok) = (tiny(), words());
    let reqs: Vec<(Vec<u32>, SamplingParams)> = (0..11u32)
        .map(|i| {
            let prompt: Vec<u32> = (0..(2 + i % 4)).map(|j| 3 + (i * 7 + j * 5) % 30).collect();
            let params = SamplingParams {
                max_new_tokens: [0, 14, 3, 9, 1, 12, 5, 14, 2, 7, 11][i as usize],
                temperature: if i % 3 == 0 { 0.8 } else { 0.0 },
                seed: i as u64,
                ignore_eos: true,
                ..SamplingParams::default()
            };
            (prompt, params)
        })
        .collect();
    let mut progress = 0;
    let together = generate(&m, &tok, &reqs, 4, &mut |n| progress += n)?;
    assert_eq!(progress, reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let alone = generate(&m, &tok, std::slice::from_ref(r), 1, &mut |_| {})?;
        assert_eq!(
            together[i].token_ids.len(),
            r.1.max_new_tokens,
            "request {i}"
        );
        assert_eq!(alone[0].token_ids, together[i].token_ids, "request {i}");
        assert_eq!(alone[0].prompt_tokens, together[i].prompt_tokens);
        let d = alone[0]
            .logprobs
            .iter()
            .zip(&together[i].logprobs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-4, "request {i}: logprobs differ by {d}");
    }
    Ok(())
}

/// K samples of one question share their prompt: it is prefilled once and the cache copied to
/// each sample, which then decodes with its own seed exactly as it would alone.
#[test]
fn requests_sharing_a_prompt_are_prefilled_once_and_decode_as_alone() -> Result<()> {
    let (m, tok) = (tiny(), words());
    let a: Vec<u32> = vec![5, 9, 13, 2, 30, 7];
    let b: Vec<u32> = vec![11, 4, 25];
    let c: Vec<u32> = vec![3, 8];
    let req = |p: &Vec<u32>, temperature: f64, seed: u64, n: usize| {
        (
            p.clone(),
            SamplingParams {
                max_new_tokens: n,
                temperature,
                seed,
                ignore_eos: true,
                ..SamplingParams::default()
            },
        )
    };
    let reqs = vec![
        req(&a, 1.0, 1, 12),
        req(&b, 0.0, 0, 5),
        req(&a, 1.0, 2, 12),
        req(&c, 0.7, 9, 8),
        req(&a, 1.0, 3, 4),
        req(&b, 0.9, 4, 10),
        req(&a, 0.0, 0, 6),
    ];
    // in one batch (four distinct rows prefilled for seven requests) and continuously, in
    // batches of three
    for batch in [7, 3] {
        let together = generate(&m, &tok, &reqs, batch, &mut |_| {})?;
        for (i, r) in reqs.iter().enumerate() {
            let alone = generate(&m, &tok, std::slice::from_ref(r), 1, &mut |_| {})?;
            assert_eq!(
                alone[0].token_ids, together[i].token_ids,
                "batch {batch}, request {i}"
            );
            assert_eq!(together[i].prompt_tokens, r.0.len());
        }
        assert_ne!(
            together[0].token_ids, together[2].token_ids,
            "samples of one prompt with different seeds are not copies of each other"
        );
    }
    Ok(())
}
