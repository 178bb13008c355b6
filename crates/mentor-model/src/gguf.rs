//! GGUF weights, dequantised into the decoder's Hugging Face names.
//!
//! The only pretrained students reachable offline are GGUF files (DESIGN.md "Assets"). We read
//! the metadata into a [`LlamaConfig`], dequantise every tensor to f32 and rename it from
//! llama.cpp's scheme (`blk.0.attn_q.weight`) to Hugging Face's
//! (`model.layers.0.self_attn.q_proj.weight`). llama.cpp's converter permutes the Q and K rows of
//! `llama`-architecture models into its interleaved rotary layout; we undo that, since our
//! decoder uses the HF "rotate half" layout. `qwen2` and `gemma3` files are stored unpermuted.
//! Gemma 3's extra norms have names of their own, and its pre-MLP norm is HF's
//! `pre_feedforward_layernorm` (Llama's is `post_attention_layernorm`, a Gemma name for
//! something else): [`GEMMA_BLOCK_NAMES`] are read first for it.
//!
//! [`load_quantized`] keeps the projections quantised instead, for inference
//! ([`crate::Llama::quantized`]). Block types without an x86 SIMD kernel in candle (Q4_1, Q5_0,
//! Q5_1: Qwen2.5-0.5B's Q4_K_M file stores many tensors as Q5_0, because 896 is not a multiple of
//! the 256-wide K-quant block) are re-quantised to Q8_0 at load: DESIGN.md §9 measured the
//! generic kernels 2× slower than Q8_0's.

use crate::llama::{LlamaConfig, QuantizedWeights};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A GGUF model: its config, its architecture name and its weights under HF names.
pub struct GgufWeights {
    pub arch: String,
    pub config: LlamaConfig,
    pub tensors: HashMap<String, Tensor>,
    /// The raw metadata, for the tokenizer and chat template.
    pub metadata: HashMap<String, gguf_file::Value>,
    /// With [`load_quantized`]: the projections and output head, still quantised; their dense
    /// copies are not in `tensors` (except the embedding matrix, which lookups need).
    pub quantized: QuantizedWeights,
}

/// Whether `name` (HF) is a weight the quantised path multiplies by: every projection, and the
/// output head.
fn multiplies(hf: &str) -> bool {
    hf.ends_with("_proj.weight") || hf == "lm_head.weight"
}

/// Block types with fast x86 kernels in candle; others are re-quantised to Q8_0.
fn fast_kernel(t: GgmlDType) -> bool {
    use GgmlDType::*;
    matches!(t, Q4_0 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K | Q8K)
}

/// llama.cpp's tensor names and Hugging Face's, whole-model tensors first, then the parts of a
/// block (`blk.N.<gguf>.<kind>` ↔ `model.layers.N.<hf>.<kind>`). One table, read both ways.
const TOP_NAMES: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];
const BLOCK_NAMES: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Gemma 3's block tensors, where they differ from [`BLOCK_NAMES`] or are its own.
const GEMMA_BLOCK_NAMES: &[(&str, &str)] = &[
    ("ffn_norm", "pre_feedforward_layernorm"),
    ("post_attention_norm", "post_attention_layernorm"),
    ("post_ffw_norm", "post_feedforward_layernorm"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
];

/// Renames `name` from one scheme to the other: `to_hf` picks the direction; `gemma` reads
/// [`GEMMA_BLOCK_NAMES`] first.
fn rename(name: &str, to_hf: bool, gemma: bool) -> Option<String> {
    // a table row as (source, target) in this direction
    let dir = |p: &(&'static str, &'static str)| if to_hf { *p } else { (p.1, p.0) };
    if let Some((_, to)) = TOP_NAMES.iter().map(dir).find(|(from, _)| *from == name) {
        return Some(to.to_string());
    }
    let (prefix, out_prefix) = if to_hf {
        ("blk.", "model.layers.")
    } else {
        ("model.layers.", "blk.")
    };
    let rest = name.strip_prefix(prefix)?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let gemma_names = if gemma { GEMMA_BLOCK_NAMES } else { &[] };
    let (_, to) = gemma_names
        .iter()
        .chain(BLOCK_NAMES)
        .map(dir)
        .find(|(from, _)| *from == part)?;
    Some(format!("{out_prefix}{layer}.{to}.{kind}"))
}

#[cfg(test)]
fn hf_name(gguf: &str) -> Option<String> {
    rename(gguf, true, false)
}

/// Inverse of llama.cpp's `permute(w, n_head)`: rows grouped as (head, pair, half) → (head, half, pair).
fn unpermute(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    let rest: usize = dims[1..].iter().product();
    w.reshape((n_head, rows / n_head / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

fn meta_u32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<usize> {
    md.get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata lacks `{key}`")))?
        .to_u32()
        .map(|v| v as usize)
}

fn meta_f32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Option<f64> {
    md.get(key).and_then(|v| v.to_f32().ok()).map(|v| v as f64)
}

/// Reads a GGUF file and dequantises it onto `device` as f32.
pub fn load(path: &Path, device: &Device) -> Result<GgufWeights> {
    read(path, device, false)
}

/// Reads a GGUF file keeping the projections quantised (inference only); see the module doc.
pub fn load_quantized(path: &Path, device: &Device) -> Result<GgufWeights> {
    read(path, device, true)
}

fn read(path: &Path, device: &Device, keep_quantized: bool) -> Result<GgufWeights> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let content = gguf_file::Content::read(&mut f).map_err(|e| e.with_path(path))?;
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if !["llama", "qwen2", "gemma3"].contains(&arch.as_str()) {
        candle_core::bail!(
            "{}: architecture `{arch}` is not supported yet (llama, qwen2, gemma3)",
            path.display()
        );
    }
    let gemma = arch == "gemma3";
    let md = &content.metadata;
    let k = |s: &str| format!("{arch}.{s}");
    if meta_f32(md, &k("rope.scaling.factor")).is_some_and(|f| f != 1.0) {
        candle_core::bail!(
            "{}: RoPE scaling (`{}`) is not supported",
            path.display(),
            k("rope.scaling.factor")
        );
    }
    let heads = meta_u32(md, &k("attention.head_count"))?;
    let kv_heads = meta_u32(md, &k("attention.head_count_kv")).unwrap_or(heads);
    let mut tensors = HashMap::new();
    let mut quantized = QuantizedWeights::new();
    let tied = !content.tensor_infos.contains_key("output.weight");
    for name in content.tensor_infos.keys() {
        let Some(hf) = rename(name, true, gemma) else {
            continue;
        };
        let q = content.tensor(&mut f, name, device)?;
        let permuted =
            arch == "llama" && (name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight"));
        let head = hf == "lm_head.weight" || (tied && hf == "model.embed_tokens.weight");
        let block = q.dtype().block_size();
        let quantizable = q.dtype() != GgmlDType::F32
            && q.dtype() != GgmlDType::F16
            && q.dtype() != GgmlDType::BF16
            && q.shape().dims().last().is_some_and(|k| k % block == 0);
        if keep_quantized && quantizable && !permuted && (multiplies(&hf) || head) {
            let embedding = hf == "model.embed_tokens.weight";
            let dense = if embedding || !fast_kernel(q.dtype()) {
                Some(q.dequantize(device)?)
            } else {
                None
            };
            let q = match &dense {
                Some(d) if !fast_kernel(q.dtype()) => QTensor::quantize(d, GgmlDType::Q8_0)?,
                _ => q,
            };
            if let Some(d) = dense.filter(|_| embedding) {
                // the tied head multiplies quantised; lookups need the rows dense (the file's
                // values, not the re-quantised ones)
                tensors.insert(hf.clone(), d);
            }
            quantized.insert(hf, Arc::new(q));
            continue;
        }
        let mut t = q.dequantize(device)?;
        if arch == "llama" {
            if name.ends_with("attn_q.weight") {
                t = unpermute(&t, heads)?;
            } else if name.ends_with("attn_k.weight") {
                t = unpermute(&t, kv_heads)?;
            }
        }
        tensors.insert(hf, t);
    }
    let vocab_size = tensors
        .get("model.embed_tokens.weight")
        .map(|t| t.dims()[0])
        .ok_or_else(|| candle_core::Error::Msg("GGUF has no token_embd.weight".into()))?;
    let config = LlamaConfig {
        vocab_size,
        hidden_size: meta_u32(md, &k("embedding_length"))?,
        intermediate_size: meta_u32(md, &k("feed_forward_length"))?,
        num_hidden_layers: meta_u32(md, &k("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        rms_norm_eps: meta_f32(md, &k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
        rope_theta: meta_f32(md, &k("rope.freq_base")).unwrap_or(10_000.0),
        tie_word_embeddings: tied,
        attention_bias: tensors.contains_key("model.layers.0.self_attn.q_proj.bias"),
        max_position_embeddings: meta_u32(md, &k("context_length")).unwrap_or(2048).min(8192),
        gemma: None,
    };
    let config = if gemma {
        let head_dim = meta_u32(md, &k("attention.key_length"))?;
        LlamaConfig {
            // llama.cpp's defaults where the file says nothing (gemma3 in llama-model.cpp)
            gemma: Some(crate::llama::GemmaConfig {
                head_dim,
                sliding_window: meta_u32(md, &k("attention.sliding_window"))?,
                sliding_window_pattern: meta_u32(md, &k("attention.sliding_window_type"))
                    .unwrap_or(6),
                rope_local_theta: meta_f32(md, &k("rope.local_freq_base")).unwrap_or(10_000.0),
                query_pre_attn_scalar: head_dim as f64,
            }),
            ..config
        }
    } else {
        config
    };
    Ok(GgufWeights {
        arch,
        config,
        tensors,
        metadata: content.metadata,
        quantized,
    })
}

/// How `write` stores the matrices (vectors — norms, biases — stay f32, as llama.cpp wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportType {
    F32,
    F16,
    Q8_0,
}

impl ExportType {
    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_*).
    fn file_type(self) -> u32 {
        match self {
            ExportType::F32 => 0,
            ExportType::F16 => 1,
            ExportType::Q8_0 => 7,
        }
    }
}

/// llama.cpp's name for an HF tensor name (inverse of [`hf_name`]).
fn gguf_name(hf: &str) -> Option<String> {
    rename(hf, false, false)
}

/// llama.cpp's `permute(w, n_head)`: the HF rotary layout → its interleaved one (llama only).
fn permute(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rest: usize = dims[1..].iter().product();
    w.reshape((n_head, 2, dims[0] / n_head / 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// Writes a model (HF-named f32 tensors, as [`crate::Llama::merged_tensors`] gives them) and its
/// tokenizer's metadata as a GGUF file llama.cpp loads: `qwen2` when the model has q/k/v
/// biases, else `llama` (with Q/K permuted into llama.cpp's rotary layout). The file is
/// written beside `path` and renamed into place.
pub fn write(
    path: &Path,
    name: &str,
    cfg: &LlamaConfig,
    tensors: &[(String, Tensor)],
    tokenizer_metadata: Vec<(String, gguf_file::Value)>,
    ty: ExportType,
) -> Result<()> {
    use gguf_file::Value as V;
    if cfg.gemma.is_some() {
        candle_core::bail!("exporting a Gemma 3 model to GGUF is not supported");
    }
    let arch = if cfg.attention_bias { "qwen2" } else { "llama" };
    let k = |s: &str| format!("{arch}.{s}");
    let mut md: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::String(arch.into())),
        ("general.name".into(), V::String(name.into())),
        ("general.file_type".into(), V::U32(ty.file_type())),
        (
            k("context_length"),
            V::U32(cfg.max_position_embeddings as u32),
        ),
        (k("embedding_length"), V::U32(cfg.hidden_size as u32)),
        (k("block_count"), V::U32(cfg.num_hidden_layers as u32)),
        (
            k("feed_forward_length"),
            V::U32(cfg.intermediate_size as u32),
        ),
        (
            k("attention.head_count"),
            V::U32(cfg.num_attention_heads as u32),
        ),
        (
            k("attention.head_count_kv"),
            V::U32(cfg.num_key_value_heads as u32),
        ),
        (k("rope.freq_base"), V::F32(cfg.rope_theta as f32)),
        (k("rope.dimension_count"), V::U32(cfg.head_dim() as u32)),
        (
            k("attention.layer_norm_rms_epsilon"),
            V::F32(cfg.rms_norm_eps as f32),
        ),
    ];
    md.extend(tokenizer_metadata);
    let mut qtensors: Vec<(String, QTensor)> = Vec::with_capacity(tensors.len());
    for (hf, t) in tensors {
        let g = gguf_name(hf)
            .ok_or_else(|| candle_core::Error::Msg(format!("no GGUF name for tensor `{hf}`")))?;
        if cfg.tie_word_embeddings && hf == "lm_head.weight" {
            continue;
        }
        let mut t = t.to_dtype(candle_core::DType::F32)?;
        if arch == "llama" && g.ends_with("attn_q.weight") {
            t = permute(&t, cfg.num_attention_heads)?;
        } else if arch == "llama" && g.ends_with("attn_k.weight") {
            t = permute(&t, cfg.num_key_value_heads)?;
        }
        let dt = match ty {
            _ if t.rank() < 2 => GgmlDType::F32,
            ExportType::F32 => GgmlDType::F32,
            ExportType::F16 => GgmlDType::F16,
            ExportType::Q8_0 if t.dims()[1] % GgmlDType::Q8_0.block_size() == 0 => GgmlDType::Q8_0,
            ExportType::Q8_0 => GgmlDType::F16,
        };
        qtensors.push((g, QTensor::quantize(&t, dt)?));
    }
    let tmp = path.with_extension("gguf.tmp");
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", tmp.display())))?;
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs)?;
    drop(f);
    std::fs::rename(&tmp, path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hugging_face() {
        assert_eq!(
            hf_name("blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.attn_k.bias").as_deref(),
            Some("model.layers.0.self_attn.k_proj.bias")
        );
        assert_eq!(
            hf_name("blk.3.ffn_down.weight").as_deref(),
            Some("model.layers.3.mlp.down_proj.weight")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn gguf_names_invert_hf_names() {
        for g in [
            "blk.12.attn_q.weight",
            "blk.0.attn_k.bias",
            "blk.3.ffn_down.weight",
            "token_embd.weight",
            "output.weight",
            "output_norm.weight",
            "blk.1.ffn_norm.weight",
        ] {
            assert_eq!(gguf_name(&hf_name(g).unwrap()).as_deref(), Some(g));
        }
    }

    #[test]
    fn unpermute_inverts_permute() -> Result<()> {
        let w = Tensor::arange(0f32, 48., &Device::Cpu)?.reshape((8, 6))?;
        let back = unpermute(&permute(&w, 2)?, 2)?;
        assert_eq!(back.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() -> Result<()> {
        // llama.cpp: w.reshape(n_head, 2, rows/n_head/2, in).swapaxes(1, 2).reshape(rows, in)
        let (n_head, rows, cols) = (2, 8, 3);
        let w = Tensor::arange(0f32, (rows * cols) as f32, &Device::Cpu)?.reshape((rows, cols))?;
        let permuted = w
            .reshape((n_head, 2, rows / n_head / 2, cols))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((rows, cols))?;
        let back = unpermute(&permuted, n_head)?;
        assert_eq!(back.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        Ok(())
    }
}
