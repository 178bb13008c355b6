//! A Llama-style decoder (Llama, SmolLM2, Qwen2/2.5, and Gemma 3's variant of the block): one
//! file, plain structs, a forward that reads top to bottom.
//!
//! Gemma 3 ([`GemmaConfig`]) adds to the Llama block: embeddings scaled by √d, RMS norms on
//! each head's queries and keys, norms on the attention and MLP outputs before the residual
//! adds ("sandwich" norms), a GELU (tanh) MLP gate, a head size of its own, and local layers
//! that see only the last `sliding_window` positions, with their own RoPE base. Its norm
//! weights are the multipliers (1 + w in Hugging Face's parametrisation), as GGUF files store
//! them.
//!
//! Two paths share the weights. [`Llama::forward_hidden`] is the training forward: every
//! position, differentiable, built from the fused kernels of [`crate::ops`] (each with its own
//! backward) and 2-D matmuls. [`Llama::forward_step`] is the inference forward with a KV cache
//! and left padding, for batched generation. Parameter names follow Hugging Face
//! (`model.layers.0.self_attn.q_proj.weight`, …), so safetensors checkpoints load and save as
//! they are. Optional LoRA adapters sit beside the projections named in [`LoraConfig`].
//!
//! For inference only (the embedded teacher), [`Llama::quantized`] keeps a GGUF file's
//! projections in their quantised blocks and multiplies with candle's quantised kernels: a
//! quarter of f32's memory traffic per decoded token. Such a model has no gradients.

use crate::decode_attention;
use crate::few_rows;
use crate::ops::{self, RopeTables};
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The subset of a Hugging Face `config.json` a Llama-style decoder needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Qwen2 has biases on q/k/v projections; Llama does not.
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Gemma 3's block; None for Llama, SmolLM2, Qwen2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemma: Option<GemmaConfig>,
}

/// What Gemma 3's decoder adds to the Llama block (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmaConfig {
    /// Size of a head (256 for Gemma 3 270M, whose hidden size is 640 over 4 heads).
    pub head_dim: usize,
    /// Local layers attend to positions less than this far back.
    pub sliding_window: usize,
    /// Every `sliding_window_pattern`-th layer is global, the others local.
    pub sliding_window_pattern: usize,
    /// The local layers' RoPE base (`rope_theta` is the global layers').
    pub rope_local_theta: f64,
    /// Attention scores are scaled by 1/√(this).
    pub query_pre_attn_scalar: f64,
}

impl GemmaConfig {
    /// Whether layer `i` (from 0) is a local, sliding-window layer.
    pub fn is_local(&self, i: usize) -> bool {
        !(i + 1).is_multiple_of(self.sliding_window_pattern)
    }
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}

impl LlamaConfig {
    /// Reads a Hugging Face `config.json`, refusing what this decoder would get wrong silently:
    /// other architectures, RoPE scaling, a head size other than hidden / heads. Qwen2's
    /// config does not say it has q/k/v biases; its `model_type` does.
    pub fn from_hf_json(text: &str) -> std::result::Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let model_type = v["model_type"].as_str().unwrap_or("llama");
        if !["llama", "qwen2", "mistral"].contains(&model_type) {
            return Err(format!(
                "model_type `{model_type}` is not supported (llama, qwen2, mistral)"
            ));
        }
        if !v["rope_scaling"].is_null() {
            return Err(
                "rope_scaling is not supported (Llama 3.1+ style long-context RoPE)".into(),
            );
        }
        let mut cfg: LlamaConfig = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        if model_type == "qwen2" && v.get("attention_bias").is_none() {
            cfg.attention_bias = true;
        }
        if let Some(hd) = v["head_dim"].as_u64() {
            if hd as usize != cfg.head_dim() {
                return Err(format!(
                    "head_dim {hd} differs from hidden_size / num_attention_heads ({})",
                    cfg.head_dim()
                ));
            }
        }
        Ok(cfg)
    }

    /// A few-thousand-parameter model over `vocab` tokens, for tests and examples.
    pub fn tiny(vocab: usize) -> Self {
        LlamaConfig {
            vocab_size: vocab,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            attention_bias: false,
            max_position_embeddings: 64,
            gemma: None,
        }
    }

    pub fn head_dim(&self) -> usize {
        match &self.gemma {
            Some(g) => g.head_dim,
            None => self.hidden_size / self.num_attention_heads,
        }
    }

    /// Parameter count (embeddings counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let (d, i, hd) = (self.hidden_size, self.intermediate_size, self.head_dim());
        let (q, kv) = (self.num_attention_heads * hd, self.num_key_value_heads * hd);
        let bias = if self.attention_bias { q + 2 * kv } else { 0 };
        let norms = if self.gemma.is_some() {
            4 * d + 2 * hd
        } else {
            2 * d
        };
        let layer = d * q * 2 + d * kv * 2 + bias + 3 * d * i + norms;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_hidden_layers * layer + d + head
    }
}

/// Low-rank adapters: which projections get one, their rank and scale (`alpha / rank`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Projection names, e.g. `q_proj`, `v_proj`, `gate_proj`.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 16,
            alpha: 32.0,
            targets: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// `A: [rank, in]` (random), `B: [out, rank]` (zero, so training starts from the base model).
struct Lora {
    a: Tensor,
    b: Tensor,
    scale: f64,
}

/// Quantised projection weights by HF name (`model.layers.0.mlp.up_proj.weight`), for
/// [`Llama::quantized`].
pub type QuantizedWeights = HashMap<String, Arc<QTensor>>;

/// From how many input rows on a quantised projection multiplies by its dequantised weight
/// (f32 GEMM) rather than through candle's quantised dot products. Measured on the CPU
/// (BENCHMARKS.md, "the embedded teacher's decode"): the K-quant kernels (Q4_K, Q6_K: the
/// 1.5B teacher's GGUF) beat dequantising at every size tried, prefills of 1,400 rows included,
/// and dequantising a 1.5B model's weights on each decode step of 32 rows or more made decode
/// 5× slower; the Q8_0 kernel (the 0.5B's, re-quantised) loses from a few dozen rows. Other
/// devices keep the 32 rows first chosen (not measured). `MENTOR_DEQUANTIZE_ROWS` overrides
/// all of it, to measure the crossover.
fn dequantize_from(w: &QTensor) -> usize {
    static OVERRIDE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let forced = OVERRIDE.get_or_init(|| {
        std::env::var("MENTOR_DEQUANTIZE_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(rows) = forced {
        return *rows;
    }
    use candle_core::quantized::GgmlDType as G;
    let k_quant = matches!(
        w.dtype(),
        G::Q2K | G::Q3K | G::Q4K | G::Q5K | G::Q6K | G::Q8K
    );
    if k_quant && w.device().is_cpu() {
        usize::MAX
    } else {
        32
    }
}

/// A projection's weight: dense (trainable) or quantised blocks (inference only).
enum ProjWeight {
    Dense(Tensor),
    Quantized(QMatMul),
}

/// A linear projection on 2-D input `[n, in]` → `[n, out]`, weight `[out, in]` as in HF.
struct Proj {
    weight: ProjWeight,
    bias: Option<Tensor>,
    lora: Option<Lora>,
}

impl Proj {
    fn new(
        inp: usize,
        out: usize,
        bias: bool,
        vb: VarBuilder,
        lora: Option<(&LoraConfig, VarBuilder)>,
        name: &str,
        quant: Option<&QuantizedWeights>,
    ) -> Result<Self> {
        let bound = 1.0 / (inp as f64).sqrt();
        let quantized = quant.and_then(|q| q.get(&format!("{}.weight", vb.prefix())));
        let weight = match quantized {
            Some(q) => {
                if q.shape().dims() != [out, inp] {
                    candle_core::bail!(
                        "{}.weight: shape {:?}, expected {:?}",
                        vb.prefix(),
                        q.shape(),
                        (out, inp)
                    );
                }
                ProjWeight::Quantized(QMatMul::from_arc(q.clone())?)
            }
            None => ProjWeight::Dense(vb.get_with_hints(
                (out, inp),
                "weight",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?),
        };
        let bias = if bias {
            Some(vb.get_with_hints(out, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        let lora = match lora {
            Some((cfg, lvb)) if cfg.targets.iter().any(|t| t == name) => Some(Lora {
                a: lvb.get_with_hints(
                    (cfg.rank, inp),
                    "lora_A.weight",
                    Init::Uniform {
                        lo: -bound,
                        up: bound,
                    },
                )?,
                b: lvb.get_with_hints((out, cfg.rank), "lora_B.weight", Init::Const(0.0))?,
                scale: cfg.alpha / cfg.rank as f64,
            }),
            _ => None,
        };
        Ok(Proj { weight, bias, lora })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = match &self.weight {
            // mixed precision: f32 master weights are cast to the activations' dtype here
            ProjWeight::Dense(w) => few_rows::matmul_t(x, &w.to_dtype(x.dtype())?)?,
            // many rows, where this block type's dot products are slower than the f32 GEMM
            // (`dequantize_from` says where): dequantising the weight once costs less
            ProjWeight::Quantized(QMatMul::QTensor(q)) if x.dim(0)? >= dequantize_from(q) => {
                x.matmul(&q.dequantize(x.device())?.t()?)?
            }
            ProjWeight::Quantized(q) => q.forward(x)?,
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&b.to_dtype(y.dtype())?)?;
        }
        if let Some(l) = &self.lora {
            let (a, b) = (l.a.to_dtype(x.dtype())?, l.b.to_dtype(x.dtype())?);
            y = (y + (x.matmul(&a.t()?)?.matmul(&b.t()?)? * l.scale)?)?;
        }
        Ok(y)
    }

    /// The weight with the adapter folded in: `W + scale · B·A` (quantised weights dequantised).
    fn merged_weight(&self) -> Result<Tensor> {
        let w = match &self.weight {
            ProjWeight::Dense(w) => w.clone(),
            ProjWeight::Quantized(QMatMul::QTensor(q)) => q.dequantize(&q.device())?,
            ProjWeight::Quantized(QMatMul::Tensor(w)) => w.clone(),
            ProjWeight::Quantized(QMatMul::TensorF16(w)) => w.to_dtype(DType::F32)?,
        };
        match &self.lora {
            Some(l) => w
                .to_dtype(l.a.dtype())?
                .add(&(l.b.matmul(&l.a)? * l.scale)?),
            None => Ok(w),
        }
    }
}

struct Attention {
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    o_proj: Proj,
    /// Gemma 3: RMS norms over each head's queries and keys, before RoPE.
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    eps: f64,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Scores are multiplied by this: 1/√head_dim (Gemma: 1/√query_pre_attn_scalar).
    scale: f64,
}

impl Attention {
    fn new(
        cfg: &LlamaConfig,
        vb: VarBuilder,
        lora: Option<(&LoraConfig, VarBuilder)>,
        quant: Option<&QuantizedWeights>,
    ) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let (h, kv, b) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.attention_bias,
        );
        let proj = |name: &str, inp: usize, out: usize, bias: bool| {
            let l = lora.as_ref().map(|(c, v)| (*c, v.pp(name)));
            Proj::new(inp, out, bias, vb.pp(name), l, name, quant)
        };
        let head_norm = |name: &str| -> Result<Option<Tensor>> {
            cfg.gemma
                .as_ref()
                .map(|_| vb.pp(name).get_with_hints(hd, "weight", Init::Const(1.0)))
                .transpose()
        };
        let scale = match &cfg.gemma {
            Some(g) => 1.0 / g.query_pre_attn_scalar.sqrt(),
            None => 1.0 / (hd as f64).sqrt(),
        };
        Ok(Attention {
            q_proj: proj("q_proj", d, h * hd, b)?,
            k_proj: proj("k_proj", d, kv * hd, b)?,
            v_proj: proj("v_proj", d, kv * hd, b)?,
            o_proj: proj("o_proj", h * hd, d, false)?,
            q_norm: head_norm("q_norm")?,
            k_norm: head_norm("k_norm")?,
            eps: cfg.rms_norm_eps,
            heads: h,
            kv_heads: kv,
            head_dim: hd,
            scale,
        })
    }

    /// q `[b, t, h, hd]`, k and v `[b, t, kv, hd]` from `x: [b·t, d]`.
    fn qkv(&self, x: &Tensor, b: usize, t: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let hd = self.head_dim;
        let mut q = self.q_proj.forward(x)?.reshape((b, t, self.heads, hd))?;
        let mut k = self.k_proj.forward(x)?.reshape((b, t, self.kv_heads, hd))?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = ops::rms_norm(&q, qn, self.eps)?;
            k = ops::rms_norm(&k, kn, self.eps)?;
        }
        let v = self.v_proj.forward(x)?.reshape((b, t, self.kv_heads, hd))?;
        Ok((q, k, v))
    }

    /// Grouped-query attention without repeating k/v: the `heads / kv_heads` query heads that
    /// share a kv head are stacked along the query axis, `[b, kv, rep·t, hd]`.
    fn group(&self, q: Tensor, b: usize, t: usize) -> Result<Tensor> {
        let rep = self.heads / self.kv_heads;
        q.reshape((b, self.kv_heads, rep * t, self.head_dim))
    }

    /// `[b, kv, rep·t, hd]` attention output → `[b·t, h·hd]` for `o_proj`.
    fn ungroup(&self, o: Tensor, b: usize, t: usize) -> Result<Tensor> {
        o.reshape((b, self.heads, t, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * t, self.heads * self.head_dim))
    }

    /// Training forward over whole sequences (causal, positions `0..t`); a local layer's
    /// `window` must cover them (the training kernel has no window mask).
    fn forward(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        rope: &RopeTables,
        window: Option<usize>,
    ) -> Result<Tensor> {
        if let Some(w) = window.filter(|&w| t > w) {
            candle_core::bail!(
                "sequences of {t} tokens are longer than the model's sliding window ({w}); use at most {w}"
            );
        }
        let (q, k, v) = self.qkv(x, b, t)?;
        let positions: Vec<usize> = (0..b).flat_map(|_| 0..t).collect();
        let q = self.group(ops::rope(&q, rope, &positions)?, b, t)?;
        let k = ops::rope(&k, rope, &positions)?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?;
        let probs = ops::causal_softmax(&scores, self.scale, t)?;
        self.o_proj.forward(&self.ungroup(probs.matmul(&v)?, b, t)?)
    }

    /// Inference forward of `t` new tokens per row against the cache; `mask` is additive,
    /// `[b, 1, rep·t, past + t]`.
    #[expect(
        clippy::too_many_arguments,
        reason = "per layer per token: no struct to build"
    )]
    fn forward_step(
        &self,
        x: &Tensor,
        b: usize,
        t: usize,
        rope: &RopeTables,
        positions: &[usize],
        (mask, pad, window): (&Tensor, &[usize], Option<usize>),
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x, b, t)?;
        let q = self.group(ops::rope(&q, rope, positions)?, b, t)?;
        let k = ops::rope(&k, rope, positions)?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (k, v) = cache.append(&k.contiguous()?, &v)?;
        if t == 1 && decode_attention::enabled() {
            // the new token is the last column: a row sees its columns from its padding (or
            // the window's start) on
            let newest = k.dim(2)? - 1;
            let from: Vec<usize> = pad
                .iter()
                .map(|&p| p.max(window.map_or(0, |w| (newest + 1).saturating_sub(w))))
                .collect();
            if let Some(o) = decode_attention::attend(&q, &k, &v, self.scale, &from)? {
                return self.o_proj.forward(&self.ungroup(o, b, t)?);
            }
        }
        let scores = (q.matmul(&k.t()?)? * self.scale)?.broadcast_add(mask)?;
        // softmax in f32 whatever the compute dtype: bf16 sums drift over long contexts
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?;
        self.o_proj.forward(&self.ungroup(probs.matmul(&v)?, b, t)?)
    }
}

struct Mlp {
    gate_proj: Proj,
    up_proj: Proj,
    down_proj: Proj,
    /// The gate's activation is GELU (tanh approximation, Gemma) instead of SiLU.
    gelu: bool,
}

impl Mlp {
    fn new(
        cfg: &LlamaConfig,
        vb: VarBuilder,
        lora: Option<(&LoraConfig, VarBuilder)>,
        quant: Option<&QuantizedWeights>,
    ) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let proj = |name: &str, inp: usize, out: usize| {
            let l = lora.as_ref().map(|(c, v)| (*c, v.pp(name)));
            Proj::new(inp, out, false, vb.pp(name), l, name, quant)
        };
        Ok(Mlp {
            gate_proj: proj("gate_proj", d, i)?,
            up_proj: proj("up_proj", d, i)?,
            down_proj: proj("down_proj", i, d)?,
            gelu: cfg.gemma.is_some(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (gate, up) = (self.gate_proj.forward(x)?, self.up_proj.forward(x)?);
        let act = if self.gelu {
            (gate.gelu()? * up)?
        } else {
            ops::silu_mul(&gate, &up)?
        };
        self.down_proj.forward(&act)
    }
}

struct Block {
    /// Before attention (HF `input_layernorm`).
    attn_norm: Tensor,
    self_attn: Attention,
    /// Before the MLP (HF `post_attention_layernorm`; Gemma's `pre_feedforward_layernorm`).
    mlp_norm: Tensor,
    mlp: Mlp,
    /// Gemma 3: norms of the attention and of the MLP output, before each residual add.
    sandwich: Option<(Tensor, Tensor)>,
    /// Gemma 3: a local layer (sliding window, local RoPE base).
    local: bool,
}

impl Block {
    /// `x + attn(norm(x))`, then the same with the MLP; `attn` is the attention of the
    /// training or the inference forward.
    fn forward(
        &self,
        x: Tensor,
        eps: f64,
        attn: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let mut a = attn(&ops::rms_norm(&x, &self.attn_norm, eps)?)?;
        if let Some((n, _)) = &self.sandwich {
            a = ops::rms_norm(&a, n, eps)?;
        }
        let x = (x + a)?;
        let mut m = self.mlp.forward(&ops::rms_norm(&x, &self.mlp_norm, eps)?)?;
        if let Some((_, n)) = &self.sandwich {
            m = ops::rms_norm(&m, n, eps)?;
        }
        x + m
    }
}

pub struct Llama {
    pub cfg: LlamaConfig,
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: Tensor,
    /// `None` when tied to the embeddings.
    lm_head: Option<Tensor>,
    /// The output projection in quantised blocks ([`Llama::quantized`]), used by inference.
    lm_head_quantized: Option<QMatMul>,
    rope: RopeTables,
    /// Gemma 3: the local layers' rotary tables.
    rope_local: Option<RopeTables>,
    /// The dtype activations are computed in. Weights may be stored wider (f32 master weights
    /// under bf16 compute: mixed precision) and are cast where they are used.
    compute: DType,
}

/// Per-layer key/value caches of one batched generation.
pub struct Cache {
    layers: Vec<KvCache>,
    /// Tokens already in the cache (the same for every row: rows are left-padded).
    pub len: usize,
}

/// Reshaping a running batch's cache, so rows can join and leave between decode steps (the
/// server's continuous batching). Every layer's k and v are `[rows, kv_heads, columns, head_dim]`;
/// padding columns are zeros that the mask hides.
impl Cache {
    /// Replaces every layer's k and v by `f(k)`, `f(v)`, now `len` columns long.
    fn rebuild(&mut self, len: usize, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<()> {
        for kv in self.layers.iter_mut() {
            let (Some(k), Some(v)) = (kv.k()?, kv.v()?) else {
                continue;
            };
            let (k, v) = (f(&k)?.contiguous()?, f(&v)?.contiguous()?);
            let mut fresh = KvCache::new(2, kv.k_cache().max_seq_len().max(len));
            fresh.append(&k, &v)?;
            *kv = fresh;
        }
        self.len = len;
        Ok(())
    }

    /// Puts `n` padding columns before every row's tokens (the caller adds `n` to each row's pad).
    pub fn left_pad(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.rebuild(self.len + n, |t| {
            let (b, h, _, d) = t.dims4()?;
            let z = Tensor::zeros((b, h, n, d), t.dtype(), t.device())?;
            Tensor::cat(&[&z, t], 2)
        })
    }

    /// Drops the first `n` columns: padding every row has (the caller subtracts `n` from pads).
    pub fn trim_front(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let len = self.len - n;
        self.rebuild(len, |t| t.narrow(2, n, len))
    }

    /// Keeps the rows `keep`, in that order.
    pub fn select_rows(&mut self, keep: &[usize]) -> Result<()> {
        let idx: Vec<u32> = keep.iter().map(|&r| r as u32).collect();
        let len = self.len;
        self.rebuild(len, |t| {
            let ids = Tensor::new(idx.as_slice(), t.device())?;
            t.contiguous()?.index_select(&ids, 0)
        })
    }

    /// Puts `other`'s rows after this cache's; both must hold the same number of columns.
    pub fn append_rows(&mut self, other: &Cache) -> Result<()> {
        if self.len != other.len {
            candle_core::bail!("append_rows: {} columns vs {}", self.len, other.len);
        }
        for (kv, o) in self.layers.iter_mut().zip(&other.layers) {
            let (Some(k), Some(v), Some(ok), Some(ov)) = (kv.k()?, kv.v()?, o.k()?, o.v()?) else {
                candle_core::bail!("append_rows: an empty cache");
            };
            let k = Tensor::cat(&[&k, &ok], 0)?;
            let v = Tensor::cat(&[&v, &ov], 0)?;
            let mut fresh = KvCache::new(2, kv.k_cache().max_seq_len().max(self.len));
            fresh.append(&k, &v)?;
            *kv = fresh;
        }
        Ok(())
    }
}

/// A projection's tensors in a [`DenseModel`]: the weight `[out, in]` and its adapter, if any.
pub(crate) struct DenseProj<'a> {
    pub w: &'a Tensor,
    /// `A: [rank, in]`, `B: [out, rank]` and the scale: `y = x·Wᵀ + scale · x·Aᵀ·Bᵀ`.
    pub lora: Option<(&'a Tensor, &'a Tensor, f64)>,
}

/// One layer's tensors in a [`DenseModel`].
pub(crate) struct DenseLayer<'a> {
    pub attn_norm: &'a Tensor,
    /// q, k, v and o projections.
    pub q: DenseProj<'a>,
    pub k: DenseProj<'a>,
    pub v: DenseProj<'a>,
    pub o: DenseProj<'a>,
    /// Qwen2's q, k and v biases.
    pub qkv_bias: Option<(&'a Tensor, &'a Tensor, &'a Tensor)>,
    pub mlp_norm: &'a Tensor,
    pub gate: DenseProj<'a>,
    pub up: DenseProj<'a>,
    pub down: DenseProj<'a>,
}

/// The tensors of a plain decoder (Llama / SmolLM2 / Qwen2: no quantised weights, not Gemma)
/// computing in f32, as [`crate::cpu_train`] reads them.
pub(crate) struct DenseModel<'a> {
    pub cfg: &'a LlamaConfig,
    pub embed: &'a Tensor,
    pub layers: Vec<DenseLayer<'a>>,
    pub norm: &'a Tensor,
    /// `[vocab, d]`; the embedding matrix when `tied`.
    pub lm_head: &'a Tensor,
    pub tied: bool,
    pub rope: &'a RopeTables,
    /// Attention scores are multiplied by this.
    pub scale: f64,
    /// Whether any projection has an adapter. A model with adapters is a LoRA student, whose
    /// base weights are frozen (`Tuning::Lora` reads them as constants): only the adapters
    /// train.
    pub adapters: bool,
}

impl Llama {
    /// Builds the model from `vb` (HF names). With a fresh `VarMap` behind `vb` this is a random
    /// initialisation; with safetensors or GGUF weights it loads them.
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_lora(cfg, vb, None)
    }

    /// As [`Llama::new`], with LoRA adapters (their tensors from the second `VarBuilder`, under
    /// the same HF-style names: `model.layers.0.self_attn.q_proj.lora_A.weight`).
    pub fn with_lora(
        cfg: &LlamaConfig,
        vb: VarBuilder,
        lora: Option<(&LoraConfig, VarBuilder)>,
    ) -> Result<Self> {
        Self::build(cfg, vb, lora, None)
    }

    /// An inference-only model whose projections (and output head) are the quantised tensors
    /// of `quant`, under HF names; every other tensor (embeddings, norms, biases, and any
    /// projection missing from `quant`) comes dense from `vb`.
    pub fn quantized(cfg: &LlamaConfig, vb: VarBuilder, quant: &QuantizedWeights) -> Result<Self> {
        let mut model = Self::build(cfg, vb, None, Some(quant))?;
        let head = if cfg.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        if let Some(q) = quant.get(head) {
            model.lm_head_quantized = Some(QMatMul::from_arc(q.clone())?);
        }
        Ok(model)
    }

    fn build(
        cfg: &LlamaConfig,
        vb: VarBuilder,
        lora: Option<(&LoraConfig, VarBuilder)>,
        quant: Option<&QuantizedWeights>,
    ) -> Result<Self> {
        let m = vb.pp("model");
        let ones = Init::Const(1.0);
        let d = cfg.hidden_size;
        let embed_tokens = m.pp("embed_tokens").get_with_hints(
            (cfg.vocab_size, d),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = m.pp(format!("layers.{i}"));
                let lora_l = lora
                    .as_ref()
                    .map(|(c, v)| (*c, v.pp(format!("model.layers.{i}"))));
                let norm = |name: &str| l.pp(name).get_with_hints(d, "weight", ones);
                let gemma = cfg.gemma.as_ref();
                Ok(Block {
                    attn_norm: norm("input_layernorm")?,
                    self_attn: Attention::new(
                        cfg,
                        l.pp("self_attn"),
                        lora_l.as_ref().map(|(c, v)| (*c, v.pp("self_attn"))),
                        quant,
                    )?,
                    mlp_norm: norm(if gemma.is_some() {
                        "pre_feedforward_layernorm"
                    } else {
                        "post_attention_layernorm"
                    })?,
                    mlp: Mlp::new(
                        cfg,
                        l.pp("mlp"),
                        lora_l.as_ref().map(|(c, v)| (*c, v.pp("mlp"))),
                        quant,
                    )?,
                    sandwich: match gemma {
                        Some(_) => Some((
                            norm("post_attention_layernorm")?,
                            norm("post_feedforward_layernorm")?,
                        )),
                        None => None,
                    },
                    local: gemma.is_some_and(|g| g.is_local(i)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = m.pp("norm").get_with_hints(d, "weight", ones)?;
        let head_quantized = quant.is_some_and(|q| q.contains_key("lm_head.weight"));
        let lm_head = if cfg.tie_word_embeddings || head_quantized {
            None
        } else {
            Some(vb.pp("lm_head").get_with_hints(
                (cfg.vocab_size, d),
                "weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?)
        };
        let tables = |theta: f64| {
            RopeTables::new(
                theta,
                cfg.head_dim(),
                cfg.max_position_embeddings,
                vb.device(),
            )
        };
        let rope = tables(cfg.rope_theta)?;
        let rope_local = match &cfg.gemma {
            Some(g) => Some(tables(g.rope_local_theta)?),
            None => None,
        };
        Ok(Llama {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            lm_head_quantized: None,
            rope,
            rope_local,
            // quantised kernels take f32 activations
            compute: if quant.is_some() {
                DType::F32
            } else {
                vb.dtype()
            },
        })
    }

    pub fn device(&self) -> &Device {
        self.norm.device()
    }

    /// The dtype activations are computed in (see [`Llama::set_compute_dtype`]).
    pub fn dtype(&self) -> DType {
        self.compute
    }

    /// Computes activations in `dtype` (bf16 on a GPU) while the weights keep theirs: with f32
    /// trainable weights this is mixed-precision training, as `torch.autocast` does it. Logits
    /// and the loss stay f32. A quantised model computes in f32 and ignores this.
    pub fn set_compute_dtype(&mut self, dtype: DType) {
        if self.lm_head_quantized.is_none() && !self.has_quantized_projections() {
            self.compute = dtype;
        }
    }

    fn has_quantized_projections(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l.mlp.down_proj.weight, ProjWeight::Quantized(_)))
    }

    /// The embeddings of `ids` (any shape, flattened) in the compute dtype; Gemma scales
    /// them by √d.
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let e = self
            .embed_tokens
            .embedding(&ids.flatten_all()?)?
            .to_dtype(self.compute)?;
        match self.cfg.gemma {
            Some(_) => e.affine((self.cfg.hidden_size as f64).sqrt(), 0.0),
            None => Ok(e),
        }
    }

    /// A layer's rotary tables and attention window (Gemma's local layers differ).
    fn rope_and_window(&self, layer: &Block) -> (&RopeTables, Option<usize>) {
        match (&self.rope_local, &self.cfg.gemma) {
            (Some(r), Some(g)) if layer.local => (r, Some(g.sliding_window)),
            _ => (&self.rope, None),
        }
    }

    /// This model's tensors for [`crate::cpu_train`], or `None` when it is not a plain f32
    /// decoder there (quantised weights, Gemma, another dtype). LoRA adapters are included.
    pub(crate) fn dense<'a>(&'a self) -> Option<DenseModel<'a>> {
        if self.cfg.gemma.is_some()
            || self.compute != DType::F32
            || self.lm_head_quantized.is_some()
        {
            return None;
        }
        let mut adapters = false;
        let mut dense = |p: &'a Proj| -> Option<DenseProj<'a>> {
            let ProjWeight::Dense(w) = &p.weight else {
                return None;
            };
            if w.dtype() != DType::F32 {
                return None;
            }
            let lora = match &p.lora {
                Some(l) if l.a.dtype() == DType::F32 && l.b.dtype() == DType::F32 => {
                    adapters = true;
                    Some((&l.a, &l.b, l.scale))
                }
                Some(_) => return None,
                None => None,
            };
            Some(DenseProj { w, lora })
        };
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let (a, m) = (&l.self_attn, &l.mlp);
            let qkv_bias = match (&a.q_proj.bias, &a.k_proj.bias, &a.v_proj.bias) {
                (Some(q), Some(k), Some(v)) => Some((q, k, v)),
                (None, None, None) => None,
                _ => return None,
            };
            if a.o_proj.bias.is_some() || m.gelu || l.sandwich.is_some() || a.q_norm.is_some() {
                return None;
            }
            layers.push(DenseLayer {
                attn_norm: &l.attn_norm,
                q: dense(&a.q_proj)?,
                k: dense(&a.k_proj)?,
                v: dense(&a.v_proj)?,
                o: dense(&a.o_proj)?,
                qkv_bias,
                mlp_norm: &l.mlp_norm,
                gate: dense(&m.gate_proj)?,
                up: dense(&m.up_proj)?,
                down: dense(&m.down_proj)?,
            });
        }
        let scale = self.layers.first().map_or(1.0, |l| l.self_attn.scale);
        Some(DenseModel {
            cfg: &self.cfg,
            embed: &self.embed_tokens,
            layers,
            norm: &self.norm,
            lm_head: self.lm_head_weight(),
            tied: self.lm_head.is_none(),
            rope: &self.rope,
            scale,
            adapters,
        })
    }

    /// The output projection `[vocab, d]` (the embedding matrix when tied).
    pub fn lm_head_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Final-normed hidden states for every position: `[b, t]` ids → `[b·t, d]`.
    pub fn forward_hidden(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let eps = self.cfg.rms_norm_eps;
        let mut x = self.embed(input_ids)?;
        for layer in &self.layers {
            let (rope, window) = self.rope_and_window(layer);
            x = layer.forward(x, eps, |h| layer.self_attn.forward(h, b, t, rope, window))?;
        }
        ops::rms_norm(&x, &self.norm, eps)
    }

    /// Logits for every position: `[b, t]` ids → `[b, t, vocab]`. Training should use
    /// [`crate::loss::chunked_lm_loss`] on [`Llama::forward_hidden`] instead: the full logits
    /// of a batch are the largest tensor of a step.
    pub fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        self.head(&self.forward_hidden(input_ids)?)?
            .reshape((b, t, self.cfg.vocab_size))
    }

    /// Logits of final-normed hidden states `[n, d]` → `[n, vocab]`, always f32 (a teacher's
    /// logits at chosen positions for token-level distillation).
    pub fn logits_of_hidden(&self, h: &Tensor) -> Result<Tensor> {
        self.head(h)
    }

    /// Logits of final-normed hidden states `[n, d]` → `[n, vocab]`, always f32.
    fn head(&self, h: &Tensor) -> Result<Tensor> {
        match &self.lm_head_quantized {
            Some(q) => q.forward(h),
            None => few_rows::matmul_t(h, &self.lm_head_weight().to_dtype(h.dtype())?)?
                .to_dtype(DType::F32),
        }
    }

    /// An empty cache for `max_len` tokens per row.
    pub fn new_cache(&self, max_len: usize) -> Cache {
        Cache {
            layers: (0..self.cfg.num_hidden_layers)
                .map(|_| KvCache::new(2, max_len))
                .collect(),
            len: 0,
        }
    }

    /// Inference: feeds `t` new tokens per row (`[b, t]`) after what `cache` holds and returns
    /// the logits of each row's last new token, `[b, vocab]`. `pad[r]` is the number of
    /// left-padding tokens at the start of row `r` (masked out, and not counted in positions).
    pub fn forward_step(
        &self,
        input_ids: &Tensor,
        pad: &[usize],
        cache: &mut Cache,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let past = cache.len;
        let positions: Vec<usize> = (0..b)
            .flat_map(|r| (0..t).map(move |i| (past + i).saturating_sub(pad[r])))
            .collect();
        let rep = self.cfg.num_attention_heads / self.cfg.num_key_value_heads;
        let cols = past + t;
        // additive mask: padding, the future and (local layers) what lies `window` or more back
        let mask_of = |window: Option<usize>| -> Result<Tensor> {
            let mut mask = vec![0f32; b * rep * t * cols];
            for r in 0..b {
                for g in 0..rep {
                    for i in 0..t {
                        let row = &mut mask[((r * rep + g) * t + i) * cols..][..cols];
                        for (c, m) in row.iter_mut().enumerate() {
                            let too_far = window.is_some_and(|w| c + w <= past + i);
                            if c < pad[r] || c > past + i || too_far {
                                *m = f32::NEG_INFINITY;
                            }
                        }
                        // a row made only of padding sees itself, to keep softmax finite
                        if pad[r] > past + i {
                            row[past + i] = 0.0;
                        }
                    }
                }
            }
            Tensor::from_vec(mask, (b, 1, rep * t, cols), self.device())?.to_dtype(self.dtype())
        };
        let mask = mask_of(None)?;
        let local_mask = match &self.cfg.gemma {
            Some(g) if self.layers.iter().any(|l| l.local) => {
                Some(mask_of(Some(g.sliding_window))?)
            }
            _ => None,
        };
        let eps = self.cfg.rms_norm_eps;
        let mut x = self.embed(input_ids)?;
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let (rope, window) = self.rope_and_window(layer);
            let mask = match (window, &local_mask) {
                (Some(_), Some(m)) => m,
                _ => &mask,
            };
            x = layer.forward(x, eps, |h| {
                layer
                    .self_attn
                    .forward_step(h, b, t, rope, &positions, (mask, pad, window), kv)
            })?;
        }
        cache.len += t;
        let last = x
            .reshape((b, t, self.cfg.hidden_size))?
            .narrow(1, t - 1, 1)?
            .squeeze(1)?;
        self.head(&ops::rms_norm(&last, &self.norm, eps)?)
    }

    /// Every weight under its HF name, LoRA adapters merged in: what a checkpoint saves.
    pub fn merged_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.clone(),
        )];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let mlp_norm = match &l.sandwich {
                Some(_) => "pre_feedforward_layernorm",
                None => "post_attention_layernorm",
            };
            out.push((format!("{p}.input_layernorm.weight"), l.attn_norm.clone()));
            out.push((format!("{p}.{mlp_norm}.weight"), l.mlp_norm.clone()));
            if let Some((a, m)) = &l.sandwich {
                out.push((format!("{p}.post_attention_layernorm.weight"), a.clone()));
                out.push((format!("{p}.post_feedforward_layernorm.weight"), m.clone()));
            }
            if let (Some(q), Some(k)) = (&l.self_attn.q_norm, &l.self_attn.k_norm) {
                out.push((format!("{p}.self_attn.q_norm.weight"), q.clone()));
                out.push((format!("{p}.self_attn.k_norm.weight"), k.clone()));
            }
            let a = &l.self_attn;
            let m = &l.mlp;
            for (name, proj) in [
                ("self_attn.q_proj", &a.q_proj),
                ("self_attn.k_proj", &a.k_proj),
                ("self_attn.v_proj", &a.v_proj),
                ("self_attn.o_proj", &a.o_proj),
                ("mlp.gate_proj", &m.gate_proj),
                ("mlp.up_proj", &m.up_proj),
                ("mlp.down_proj", &m.down_proj),
            ] {
                out.push((format!("{p}.{name}.weight"), proj.merged_weight()?));
                if let Some(b) = &proj.bias {
                    out.push((format!("{p}.{name}.bias"), b.clone()));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), h.clone()));
        }
        // checkpoints are f32 whatever the weights were held in
        out.into_iter()
            .map(|(n, t)| Ok((n, t.to_dtype(DType::F32)?)))
            .collect()
    }
}

#[cfg(test)]
mod config_tests {
    use super::LlamaConfig;

    const BASE: &str = r#""vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1"#;

    #[test]
    fn hf_configs_that_would_load_wrong_are_refused() {
        let qwen = LlamaConfig::from_hf_json(&format!(r#"{{"model_type": "qwen2", {BASE}}}"#));
        assert!(qwen.unwrap().attention_bias, "Qwen2 has q/k/v biases");
        let llama = LlamaConfig::from_hf_json(&format!(r#"{{"model_type": "llama", {BASE}}}"#));
        assert!(!llama.unwrap().attention_bias);
        for (extra, why) in [
            (r#""model_type": "gpt2","#, "not supported"),
            (
                r#""rope_scaling": {"rope_type": "llama3"},"#,
                "rope_scaling",
            ),
            (r#""head_dim": 64,"#, "head_dim"),
        ] {
            let e = LlamaConfig::from_hf_json(&format!("{{{extra} {BASE}}}")).unwrap_err();
            assert!(e.contains(why), "{extra}: {e}");
        }
    }
}

#[cfg(test)]
mod quantized_tests {
    use super::dequantize_from;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// K-quant weights on the CPU stay on their kernels at any row count (dequantising a 1.5B
    /// teacher on each decode step of 32 rows made decode 5× slower); Q8_0 ones switch to the
    /// f32 GEMM from 32 rows, where its kernel loses.
    #[test]
    fn only_slow_kernels_dequantise_for_many_rows() -> candle_core::Result<()> {
        if std::env::var_os("MENTOR_DEQUANTIZE_ROWS").is_some() {
            return Ok(()); // the override decides instead
        }
        let w = Tensor::randn(0f32, 1.0, (8, 256), &Device::Cpu)?;
        assert_eq!(
            dequantize_from(&QTensor::quantize(&w, GgmlDType::Q4K)?),
            usize::MAX
        );
        assert_eq!(
            dequantize_from(&QTensor::quantize(&w, GgmlDType::Q6K)?),
            usize::MAX
        );
        assert_eq!(
            dequantize_from(&QTensor::quantize(&w, GgmlDType::Q8_0)?),
            32
        );
        Ok(())
    }
}
