//! GGUF weights, dequantised into the decoder's Hugging Face names.
//!
//! The only pretrained students reachable offline are GGUF files (DESIGN.md "Assets"). We read
//! the metadata into a [`LlamaConfig`], dequantise every tensor to f32 and rename it from
//! llama.cpp's scheme (`blk.0.attn_q.weight`) to Hugging Face's
//! (`model.layers.0.self_attn.q_proj.weight`). llama.cpp's converter permutes the Q and K rows of
//! `llama`-architecture models into its interleaved rotary layout; we undo that, since our
//! decoder uses the HF "rotate half" layout. `qwen2` files are stored unpermuted.

use crate::llama::LlamaConfig;
use candle_core::quantized::gguf_file;
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// A GGUF model: its config, its architecture name and its weights under HF names.
pub struct GgufWeights {
    pub arch: String,
    pub config: LlamaConfig,
    pub tensors: HashMap<String, Tensor>,
    /// The raw metadata, for the tokenizer and chat template.
    pub metadata: HashMap<String, gguf_file::Value>,
}

fn hf_name(gguf: &str) -> Option<String> {
    let top = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(t.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
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
    let mut f = std::fs::File::open(path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let content = gguf_file::Content::read(&mut f).map_err(|e| e.with_path(path))?;
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if arch != "llama" && arch != "qwen2" {
        candle_core::bail!(
            "{}: architecture `{arch}` is not supported yet (llama, qwen2)",
            path.display()
        );
    }
    let md = &content.metadata;
    let k = |s: &str| format!("{arch}.{s}");
    let heads = meta_u32(md, &k("attention.head_count"))?;
    let kv_heads = meta_u32(md, &k("attention.head_count_kv")).unwrap_or(heads);
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = hf_name(name) else { continue };
        let mut t = content.tensor(&mut f, name, device)?.dequantize(device)?;
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
        tie_word_embeddings: !tensors.contains_key("lm_head.weight"),
        attention_bias: tensors.contains_key("model.layers.0.self_attn.q_proj.bias"),
        max_position_embeddings: meta_u32(md, &k("context_length")).unwrap_or(2048).min(8192),
    };
    Ok(GgufWeights {
        arch,
        config,
        tensors,
        metadata: content.metadata,
    })
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
