//! A Llama-style decoder (Llama, SmolLM2, Qwen2/2.5) for training and full-sequence logits.
//!
//! One struct per block, a forward that reads top to bottom, and only differentiable candle ops:
//! RMSNorm, rotary embeddings (the Hugging Face "rotate half" layout), attention with an additive
//! causal mask and `softmax` from basic ops, SwiGLU MLP. Parameter names follow Hugging Face
//! (`model.layers.0.self_attn.q_proj.weight`, …).

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, linear_b, linear_no_bias, Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

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
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// RMSNorm from basic ops (candle's fused `rms_norm` has no backward).
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&mean_sq.affine(1.0, eps)?.sqrt()?)?
        .broadcast_mul(weight)
}

/// SiLU as x·σ(x) from basic ops.
fn silu(x: &Tensor) -> Result<Tensor> {
    let sigmoid = x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
    x * sigmoid
}

/// Precomputed rotary tables, `[max_pos, head_dim]` each (frequencies repeated for both halves).
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(cfg: &LlamaConfig, dtype: DType, dev: &Device) -> Result<Self> {
        let hd = cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64) as f32)
            .collect();
        let inv = Tensor::from_vec(inv, (1, hd / 2), dev)?;
        let pos = Tensor::arange(0u32, cfg.max_position_embeddings as u32, dev)?
            .to_dtype(DType::F32)?
            .unsqueeze(1)?;
        let freqs = pos.broadcast_mul(&inv)?;
        let emb = Tensor::cat(&[&freqs, &freqs], 1)?;
        Ok(Rotary {
            cos: emb.cos()?.to_dtype(dtype)?,
            sin: emb.sin()?.to_dtype(dtype)?,
        })
    }

    /// x: `[b, heads, t, head_dim]`, positions `offset..offset + t`.
    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (_, _, t, hd) = x.dims4()?;
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
        let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let b = cfg.attention_bias;
        Ok(Attention {
            q_proj: linear_b(d, cfg.num_attention_heads * hd, b, vb.pp("q_proj"))?,
            k_proj: linear_b(d, cfg.num_key_value_heads * hd, b, vb.pp("k_proj"))?,
            v_proj: linear_b(d, cfg.num_key_value_heads * hd, b, vb.pp("v_proj"))?,
            o_proj: linear_no_bias(cfg.num_attention_heads * hd, d, vb.pp("o_proj"))?,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    /// Grouped-query heads: each kv head serves `heads / kv_heads` query heads.
    fn repeat_kv(&self, x: Tensor) -> Result<Tensor> {
        let n = self.heads / self.kv_heads;
        if n == 1 {
            return Ok(x);
        }
        let (b, kv, t, hd) = x.dims4()?;
        Tensor::cat(&vec![&x; n], 2)?.reshape((b, kv * n, t, hd))
    }

    fn forward(&self, x: &Tensor, rotary: &Rotary, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let split = |y: Tensor, heads: usize| {
            y.reshape((b, t, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = rotary.apply(&split(self.q_proj.forward(x)?, self.heads)?, 0)?;
        let k = rotary.apply(&split(self.k_proj.forward(x)?, self.kv_heads)?, 0)?;
        let v = split(self.v_proj.forward(x)?, self.kv_heads)?;
        let (k, v) = (
            self.repeat_kv(k)?.contiguous()?,
            self.repeat_kv(v)?.contiguous()?,
        );
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: linear_no_bias(d, i, vb.pp("gate_proj"))?,
            up_proj: linear_no_bias(d, i, vb.pp("up_proj"))?,
            down_proj: linear_no_bias(i, d, vb.pp("down_proj"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.down_proj
            .forward(&(silu(&self.gate_proj.forward(x)?)? * self.up_proj.forward(x)?)?)
    }
}

struct Block {
    input_layernorm: Tensor,
    self_attn: Attention,
    post_attention_layernorm: Tensor,
    mlp: Mlp,
}

pub struct Llama {
    pub cfg: LlamaConfig,
    embed_tokens: Embedding,
    layers: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    rotary: Rotary,
}

impl Llama {
    /// Builds the model from `vb` (HF names). With a fresh `VarMap` behind `vb` this is a random
    /// initialisation; with safetensors or GGUF weights it loads them.
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let m = vb.pp("model");
        let embed_tokens = embedding(cfg.vocab_size, cfg.hidden_size, m.pp("embed_tokens"))?;
        let ones = candle_nn::Init::Const(1.0);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = m.pp(format!("layers.{i}"));
                Ok(Block {
                    input_layernorm: l.pp("input_layernorm").get_with_hints(
                        cfg.hidden_size,
                        "weight",
                        ones,
                    )?,
                    self_attn: Attention::new(cfg, l.pp("self_attn"))?,
                    post_attention_layernorm: l.pp("post_attention_layernorm").get_with_hints(
                        cfg.hidden_size,
                        "weight",
                        ones,
                    )?,
                    mlp: Mlp::new(cfg, l.pp("mlp"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = m
            .pp("norm")
            .get_with_hints(cfg.hidden_size, "weight", ones)?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            linear_no_bias(cfg.hidden_size, cfg.vocab_size, vb.pp("lm_head"))?
        };
        let rotary = Rotary::new(cfg, vb.dtype(), vb.device())?;
        Ok(Llama {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary,
        })
    }

    /// Logits for every position: `[batch, seq]` token ids → `[batch, seq, vocab]`.
    pub fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (_, t) = input_ids.dims2()?;
        let mask = causal_mask(t, self.norm.dtype(), input_ids.device())?;
        let mut x = self.embed_tokens.forward(input_ids)?;
        for layer in &self.layers {
            let h = rms_norm(&x, &layer.input_layernorm, self.cfg.rms_norm_eps)?;
            x = (x + layer.self_attn.forward(&h, &self.rotary, &mask)?)?;
            let h = rms_norm(&x, &layer.post_attention_layernorm, self.cfg.rms_norm_eps)?;
            x = (x + layer.mlp.forward(&h)?)?;
        }
        let x = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
        self.lm_head.forward(&x)
    }
}

/// `[t, t]`: 0 on and below the diagonal, a large negative number above it.
fn causal_mask(t: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { -1e9 } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (t, t), dev)?.to_dtype(dtype)
}
