//! The decoder's whole training step on CPU, written out: forward, chunked loss and backward
//! with the GEMMs called directly, and no autograd graph.
//!
//! Why: through candle's autograd a step of SmolLM2-135M ran at about half of PyTorch's speed
//! with the same GEMM throughput (BENCHMARKS.md). The time went around the GEMMs: every
//! gradient zero-filled and then added, weight gradients transposed through a strided add, the
//! attention's head transposes copied, serial bookkeeping between parallel kernels. Here each
//! GEMM reads its operands through strides and writes, or accumulates (`dst += a·b`), straight
//! into the buffer the next step reads: weight gradients sum into one buffer per weight, the
//! residual adds are GEMMs that accumulate into a copy of the stream, the heads are strided
//! views of the projections' outputs.
//!
//! It covers a plain decoder (Llama, SmolLM2, Qwen2 with its q/k/v biases) in f32, the CPU
//! training case: full fine-tuning, or LoRA, where every projection may carry an adapter and
//! only the adapters get gradients (the frozen base's weight gradients, the head's and the
//! embedding's are never computed; autograd's graph kept ~6× the memory a token, so this
//! path also peaks lower). [`Llama::dense`](crate::llama::Llama) says when it applies and the
//! trainer falls back to autograd otherwise (bf16, GPU, Gemma). `tests/cpu_train.rs` checks
//! the loss and every gradient against autograd, with and without adapters.

use std::collections::HashMap;

use candle_core::{Device, Result, Storage, Tensor, TensorId};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::kd::KdTerm;
use crate::llama::{DenseModel, DenseProj, Llama};
use crate::loss::{xent_rows_cpu, LmLoss};
use crate::ops::slices::{self, normed, rms_norm, rms_norm_backward, silu_mul, silu_mul_backward};
use crate::ops::Shared;

/// Loss and gradients of one micro-batch.
pub struct StepGrads {
    /// As [`crate::loss::chunked_lm_loss`] reports it (no surrogate: the gradients are here).
    pub loss: LmLoss,
    /// The gradient of `Σ w·nll / norm` for every weight, by the weight tensor's id.
    pub grads: HashMap<TensorId, Tensor>,
}

/// Whether [`loss_and_grads`] can run `model` (a plain f32 decoder on the CPU).
pub fn supported(model: &Llama) -> bool {
    model.device().is_cpu() && model.dense().is_some()
}

/// Forward, loss and backward of `ids` (`rows × width`, row-major) against `targets` with
/// `weights` (per position, 0 = ignored), the gradients being those of `Σ w·nll / norm`. At most
/// `chunk` rows of logits exist at a time.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grads(
    model: &Llama,
    ids: &[u32],
    rows: usize,
    width: usize,
    targets: &[u32],
    weights: &[f32],
    norm: f64,
    chunk: usize,
) -> Result<StepGrads> {
    loss_and_grads_with(model, ids, rows, width, targets, weights, norm, chunk, None)
}

/// [`loss_and_grads`] with a token-level distillation term mixed into the loss.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grads_with(
    model: &Llama,
    ids: &[u32],
    rows: usize,
    width: usize,
    targets: &[u32],
    weights: &[f32],
    norm: f64,
    chunk: usize,
    kd: Option<&KdTerm>,
) -> Result<StepGrads> {
    let Some(m) = model.dense().filter(|_| model.device().is_cpu()) else {
        candle_core::bail!("cpu_train: not a plain f32 decoder on the CPU");
    };
    let n = rows * width;
    if ids.len() != n || targets.len() != n || weights.len() != n {
        candle_core::bail!(
            "cpu_train: {rows}×{width} positions but {} ids, {} targets, {} weights",
            ids.len(),
            targets.len(),
            weights.len()
        );
    }
    if width > m.rope.max_positions() {
        candle_core::bail!(
            "sequences of {width} tokens are longer than the model's {} positions",
            m.rope.max_positions()
        );
    }
    let cfg = m.cfg;
    let vocab = cfg.vocab_size;
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        candle_core::bail!("token id {bad} is outside the vocabulary ({vocab})");
    }
    let shape = Shape {
        b: rows,
        t: width,
        d: cfg.hidden_size,
        h: cfg.num_attention_heads,
        kv: cfg.num_key_value_heads,
        hd: cfg.head_dim(),
        inter: cfg.intermediate_size,
        eps: cfg.rms_norm_eps as f32,
        scale: m.scale as f32,
    };
    let keep: Vec<usize> = (0..n).filter(|&i| weights[i] > 0.0).collect();
    let mut loss = LmLoss {
        weighted_nll: 0.0,
        weight: keep.iter().map(|&i| weights[i] as f64).sum(),
        nll: vec![0.0; n],
        surrogate: None,
        weighted_kd: 0.0,
    };
    if keep.is_empty() {
        // nothing to learn from: no gradients, as autograd gives none
        return Ok(StepGrads {
            loss,
            grads: HashMap::new(),
        });
    }
    keep_freed_memory();
    let w = Weights::read(&m)?;
    let mut g = Grads::new(&m);
    let mut lap = lap_timer();

    // forward, keeping what the backward reads
    let d = shape.d;
    let mut x = vec![0f32; n * d];
    x.par_chunks_mut(d).zip(ids).for_each(|(row, &id)| {
        row.copy_from_slice(&w.embed[id as usize * d..][..d]);
    });
    let mut saved = Vec::with_capacity(w.layers.len());
    for lw in &w.layers {
        let (out, s) = layer_forward(&shape, lw, &m, x);
        saved.push(s);
        x = out;
    }
    let (hidden, final_rstd) = rms_norm(&x, w.norm, shape.eps);
    lap("forward");

    // loss over the weighted positions, chunk by chunk
    let mut d_hidden = vec![0f32; n * d];
    // one logits buffer for every chunk (the GEMM overwrites it): fresh pages cost faults
    let mut logits = Vec::new();
    for part in keep.chunks(chunk.max(1)) {
        let c = part.len();
        let mut h = vec![0f32; c * d];
        for (dst, &i) in h.chunks_mut(d).zip(part) {
            dst.copy_from_slice(&hidden[i * d..][..d]);
        }
        logits.resize(c * vocab, 0.0);
        linear(&mut logits, &h, w.lm_head, c, d, vocab, false);
        let tgt: Vec<u32> = part.iter().map(|&i| targets[i]).collect();
        let scale: Vec<f32> = part
            .iter()
            .map(|&i| (weights[i] as f64 / norm) as f32)
            .collect();
        let student = kd.map(|_| logits.clone());
        let (nll, dlogits) = xent_rows_cpu(std::mem::take(&mut logits), &tgt, Some(&scale));
        let mut dlogits = dlogits.expect("asked for the gradient");
        if let (Some(kd), Some(student)) = (kd, student) {
            let kd_loss = kd.apply(part, &student, vocab, Some(&scale), Some(&mut dlogits))?;
            for (&i, v) in part.iter().zip(&kd_loss) {
                loss.weighted_kd += (*v * weights[i]) as f64;
            }
        }
        for (&i, v) in part.iter().zip(&nll) {
            loss.nll[i] = *v;
            loss.weighted_nll += (*v * weights[i]) as f64;
        }
        let mut dh = vec![0f32; c * d];
        linear_dx(&mut dh, &dlogits, w.lm_head, c, d, vocab, false);
        if let Some(gh) = g.lm_head_mut() {
            linear_dw(gh, &dlogits, &h, c, d, vocab);
        }
        for (src, &i) in dh.chunks(d).zip(part) {
            d_hidden[i * d..][..d].copy_from_slice(src);
        }
        logits = dlogits;
    }
    drop(hidden);
    lap("loss");

    // backward
    let mut dx = vec![0f32; n * d];
    rms_norm_backward(
        &mut dx,
        &mut g.norm,
        &x,
        &final_rstd,
        w.norm,
        &d_hidden,
        false,
    );
    drop((d_hidden, x));
    for (i, s) in saved.into_iter().enumerate().rev() {
        dx = layer_backward(&shape, &w.layers[i], &mut g.layers[i], &m, s, dx);
    }
    let de = &mut g.embed;
    // (empty when frozen: nothing to sum into)
    let rows = if de.is_empty() { 0 } else { ids.len() };
    for (row, &id) in dx.chunks(d).zip(ids).take(rows) {
        let dst = &mut de[id as usize * d..][..d];
        dst.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    drop(w);
    lap("backward");
    Ok(StepGrads {
        loss,
        grads: g.into_tensors(&m)?,
    })
}

/// Asks glibc's allocator to keep freed memory for reuse. A step allocates and frees the same
/// gigabytes of activations and gradients each time; by default glibc maps buffers of a few MB
/// and more afresh and hands freed heap tops back to the kernel, so every step paid for ~10⁵
/// page faults and the TLB shootdowns of unmapping them (~5 % of a step's samples). Trimming is
/// off, not just raised: the ~2 GB of activations freed by a backward exceed any threshold, and
/// were handed back (then faulted in again, 5·10⁵ faults per step) whenever nothing else held
/// the heap's top, as with MKL's GEMMs.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes the allocator's thresholds.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum
                libc::mallopt(libc::M_TRIM_THRESHOLD, -1); // never trim the heap top
            }
        });
    }
}

/// With `MENTOR_TRACE_STEP` set, a closure that prints the time since its last call.
fn lap_timer() -> impl FnMut(&str) {
    let trace = std::env::var_os("MENTOR_TRACE_STEP").is_some();
    let mut t = std::time::Instant::now();
    move |what| {
        if trace {
            let faults = minor_faults();
            eprintln!(
                "    {what}: {:.2}s ({faults} page faults so far)",
                t.elapsed().as_secs_f64()
            );
            t = std::time::Instant::now();
        }
    }
}

/// The process's minor page faults so far (Linux; 0 elsewhere): fresh buffers of a step show
/// up here, each 4 KB page a fault.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name, which is in parentheses: minflt is the 8th
    let after_name = stat.rsplit(')').next().unwrap_or("");
    after_name
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The step's sizes.
struct Shape {
    b: usize,
    t: usize,
    d: usize,
    h: usize,
    kv: usize,
    hd: usize,
    inter: usize,
    eps: f32,
    scale: f32,
}

impl Shape {
    fn n(&self) -> usize {
        self.b * self.t
    }
}

// ---------------------------------------------------------------------------------------------
// Weights and gradients as host slices

/// A projection's weight `[out, in]` and its adapter.
struct ProjWeights<'a> {
    w: &'a [f32],
    lora: Option<LoraWeights<'a>>,
}

/// `y += scale · x·Aᵀ·Bᵀ`, `A: [rank, in]`, `B: [out, rank]`.
struct LoraWeights<'a> {
    a: &'a [f32],
    b: &'a [f32],
    rank: usize,
    scale: f32,
}

struct LayerWeights<'a> {
    attn_norm: &'a [f32],
    q: ProjWeights<'a>,
    k: ProjWeights<'a>,
    v: ProjWeights<'a>,
    o: ProjWeights<'a>,
    qkv_bias: Option<(&'a [f32], &'a [f32], &'a [f32])>,
    mlp_norm: &'a [f32],
    gate: ProjWeights<'a>,
    up: ProjWeights<'a>,
    down: ProjWeights<'a>,
}

struct Weights<'a> {
    embed: &'a [f32],
    layers: Vec<LayerWeights<'a>>,
    norm: &'a [f32],
    lm_head: &'a [f32],
}

/// The contiguous f32 data of a CPU tensor. The slice outlives the read guard: the tensor
/// keeps its storage alive, and nothing writes weights during a step (the optimiser runs after).
fn host(t: &Tensor) -> Result<&[f32]> {
    let (storage, layout) = t.storage_and_layout();
    let (a, b) = layout.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("cpu_train: a weight is not contiguous".to_string())
    })?;
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("cpu_train: a weight is not on the CPU");
    };
    let s = &cpu.as_slice::<f32>()?[a..b];
    // SAFETY: see the doc comment; the pointer stays valid while `t` lives, which bounds the
    // returned lifetime.
    Ok(unsafe { std::slice::from_raw_parts(s.as_ptr(), s.len()) })
}

fn proj<'a>(p: &'a DenseProj<'a>) -> Result<ProjWeights<'a>> {
    let lora = match p.lora {
        Some((a, b, scale)) => Some(LoraWeights {
            a: host(a)?,
            b: host(b)?,
            rank: a.dim(0)?,
            scale: scale as f32,
        }),
        None => None,
    };
    Ok(ProjWeights {
        w: host(p.w)?,
        lora,
    })
}

impl<'a> Weights<'a> {
    fn read(m: &'a DenseModel<'a>) -> Result<Self> {
        let layers = m
            .layers
            .iter()
            .map(|l| {
                Ok(LayerWeights {
                    attn_norm: host(l.attn_norm)?,
                    q: proj(&l.q)?,
                    k: proj(&l.k)?,
                    v: proj(&l.v)?,
                    o: proj(&l.o)?,
                    qkv_bias: match l.qkv_bias {
                        Some((q, k, v)) => Some((host(q)?, host(k)?, host(v)?)),
                        None => None,
                    },
                    mlp_norm: host(l.mlp_norm)?,
                    gate: proj(&l.gate)?,
                    up: proj(&l.up)?,
                    down: proj(&l.down)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Weights {
            embed: host(m.embed)?,
            layers,
            norm: host(m.norm)?,
            lm_head: host(m.lm_head)?,
        })
    }
}

/// A projection's gradients: of its weight (empty when the base is frozen) and of its
/// adapter's `A` and `B` (empty without one).
#[derive(Default)]
struct ProjGrads {
    w: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
}

#[derive(Default)]
struct LayerGrads {
    attn_norm: Vec<f32>,
    q: ProjGrads,
    k: ProjGrads,
    v: ProjGrads,
    o: ProjGrads,
    qkv_bias: Option<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    mlp_norm: Vec<f32>,
    gate: ProjGrads,
    up: ProjGrads,
    down: ProjGrads,
}

/// Every weight's gradient buffer. With adapters only theirs are allocated (a frozen
/// embedding alone would be 0.5 GB for Qwen2.5's vocabulary); the norms' are computed anyway
/// (a few KB, it keeps one backward) and dropped.
struct Grads {
    /// Empty when frozen.
    embed: Vec<f32>,
    layers: Vec<LayerGrads>,
    norm: Vec<f32>,
    /// Untied output head; a tied one sums into `embed`.
    lm_head: Option<Vec<f32>>,
}

impl Grads {
    fn new(m: &DenseModel) -> Self {
        let z = |t: &Tensor| vec![0f32; t.elem_count()];
        let base = !m.adapters;
        let zb = |t: &Tensor| if base { z(t) } else { Vec::new() };
        let pg = |p: &DenseProj| ProjGrads {
            w: zb(p.w),
            a: p.lora.map_or_else(Vec::new, |(a, _, _)| z(a)),
            b: p.lora.map_or_else(Vec::new, |(_, b, _)| z(b)),
        };
        Grads {
            embed: zb(m.embed),
            layers: m
                .layers
                .iter()
                .map(|l| LayerGrads {
                    attn_norm: z(l.attn_norm),
                    q: pg(&l.q),
                    k: pg(&l.k),
                    v: pg(&l.v),
                    o: pg(&l.o),
                    qkv_bias: l
                        .qkv_bias
                        .filter(|_| base)
                        .map(|(q, k, v)| (z(q), z(k), z(v))),
                    mlp_norm: z(l.mlp_norm),
                    gate: pg(&l.gate),
                    up: pg(&l.up),
                    down: pg(&l.down),
                })
                .collect(),
            norm: z(m.norm),
            lm_head: (base && !m.tied).then(|| z(m.lm_head)),
        }
    }

    /// The output head's gradient buffer, `None` when the base is frozen.
    fn lm_head_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.lm_head {
            Some(h) => Some(h),
            None if !self.embed.is_empty() => Some(&mut self.embed),
            None => None,
        }
    }

    fn into_tensors(self, m: &DenseModel) -> Result<HashMap<TensorId, Tensor>> {
        let base = !m.adapters;
        let mut out = HashMap::new();
        let mut put = |t: &Tensor, g: Vec<f32>| -> Result<()> {
            if !g.is_empty() {
                out.insert(t.id(), Tensor::from_vec(g, t.shape(), &Device::Cpu)?);
            }
            Ok(())
        };
        let mut put_proj = |p: &DenseProj, g: ProjGrads| -> Result<()> {
            put(p.w, g.w)?;
            if let Some((a, b, _)) = p.lora {
                put(a, g.a)?;
                put(b, g.b)?;
            }
            Ok(())
        };
        let norms = |g: Vec<f32>| if base { g } else { Vec::new() };
        let mut rest = Vec::new();
        rest.push((m.embed, self.embed));
        rest.push((m.norm, norms(self.norm)));
        if let Some(gh) = self.lm_head {
            rest.push((m.lm_head, gh));
        }
        for (l, g) in m.layers.iter().zip(self.layers) {
            put_proj(&l.q, g.q)?;
            put_proj(&l.k, g.k)?;
            put_proj(&l.v, g.v)?;
            put_proj(&l.o, g.o)?;
            put_proj(&l.gate, g.gate)?;
            put_proj(&l.up, g.up)?;
            put_proj(&l.down, g.down)?;
            rest.push((l.attn_norm, norms(g.attn_norm)));
            rest.push((l.mlp_norm, norms(g.mlp_norm)));
            if let (Some((q, k, v)), Some((gq, gk, gv))) = (l.qkv_bias, g.qkv_bias) {
                rest.extend([(q, gq), (k, gk), (v, gv)]);
            }
        }
        for (t, g) in rest {
            put(t, g)?;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// One layer

/// What a layer's backward reads: its input, the attention's q (roped), k (roped), v,
/// probabilities and output, the stream after attention, the MLP's gate and up projections,
/// and both norms' inverse RMS. The normed inputs and the MLP activation are recomputed.
struct Saved {
    x: Vec<f32>,
    rstd_attn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    probs: Vec<f32>,
    attn: Vec<f32>,
    mid: Vec<f32>,
    rstd_mlp: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
}

fn layer_forward(s: &Shape, w: &LayerWeights, m: &DenseModel, x: Vec<f32>) -> (Vec<f32>, Saved) {
    let (n, d, hd) = (s.n(), s.d, s.hd);
    let (qd, kvd) = (s.h * hd, s.kv * hd);
    let (xn, rstd_attn) = rms_norm(&x, w.attn_norm, s.eps);
    let mut q = vec![0f32; n * qd];
    let mut k = vec![0f32; n * kvd];
    let mut v = vec![0f32; n * kvd];
    proj_forward(&mut q, &xn, &w.q, n, d, qd, false);
    proj_forward(&mut k, &xn, &w.k, n, d, kvd, false);
    proj_forward(&mut v, &xn, &w.v, n, d, kvd, false);
    drop(xn);
    if let Some((bq, bk, bv)) = w.qkv_bias {
        add_rows(&mut q, bq);
        add_rows(&mut k, bk);
        add_rows(&mut v, bv);
    }
    rope(&mut q, s, s.h, m, false);
    rope(&mut k, s, s.kv, m, false);
    let (probs, attn) = attention_forward(s, &q, &k, &v);
    // mid = x + attn·Woᵀ, accumulated onto a copy of the stream
    let mut mid = x.clone();
    proj_forward(&mut mid, &attn, &w.o, n, qd, d, true);
    let (xn2, rstd_mlp) = rms_norm(&mid, w.mlp_norm, s.eps);
    let mut gate = vec![0f32; n * s.inter];
    let mut up = vec![0f32; n * s.inter];
    proj_forward(&mut gate, &xn2, &w.gate, n, d, s.inter, false);
    proj_forward(&mut up, &xn2, &w.up, n, d, s.inter, false);
    drop(xn2);
    let act = silu_mul(&gate, &up);
    let mut out = mid.clone();
    proj_forward(&mut out, &act, &w.down, n, s.inter, d, true);
    (
        out,
        Saved {
            x,
            rstd_attn,
            q,
            k,
            v,
            probs,
            attn,
            mid,
            rstd_mlp,
            gate,
            up,
        },
    )
}

/// The gradient w.r.t. the layer's input from `dout`, the one w.r.t. its output; weight
/// gradients accumulate into `g`.
fn layer_backward(
    s: &Shape,
    w: &LayerWeights,
    g: &mut LayerGrads,
    m: &DenseModel,
    saved: Saved,
    dout: Vec<f32>,
) -> Vec<f32> {
    let (n, d, hd, inter) = (s.n(), s.d, s.hd, s.inter);
    let (qd, kvd) = (s.h * hd, s.kv * hd);
    let Saved {
        x,
        rstd_attn,
        q,
        k,
        v,
        probs,
        attn,
        mid,
        rstd_mlp,
        mut gate,
        mut up,
    } = saved;

    // MLP: out = mid + silu(gate)·up·Wdᵀ
    let act = silu_mul(&gate, &up);
    let mut dact = vec![0f32; n * inter];
    proj_backward(
        &mut dact,
        false,
        &dout,
        &act,
        &w.down,
        &mut g.down,
        n,
        inter,
        d,
    );
    drop(act);
    silu_mul_backward(&mut gate, &mut up, &dact); // now d gate, d up
    drop(dact);
    let xn2 = normed(&mid, &rstd_mlp, w.mlp_norm);
    let mut dxn2 = vec![0f32; n * d];
    proj_backward(
        &mut dxn2,
        false,
        &gate,
        &xn2,
        &w.gate,
        &mut g.gate,
        n,
        d,
        inter,
    );
    proj_backward(&mut dxn2, true, &up, &xn2, &w.up, &mut g.up, n, d, inter);
    drop((xn2, gate, up));
    // d mid = d out + the norm's backward, summed in place
    let mut dmid = dout;
    rms_norm_backward(
        &mut dmid,
        &mut g.mlp_norm,
        &mid,
        &rstd_mlp,
        w.mlp_norm,
        &dxn2,
        true,
    );
    drop((dxn2, mid));

    // attention: mid = x + attn·Woᵀ
    let mut dattn = vec![0f32; n * qd];
    proj_backward(&mut dattn, false, &dmid, &attn, &w.o, &mut g.o, n, qd, d);
    drop(attn);
    let (mut dq, mut dk, dv) = attention_backward(s, &q, &k, &v, &probs, &dattn);
    drop((q, k, v, probs, dattn));
    rope(&mut dq, s, s.h, m, true);
    rope(&mut dk, s, s.kv, m, true);
    if let Some((bq, bk, bv)) = g.qkv_bias.as_mut() {
        column_sums(bq, &dq);
        column_sums(bk, &dk);
        column_sums(bv, &dv);
    }
    let xn = normed(&x, &rstd_attn, w.attn_norm);
    let mut dxn = vec![0f32; n * d];
    proj_backward(&mut dxn, false, &dq, &xn, &w.q, &mut g.q, n, d, qd);
    proj_backward(&mut dxn, true, &dk, &xn, &w.k, &mut g.k, n, d, kvd);
    proj_backward(&mut dxn, true, &dv, &xn, &w.v, &mut g.v, n, d, kvd);
    drop((xn, dq, dk, dv));
    let mut dx = dmid;
    rms_norm_backward(
        &mut dx,
        &mut g.attn_norm,
        &x,
        &rstd_attn,
        w.attn_norm,
        &dxn,
        true,
    );
    dx
}

// ---------------------------------------------------------------------------------------------
// Projections: a weight and its adapter

/// `y (+)= x·Wᵀ + scale · x·Aᵀ·Bᵀ` for `x: [n, in]`, `y: [n, out]`.
#[allow(clippy::too_many_arguments)]
fn proj_forward(
    y: &mut [f32],
    x: &[f32],
    p: &ProjWeights,
    n: usize,
    inp: usize,
    out: usize,
    acc: bool,
) {
    linear(y, x, p.w, n, inp, out, acc);
    if let Some(l) = &p.lora {
        let xa = lora_down(x, l, n, inp);
        linear(y, &xa, l.b, n, l.rank, out, true);
    }
}

/// `scale · x·Aᵀ`, `[n, rank]`: recomputed in the backward rather than kept (2·n·in·rank
/// flops against the projection's 2·n·in·out).
fn lora_down(x: &[f32], l: &LoraWeights, n: usize, inp: usize) -> Vec<f32> {
    let mut xa = vec![0f32; n * l.rank];
    linear(&mut xa, x, l.a, n, inp, l.rank, false);
    xa.iter_mut().for_each(|v| *v *= l.scale);
    xa
}

/// The backward of [`proj_forward`] for the output gradient `dy`: `dx (+)= dy·W + scale ·
/// dy·B·A`; the weight's gradient (when the base trains) and the adapter's `A` and `B`
/// accumulate into `g`.
#[allow(clippy::too_many_arguments)]
fn proj_backward(
    dx: &mut [f32],
    acc: bool,
    dy: &[f32],
    x: &[f32],
    p: &ProjWeights,
    g: &mut ProjGrads,
    n: usize,
    inp: usize,
    out: usize,
) {
    if !g.w.is_empty() {
        linear_dw(&mut g.w, dy, x, n, inp, out);
    }
    linear_dx(dx, dy, p.w, n, inp, out, acc);
    if let Some(l) = &p.lora {
        let r = l.rank;
        let xa = lora_down(x, l, n, inp);
        linear_dw(&mut g.b, dy, &xa, n, r, out); // dB += dyᵀ·(scale·x·Aᵀ)
        drop(xa);
        let mut u = vec![0f32; n * r];
        linear_dx(&mut u, dy, l.b, n, r, out, false);
        u.iter_mut().for_each(|v| *v *= l.scale); // u = scale · dy·B
        linear_dw(&mut g.a, &u, x, n, inp, r); // dA += uᵀ·x
        linear_dx(dx, &u, l.a, n, inp, r, true); // dx += u·A
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM

/// `c (+)= a·b`, `a` m×k and `b` k×n read through strides (element (i, j) of `a` at
/// `a[i·a_rs + j·a_cs]`), `c` row-major with row stride `c_rs`.
///
/// # Safety
/// Every element the strides reach must lie in the buffers, and `c`'s must not be written by
/// anyone else during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    (m, n, k): (usize, usize, usize),
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    (a, a_rs, a_cs): (*const f32, usize, usize),
    (b, b_rs, b_cs): (*const f32, usize, usize),
    parallel: bool,
) {
    if parallel {
        if let Some(mkl) = crate::mkl::mkl() {
            // MKL runs sequentially in each of our threads, on its share of c's rows (or
            // columns, when c is wide: then each packs only its part of b)
            let threads = rayon::current_num_threads().max(1);
            let by_rows = m >= n;
            let len = if by_rows { m } else { n };
            let per = len.div_ceil(threads).max(1);
            let (c, a_ptr, b_ptr) = (Shared(c), Shared(a as *mut f32), Shared(b as *mut f32));
            (0..len.div_ceil(per)).into_par_iter().for_each(|part| {
                let (i0, count) = (part * per, per.min(len - part * per));
                // SAFETY: rows (or columns) i0..i0+count of c, with a's rows (b's columns),
                // are a part of what the caller vouched for; parts are disjoint.
                unsafe {
                    let (a, b) = (a_ptr.ptr() as *const f32, b_ptr.ptr() as *const f32);
                    let (shape, c_at, a_at, b_at) = if by_rows {
                        ((count, n, k), c.ptr().add(i0 * c_rs), a.add(i0 * a_rs), b)
                    } else {
                        ((m, count, k), c.ptr().add(i0), a, b.add(i0 * b_cs))
                    };
                    mkl.sgemm(
                        shape,
                        c_at,
                        c_rs,
                        accumulate,
                        (a_at, a_rs, a_cs),
                        (b_at, b_rs, b_cs),
                    )
                }
            });
            return;
        }
    }
    let par = if parallel {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs as isize,
        accumulate,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// `y[n, out] (+)= x[n, in] · wᵀ` for a weight `w[out, in]`.
fn linear(y: &mut [f32], x: &[f32], w: &[f32], n: usize, inp: usize, out: usize, acc: bool) {
    assert!(y.len() == n * out && x.len() == n * inp && w.len() == out * inp);
    // SAFETY: the sizes are checked above; `y` is borrowed mutably.
    unsafe {
        gemm_raw(
            (n, out, inp),
            y.as_mut_ptr(),
            out,
            acc,
            (x.as_ptr(), inp, 1),
            (w.as_ptr(), 1, inp),
            true,
        )
    }
}

/// `dx[n, in] (+)= dy[n, out] · w`.
fn linear_dx(dx: &mut [f32], dy: &[f32], w: &[f32], n: usize, inp: usize, out: usize, acc: bool) {
    assert!(dx.len() == n * inp && dy.len() == n * out && w.len() == out * inp);
    // SAFETY: as in `linear`.
    unsafe {
        gemm_raw(
            (n, inp, out),
            dx.as_mut_ptr(),
            inp,
            acc,
            (dy.as_ptr(), out, 1),
            (w.as_ptr(), inp, 1),
            true,
        )
    }
}

/// `dw[out, in] += dyᵀ · x`.
fn linear_dw(dw: &mut [f32], dy: &[f32], x: &[f32], n: usize, inp: usize, out: usize) {
    assert!(dw.len() == out * inp && dy.len() == n * out && x.len() == n * inp);
    // SAFETY: as in `linear`.
    unsafe {
        gemm_raw(
            (out, inp, n),
            dw.as_mut_ptr(),
            inp,
            true,
            (dy.as_ptr(), 1, out),
            (x.as_ptr(), inp, 1),
            true,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Attention

/// Causal attention of every head. q is `[n, h·hd]`, k and v `[n, kv·hd]` (token-major, as the
/// projections wrote them); query head `j` reads kv head `j / (h / kv)`. Returns the
/// probabilities `[b, h, t, t]` and the output `[n, h·hd]`.
fn attention_forward(s: &Shape, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (t, hd, h, kv) = (s.t, s.hd, s.h, s.kv);
    let rep = h / kv;
    let (qd, kvd) = (h * hd, kv * hd);
    let mut probs = vec![0f32; s.b * h * t * t];
    let mut out = vec![0f32; s.n() * qd];
    let o = Shared(out.as_mut_ptr());
    // one task per (row, kv head): its query heads' probabilities are one contiguous block
    probs
        .par_chunks_mut(rep * t * t)
        .enumerate()
        .for_each(|(task, p_group)| {
            let (bi, g) = (task / kv, task % kv);
            let kg = &k[bi * t * kvd + g * hd..];
            let vg = &v[bi * t * kvd + g * hd..];
            for r in 0..rep {
                let head = g * rep + r;
                let p = &mut p_group[r * t * t..][..t * t];
                let qh = &q[bi * t * qd + head * hd..];
                // queries q0..q1 see keys 0..q1: the masked upper blocks are never computed
                for (q0, q1) in causal_blocks(t) {
                    let rows = q1 - q0;
                    // SAFETY: rows of t and hd elements at the strides stay inside q, k, v, p
                    // and out; this task alone writes head `head` of row `bi` in `out`.
                    unsafe {
                        gemm_raw(
                            (rows, q1, hd),
                            p[q0 * t..].as_mut_ptr(),
                            t,
                            false,
                            (qh[q0 * qd..].as_ptr(), qd, 1),
                            (kg.as_ptr(), 1, kvd),
                            false,
                        );
                    }
                    causal_softmax_rows(&mut p[q0 * t..q1 * t], t, q0, s.scale);
                    unsafe {
                        gemm_raw(
                            (rows, hd, q1),
                            o.ptr().add((bi * t + q0) * qd + head * hd),
                            qd,
                            false,
                            (p[q0 * t..].as_ptr(), t, 1),
                            (vg.as_ptr(), kvd, 1),
                            false,
                        );
                    }
                }
            }
        });
    (probs, out)
}

/// Query blocks `(q0, q1)` of a causal `t × t` attention: block rows see keys `0..q1`. 64-row
/// blocks skip ~3/8 of the square at t = 256 and keep the GEMMs large enough to run well.
fn causal_blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    const BLOCK: usize = 64;
    (0..t)
        .step_by(BLOCK)
        .map(move |q0| (q0, (q0 + BLOCK).min(t)))
}

/// In place on rows `first..` of a `t`-column score matrix: row `i` becomes
/// `softmax(scale · s[i, ..=i])`, zeros after (including columns never computed).
fn causal_softmax_rows(p: &mut [f32], t: usize, first: usize, scale: f32) {
    for (r, row) in p.chunks_mut(t).enumerate() {
        slices::softmax_prefix(row, first + r + 1, scale);
    }
}

/// Gradients of q, k and v (their forward layouts) from the attention output's gradient.
fn attention_backward(
    s: &Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dout: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (t, hd, h, kv) = (s.t, s.hd, s.h, s.kv);
    let rep = h / kv;
    let (qd, kvd) = (h * hd, kv * hd);
    let n = s.n();
    let (mut dq, mut dk, mut dv) = (vec![0f32; n * qd], vec![0f32; n * kvd], vec![0f32; n * kvd]);
    let (dqp, dkp, dvp) = (
        Shared(dq.as_mut_ptr()),
        Shared(dk.as_mut_ptr()),
        Shared(dv.as_mut_ptr()),
    );
    (0..s.b * kv).into_par_iter().for_each(|task| {
        let (bi, g) = (task / kv, task % kv);
        let kv_at = bi * t * kvd + g * hd;
        let (kg, vg) = (&k[kv_at..], &v[kv_at..]);
        let mut ds = vec![0f32; t * t];
        for r in 0..rep {
            let head = g * rep + r;
            let q_at = bi * t * qd + head * hd;
            let p = &probs[((bi * h) + head) * t * t..][..t * t];
            let doh = &dout[q_at..];
            for (q0, q1) in causal_blocks(t) {
                let rows = q1 - q0;
                let (p, ds) = (&p[q0 * t..q1 * t], &mut ds[q0 * t..q1 * t]);
                let (dob, qb) = (&doh[q0 * qd..], &q[q_at + q0 * qd..]);
                // SAFETY: as in `attention_forward`; this task alone writes kv head `g` of row
                // `bi` in dk and dv, and its query heads in dq.
                unsafe {
                    // dP = dO·Vᵀ (keys 0..q1)
                    gemm_raw(
                        (rows, q1, hd),
                        ds.as_mut_ptr(),
                        t,
                        false,
                        (dob.as_ptr(), qd, 1),
                        (vg.as_ptr(), 1, kvd),
                        false,
                    );
                    // dV[..q1] += Pᵀ·dO
                    gemm_raw(
                        (q1, hd, rows),
                        dvp.ptr().add(kv_at),
                        kvd,
                        true,
                        (p.as_ptr(), 1, t),
                        (dob.as_ptr(), qd, 1),
                        false,
                    );
                }
                // dS = scale · P ⊙ (dP − Σ_j dP⊙P) over the seen keys; zero after, up to q1
                for (r, (drow, prow)) in ds.chunks_mut(t).zip(p.chunks(t)).enumerate() {
                    let seen = q0 + r + 1;
                    let (drow, prow) = (&mut drow[..q1], &prow[..q1]);
                    let dot: f32 = drow[..seen].iter().zip(prow).map(|(a, b)| a * b).sum();
                    for (dv, &pv) in drow[..seen].iter_mut().zip(prow) {
                        *dv = s.scale * pv * (*dv - dot);
                    }
                    drow[seen..].fill(0.0);
                }
                unsafe {
                    // dQ = dS·K
                    gemm_raw(
                        (rows, hd, q1),
                        dqp.ptr().add(q_at + q0 * qd),
                        qd,
                        false,
                        (ds.as_ptr(), t, 1),
                        (kg.as_ptr(), kvd, 1),
                        false,
                    );
                    // dK[..q1] += dSᵀ·Q
                    gemm_raw(
                        (q1, hd, rows),
                        dkp.ptr().add(kv_at),
                        kvd,
                        true,
                        (ds.as_ptr(), 1, t),
                        (qb.as_ptr(), qd, 1),
                        false,
                    );
                }
            }
        }
    });
    (dq, dk, dv)
}

/// Rotary embedding in place on `x: [n, heads·hd]`, token `i` of a row at position `i`
/// (`inverse`: the transposed rotation, for gradients).
fn rope(x: &mut [f32], s: &Shape, heads: usize, m: &DenseModel, inverse: bool) {
    let (t, hd) = (s.t, s.hd);
    let half = hd / 2;
    let (cos, sin) = (&m.rope.cos_host, &m.rope.sin_host);
    x.par_chunks_mut(heads * hd)
        .enumerate()
        .for_each(|(token, row)| {
            let pos = token % t;
            let (c, sn) = (&cos[pos * hd..][..hd], &sin[pos * hd..][..hd]);
            for head in row.chunks_mut(hd) {
                for i in 0..half {
                    let (x1, x2) = (head[i], head[i + half]);
                    let sn = if inverse { -sn[i] } else { sn[i] };
                    head[i] = x1 * c[i] - x2 * sn;
                    head[i + half] = x2 * c[i] + x1 * sn;
                }
            }
        });
}

// ---------------------------------------------------------------------------------------------
// Elementwise (norms and SwiGLU are `ops::slices`, shared with the autograd kernels)

fn add_rows(x: &mut [f32], bias: &[f32]) {
    x.par_chunks_mut(bias.len()).for_each(|row| {
        row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
    });
}

/// `acc += Σ_rows x` for `x: [rows, acc.len()]`.
fn column_sums(acc: &mut [f32], x: &[f32]) {
    for row in x.chunks(acc.len()) {
        acc.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
}
