//! Weights in, weights out: a GGUF file or a Hugging Face directory (`config.json` +
//! `*.safetensors`) becomes a [`Student`] — the model plus the variables an optimiser may
//! update — and a student saves back as a Hugging Face directory.

use crate::gguf;
use crate::llama::{Llama, LlamaConfig, LoraConfig, QuantizedWeights};
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What training may change.
#[derive(Debug, Clone, PartialEq)]
pub enum Tuning {
    /// Inference only: no variables.
    Frozen,
    /// Every weight is a variable.
    Full,
    /// Base weights frozen; LoRA adapters are the variables.
    Lora(LoraConfig),
}

/// Weights read from disk, under HF names, plus where they came from.
pub struct Weights {
    pub config: LlamaConfig,
    pub tensors: HashMap<String, Tensor>,
    pub source: PathBuf,
    /// GGUF metadata (tokenizer, chat template), when the source is a GGUF file.
    pub gguf_metadata: Option<HashMap<String, candle_core::quantized::gguf_file::Value>>,
    /// Projections kept quantised ([`read_weights_quantized`]); empty otherwise.
    pub quantized: QuantizedWeights,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Reads a `.gguf` file (dequantised) or an HF directory, as f32 on `device`.
pub fn read_weights(path: &Path, device: &Device) -> Result<Weights> {
    read(path, device, false)
}

/// As [`read_weights`], but a `.gguf` file keeps its projections quantised: for inference
/// ([`Tuning::Frozen`]) at a fraction of the memory traffic. An HF directory reads as usual.
pub fn read_weights_quantized(path: &Path, device: &Device) -> Result<Weights> {
    read(path, device, true)
}

fn read(path: &Path, device: &Device, quantized: bool) -> Result<Weights> {
    if path.is_dir() {
        let cfg_path = path.join("config.json");
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| msg(format!("{}: {e}", cfg_path.display())))?;
        let config = LlamaConfig::from_hf_json(&text)
            .map_err(|e| msg(format!("{}: {e}", cfg_path.display())))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| msg(format!("{}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            candle_core::bail!("{}: no *.safetensors files", path.display());
        }
        let mut tensors = HashMap::new();
        for f in files {
            for (name, t) in candle_core::safetensors::load(&f, device)? {
                tensors.insert(name, t.to_dtype(DType::F32)?);
            }
        }
        return Ok(Weights {
            config,
            tensors,
            source: path.to_path_buf(),
            gguf_metadata: None,
            quantized: QuantizedWeights::new(),
        });
    }
    if !path.is_file() {
        candle_core::bail!("{}: no such model file or directory", path.display());
    }
    let w = if quantized {
        gguf::load_quantized(path, device)?
    } else {
        gguf::load(path, device)?
    };
    Ok(Weights {
        config: w.config,
        tensors: w.tensors,
        source: path.to_path_buf(),
        gguf_metadata: Some(w.metadata),
        quantized: w.quantized,
    })
}

/// A model and the variables training updates, by name.
pub struct Student {
    pub model: Llama,
    pub tuning: Tuning,
    /// The trainable variables (all weights for `Full`, the adapters for `Lora`, none for
    /// `Frozen`), under their HF names.
    pub vars: VarMap,
}

impl Student {
    /// The student `weights` make, with the variables `tuning` asks for; new LoRA adapters are
    /// initialised from `seed` (candle's CPU generator cannot be seeded).
    pub fn new(weights: Weights, tuning: Tuning, device: &Device, seed: u64) -> Result<Self> {
        Self::new_in(weights, tuning, device, DType::F32, seed)
    }

    /// As [`Student::new`], computing in `dtype`. A frozen model stores its weights in `dtype`
    /// too (half the memory in bf16); a trained one keeps f32 master weights and optimiser
    /// state and casts them where they are used (mixed precision), because bf16 weights lose
    /// small updates. Quantised weights compute in f32 whatever `dtype` says.
    pub fn new_in(
        weights: Weights,
        tuning: Tuning,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> Result<Self> {
        let cfg = weights.config.clone();
        let vars = VarMap::new();
        if cfg.gemma.is_some() && tuning != Tuning::Frozen {
            // its checkpoints would need Gemma's HF layout and norm parametrisation
            candle_core::bail!(
                "{}: Gemma 3 models run for inference (teacher, generate, serve, eval); training one as a student is not supported",
                weights.source.display()
            );
        }
        if !weights.quantized.is_empty() && tuning != Tuning::Frozen {
            candle_core::bail!(
                "{}: quantised weights are for inference only; read them with read_weights to train",
                weights.source.display()
            );
        }
        let model = match &tuning {
            Tuning::Frozen if !weights.quantized.is_empty() => Llama::quantized(
                &cfg,
                VarBuilder::from_tensors(weights.tensors, DType::F32, device),
                &weights.quantized,
            )?,
            Tuning::Frozen => Llama::new(
                &cfg,
                VarBuilder::from_tensors(weights.tensors, dtype, device),
            )?,
            Tuning::Full => {
                {
                    let mut data = vars.data().lock().unwrap();
                    for (name, t) in weights.tensors {
                        data.insert(name, Var::from_tensor(&t)?);
                    }
                }
                Llama::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, device))?
            }
            // the frozen base is stored in the compute dtype; the adapters train in f32
            Tuning::Lora(l) => Llama::with_lora(
                &cfg,
                VarBuilder::from_tensors(weights.tensors, dtype, device),
                Some((l, VarBuilder::from_varmap(&vars, DType::F32, device))),
            )?,
        };
        let mut s = Student {
            model,
            tuning,
            vars,
        };
        s.seeded_init(seed, |name| name.ends_with("lora_A.weight"))?;
        s.model.set_compute_dtype(dtype);
        Ok(s)
    }

    /// A randomly initialised student from `seed` (tests, shape-only benchmarks): matrices
    /// N(0, 0.02) as in Hugging Face's Llama, norms one, biases zero.
    pub fn random(cfg: &LlamaConfig, device: &Device, seed: u64) -> Result<Self> {
        let vars = VarMap::new();
        let model = Llama::new(cfg, VarBuilder::from_varmap(&vars, DType::F32, device))?;
        let s = Student {
            model,
            tuning: Tuning::Full,
            vars,
        };
        s.seeded_init(seed, |name| {
            !name.contains("norm") && !name.ends_with("bias")
        })?;
        Ok(s)
    }

    /// Overwrites the variables `pick` selects with seeded N(0, 0.02) values, in name order.
    fn seeded_init(&self, seed: u64, pick: impl Fn(&str) -> bool) -> Result<()> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for (name, var) in self.trainable() {
            if !pick(&name) {
                continue;
            }
            let n = var.elem_count();
            // Box–Muller from uniform draws
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                    (0.02 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                })
                .collect();
            var.set(&Tensor::from_vec(v, var.shape(), var.device())?.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// The trainable variables, sorted by name (a stable order for optimiser state).
    pub fn trainable(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> = self
            .vars
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Writes `dir/model.safetensors` (adapters merged) and `dir/config.json`, through a
    /// temporary name so a crash never leaves a half-written file under the final name.
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| msg(format!("{}: {e}", dir.display())))?;
        let tensors: HashMap<String, Tensor> = self.model.merged_tensors()?.into_iter().collect();
        let tmp = dir.join("model.safetensors.tmp");
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, dir.join("model.safetensors")).map_err(msg)?;
        let mut cfg = serde_json::to_value(&self.model.cfg).map_err(msg)?;
        cfg["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        cfg["model_type"] = serde_json::json!("llama");
        cfg["torch_dtype"] = serde_json::json!("float32");
        if self.model.cfg.attention_bias {
            cfg["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
            cfg["model_type"] = serde_json::json!("qwen2");
        }
        write_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&cfg).map_err(msg)?.as_bytes(),
        )
    }
}

/// Writes `path` via `path.tmp` and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| msg(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| msg(format!("{}: {e}", path.display())))
}
