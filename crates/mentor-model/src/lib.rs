//! Student models on candle.
//!
//! Stock `candle-transformers` models cannot be trained: their forward returns only the last
//! position and their fused CPU ops have no backward, so `backward()` quietly yields gradients
//! for the embedding alone (DESIGN.md §9). [`llama`] is our own decoder, built from
//! differentiable ops, with Hugging Face tensor names so safetensors checkpoints load and save
//! as they are; [`gguf`] dequantises GGUF weights into those names; [`loss`] is the
//! prompt-masked, task-weighted cross-entropy the recipes train with.

pub mod cpu_train;
pub mod decode_attention;
pub mod fastmath;
pub mod few_rows;
pub mod generate;
pub mod gguf;
pub mod kd;
pub mod llama;
pub mod load;
pub mod loss;
pub mod mkl;
pub mod ops;
pub mod tokenizer;

pub use generate::{
    generate, generate_continuous, Decoder, FinishReason, Generation, SamplingParams,
};
pub use llama::{Cache, GemmaConfig, Llama, LlamaConfig, LoraConfig, QuantizedWeights};
pub use tokenizer::{ChatMessage, TextTokenizer};
