//! The written-out CPU training step (`cpu_train`) computes what autograd computes: the same
//! per-position losses and the same gradient for every weight, on tiny models of each
//! supported shape (tied and untied head, Qwen2's biases, grouped and plain attention), with
//! ignored positions, several loss chunks and more than one causal attention block.

use std::collections::HashMap;

use candle_core::{Device, Result, Tensor, TensorId};
use mentor_model::load::{Student, Tuning, Weights};
use mentor_model::loss::chunked_lm_loss;
use mentor_model::{cpu_train, LlamaConfig, LoraConfig};

fn config(tied: bool, bias: bool, kv_heads: usize) -> LlamaConfig {
    LlamaConfig {
        tie_word_embeddings: tied,
        attention_bias: bias,
        num_key_value_heads: kv_heads,
        max_position_embeddings: 128,
        ..LlamaConfig::tiny(40)
    }
}

/// `rows × width` pseudo-random ids, next-token targets and weights with a masked prompt and
/// per-task weights (0.3 on one row's targets).
fn batch(rows: usize, width: usize, vocab: u32) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let mut ids = Vec::new();
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for r in 0..rows {
        let seq: Vec<u32> = (0..=width as u32)
            .map(|i| (r as u32 * 13 + i * 7 + i * i) % vocab)
            .collect();
        ids.extend_from_slice(&seq[..width]);
        targets.extend_from_slice(&seq[1..]);
        weights.extend((0..width).map(|p| match (p < width / 3, r % 2) {
            (true, _) => 0.0,
            (false, 0) => 1.0,
            (false, _) => 0.3,
        }));
    }
    (ids, targets, weights)
}

fn max_rel_gap(a: &Tensor, b: &Tensor) -> Result<f32> {
    let scale = a.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-6);
    Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
}

/// Runs one step both ways on `student` and checks the per-position losses and every
/// trainable variable's gradient; returns the written-out step's gradients.
fn matches_autograd(student: &Student, what: &str) -> Result<HashMap<TensorId, Tensor>> {
    let dev = Device::Cpu;
    assert!(cpu_train::supported(&student.model), "{what}");
    let vocab = student.model.cfg.vocab_size as u32;
    // 70 positions: the attention's causal blocks are 64 queries, so a second, partial one
    let (rows, width) = (3, 70);
    let (ids, targets, weights) = batch(rows, width, vocab);
    let norm = 7.5; // as if other micro-batches shared the step
    let chunk = 50; // several loss chunks

    let direct = cpu_train::loss_and_grads(
        &student.model,
        &ids,
        rows,
        width,
        &targets,
        &weights,
        norm,
        chunk,
    )?;

    let ids_t = Tensor::from_vec(ids.clone(), (rows, width), &dev)?;
    let hidden = student.model.forward_hidden(&ids_t)?;
    let reference = chunked_lm_loss(
        &hidden,
        student.model.lm_head_weight(),
        &targets,
        &weights,
        Some(norm),
        chunk,
    )?;
    let grads = reference.surrogate.as_ref().unwrap().backward()?;

    assert!(
        (direct.loss.weighted_nll - reference.weighted_nll).abs()
            < 1e-4 * reference.weighted_nll.abs(),
        "{what}: weighted nll {} vs {}",
        direct.loss.weighted_nll,
        reference.weighted_nll
    );
    for (i, (a, b)) in direct.loss.nll.iter().zip(&reference.nll).enumerate() {
        assert!((a - b).abs() < 1e-4, "{what}: nll at {i}: {a} vs {b}");
    }
    for (name, var) in &student.trainable() {
        let want = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{what}: autograd has no gradient for {name}"));
        let got = direct
            .grads
            .get(&var.id())
            .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        assert_eq!(got.dims(), want.dims(), "{what}: {name}");
        let norm = want.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(norm > 0.0, "{what}: {name}'s gradient is zero");
        let gap = max_rel_gap(want, got)?;
        assert!(gap < 1e-4, "{what}: {name}: relative gap {gap}");
    }
    Ok(direct.grads)
}

#[test]
fn written_out_step_matches_autograd() -> Result<()> {
    for (tied, bias, kv) in [(true, false, 2), (false, true, 4), (true, true, 1)] {
        let cfg = config(tied, bias, kv);
        let student = Student::random(&cfg, &Device::Cpu, 11)?;
        assert_eq!(student.tuning, Tuning::Full);
        assert!(student.trainable().len() >= 2 * 9 + 2);
        matches_autograd(&student, &format!("tied={tied} bias={bias} kv={kv}"))?;
    }
    Ok(())
}

/// A LoRA student (adapters on some projections, as a config may choose) trains through the
/// written-out step too: the adapters' gradients match autograd's and the frozen base gets
/// none (not even the head's or the embedding's, which autograd never computes for constants).
#[test]
fn written_out_lora_step_matches_autograd() -> Result<()> {
    let dev = Device::Cpu;
    for (tied, bias, kv) in [(true, false, 2), (false, true, 4)] {
        let cfg = config(tied, bias, kv);
        let base = Student::random(&cfg, &dev, 11)?;
        let tensors = base
            .trainable()
            .into_iter()
            .map(|(name, v)| (name, v.as_tensor().clone()))
            .collect();
        let weights = Weights {
            config: cfg.clone(),
            tensors,
            source: "random".into(),
            gguf_metadata: None,
            quantized: Default::default(),
        };
        let lora = LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
                .map(String::from)
                .to_vec(),
        };
        let student = Student::new(weights, Tuning::Lora(lora), &dev, 5)?;
        // B starts at zero, which would make every A's gradient zero: give it values
        for (i, (name, var)) in student.trainable().into_iter().enumerate() {
            if name.ends_with("lora_B.weight") {
                let n = var.elem_count();
                let v: Vec<f32> = (0..n)
                    .map(|j| (((i * 31 + j * 17) % 23) as f32 - 11.0) * 0.004)
                    .collect();
                var.set(&Tensor::from_vec(v, var.shape(), &dev)?)?;
            }
        }
        let trainable = student.trainable();
        assert_eq!(
            trainable.len(),
            2 * 5 * 2,
            "two layers × five adapters × (A, B)"
        );
        let what = format!("lora tied={tied} bias={bias} kv={kv}");
        let grads = matches_autograd(&student, &what)?;
        assert_eq!(
            grads.len(),
            trainable.len(),
            "{what}: gradients only for the adapters"
        );
        assert!(
            !grads.contains_key(&student.model.lm_head_weight().id()),
            "{what}"
        );
    }
    Ok(())
}

#[test]
fn a_batch_without_weighted_positions_has_no_gradients() -> Result<()> {
    let cfg = config(true, false, 2);
    let student = Student::random(&cfg, &Device::Cpu, 3)?;
    let (ids, targets, _) = batch(2, 6, cfg.vocab_size as u32);
    let out = cpu_train::loss_and_grads(&student.model, &ids, 2, 6, &targets, &[0.0; 12], 1.0, 4)?;
    assert!(out.grads.is_empty());
    assert_eq!(out.loss.weight, 0.0);
    Ok(())
}

#[test]
fn out_of_vocabulary_ids_are_an_error() -> Result<()> {
    let cfg = config(true, false, 2);
    let student = Student::random(&cfg, &Device::Cpu, 3)?;
    let err = cpu_train::loss_and_grads(&student.model, &[1, 99], 1, 2, &[2, 3], &[1.0; 2], 1.0, 4)
        .err()
        .expect("id 99 is outside a 40-token vocabulary");
    assert!(err.to_string().contains("99"), "{err}");
    Ok(())
}
