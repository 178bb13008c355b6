//! Model names on the command line: an asset name (`smollm2-135m`) resolves to its fetched
//! file; a run directory to its trained student; a name given to `mentor import` to the model
//! it imported; anything else is a path to a `.gguf` file or a
//! Hugging Face directory.

use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;

pub fn resolve(spec: &str) -> Result<PathBuf> {
    use mentor_data::assets;
    if let Ok(asset) = assets::find(spec) {
        let path = assets::asset_path(spec);
        if !assets::is_installed(asset, &assets::mentor_home()) {
            bail!(
                "model `{spec}` is not fetched yet ({}): run `mentor fetch-assets {spec}`",
                path.display()
            );
        }
        return Ok(path);
    }
    let path = PathBuf::from(spec);
    if !path.exists() {
        let imported = imported_dir(spec);
        if !spec.contains('/') && imported.is_dir() {
            return Ok(imported);
        }
        bail!(
            "model `{spec}`: neither a known asset name, an imported model (`mentor import`) \
             nor an existing file or directory"
        );
    }
    if path.join("mentor.sqlite").is_file() {
        return run_student(&path);
    }
    Ok(path)
}

/// Where `mentor import` keeps the model it imported as `name`.
pub fn imported_dir(name: &str) -> PathBuf {
    mentor_data::assets::mentor_home()
        .join("imported")
        .join(name)
}

/// The trained student of the run in `run_dir`: the best checkpoint of its last training stage
/// (`student/stage-N/best`). A recipe in rounds trains each round in `student/round-K/stage-N/`:
/// its student is the round its summary scored on test (`rounds.tested_round`), else the last.
pub fn run_student(run_dir: &std::path::Path) -> Result<PathBuf> {
    let dir = run_dir.join("student");
    let rounds = numbered(&dir, |p| {
        p.is_dir()
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("round-"))
    });
    let found = if rounds.is_empty() {
        last_best(&dir)
    } else {
        let chosen = std::fs::read_to_string(run_dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|s| crate::rounds::tested_round_of(&s))
            .map(|b| dir.join(format!("round-{b}")))
            .filter(|d| last_best(d).is_some());
        chosen
            .or_else(|| {
                rounds
                    .iter()
                    .rev()
                    .find(|d| last_best(d).is_some())
                    .cloned()
            })
            .and_then(|d| last_best(&d))
    };
    found.with_context(|| {
        format!(
            "{} has no trained student yet: run `mentor train` (or `mentor distill`) first, or pass --model",
            dir.display()
        )
    })
}

/// `dir`'s entries that pass `keep`, by name with trailing numbers compared as numbers
/// (`round-10` after `round-2`).
fn numbered(dir: &std::path::Path, keep: impl Fn(&std::path::Path) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| keep(p))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (stem, n) = name.split_at(name.len() - digits);
        (stem.to_string(), n.parse::<u64>().unwrap_or(0))
    });
    v
}

/// The `best/` of the last stage under `dir` that has one.
fn last_best(dir: &std::path::Path) -> Option<PathBuf> {
    numbered(dir, |p| p.join("best/model.safetensors").is_file())
        .last()
        .map(|s| s.join("best"))
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Where models run and what they compute in: the global `--device` and `--dtype` flags.
#[derive(Clone, Debug)]
pub struct Placement {
    pub device: candle_core::Device,
    pub dtype: candle_core::DType,
}

static PLACEMENT: std::sync::OnceLock<Placement> = std::sync::OnceLock::new();

/// Sets the process's placement from `--device` (`cpu`, `cuda`, `cuda:N`) and `--dtype`
/// (`f32`, `bf16`, `f16`); called once, before any model loads.
pub fn set_placement(device: &str, dtype: &str) -> Result<()> {
    let placement = Placement {
        device: parse_device(device)?,
        dtype: parse_dtype(dtype)?,
    };
    if placement.device.is_cpu() && placement.dtype != candle_core::DType::F32 {
        tracing::warn!(
            "--dtype {dtype} on the CPU: candle's CPU kernels are fastest in f32, and mentor's \
             fused CPU kernels only exist for f32"
        );
    }
    let _ = PLACEMENT.set(placement);
    Ok(())
}

/// The placement set by [`set_placement`]; the CPU in f32 when none was.
pub fn placement() -> Placement {
    PLACEMENT.get().cloned().unwrap_or(Placement {
        device: candle_core::Device::Cpu,
        dtype: candle_core::DType::F32,
    })
}

pub fn parse_device(s: &str) -> Result<candle_core::Device> {
    let ordinal = match s.trim().to_ascii_lowercase().as_str() {
        "cpu" => return Ok(candle_core::Device::Cpu),
        "cuda" | "gpu" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => bail!("--device {s}: expected cpu, cuda or cuda:N"),
        },
    };
    if !cfg!(feature = "cuda") {
        bail!(
            "--device {s}: this mentor was built without CUDA; build one with \
             scripts/build-cuda.sh (README, \"GPU\")"
        );
    }
    // cudarc panics, rather than erring, when it cannot dlopen a CUDA library: turn that into
    // an error that says what to do, without the panic's backtrace
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let device = std::panic::catch_unwind(|| candle_core::Device::new_cuda(ordinal));
    std::panic::set_hook(hook);
    let why = match device {
        Ok(Ok(d)) => return Ok(d),
        Ok(Err(e)) => e.to_string(),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
            .split(" - searched")
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    bail!(
        "--device {s}: {why}. The CUDA libraries are loaded at run time: the driver's libcuda, \
         and libcublas, libcurand and libnvrtc from a CUDA 13 install or PyTorch's wheels \
         (site-packages/nvidia/cu13/lib) must be on LD_LIBRARY_PATH"
    )
}

pub fn parse_dtype(s: &str) -> Result<candle_core::DType> {
    use candle_core::DType;
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => DType::F32,
        "bf16" | "bfloat16" => DType::BF16,
        "f16" | "float16" => DType::F16,
        _ => bail!("--dtype {s}: expected f32, bf16 or f16"),
    })
}

/// Thread counts for the tensor kernels, set before candle starts its pools. GEMMs run on
/// rayon's pool (`--threads`, default one per core); candle's elementwise ops and quantised
/// matmuls use a second pool whose workers spin-wait (25,000 rounds by default) and then steal
/// cores from the GEMMs (DESIGN.md §9: a training step 38 s with one such worker against 49–92 s).
/// With the spin cut to 100 rounds the pool can have every core: measured here, a LoRA training
/// step of SmolLM2-135M 25.4 s (2 workers) vs 26.2 s (1), and the quantised teacher's batched
/// decode 19.4 vs 16.9 tokens/s (spin 2,000). `CANDLE_NUM_THREADS` and
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` in the environment win.
pub fn set_threads(n: Option<usize>) {
    if let Some(n) = n {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        let cores =
            n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |c| c.get()));
        std::env::set_var("CANDLE_NUM_THREADS", cores.to_string());
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "100");
    }
}

/// A model ready for inference, with its tokenizer.
pub struct LoadedModel {
    pub model: mentor_model::Llama,
    pub tokenizer: mentor_model::TextTokenizer,
    pub path: PathBuf,
}

/// Loads `spec` (asset name, `.gguf` file or HF directory) for inference on the
/// [`placement`]'s device, in its dtype. The
/// tokenizer comes from the GGUF metadata or the directory's `tokenizer.json`.
pub fn load_for_inference(spec: &str) -> Result<LoadedModel> {
    let (student, tokenizer, path) = load_student(spec, mentor_model::load::Tuning::Frozen, 0)?;
    Ok(LoadedModel {
        model: student.model,
        tokenizer,
        path,
    })
}

/// Loads `spec` for inference with a GGUF file's projections kept quantised (candle's
/// quantised kernels): what the embedded teacher uses. An HF directory loads dense.
pub fn load_quantized_for_inference(spec: &str) -> Result<LoadedModel> {
    use anyhow::Context;
    use mentor_model::load::{read_weights_quantized, Student, Tuning};
    let path = resolve(spec)?;
    let dev = placement().device;
    let weights = read_weights_quantized(&path, &dev)
        .with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = tokenizer_of(&weights, &path)?;
    let student = Student::new_in(weights, Tuning::Frozen, &dev, placement().dtype, 0)?;
    Ok(LoadedModel {
        model: student.model,
        tokenizer,
        path,
    })
}

fn tokenizer_of(
    weights: &mentor_model::load::Weights,
    path: &std::path::Path,
) -> Result<mentor_model::TextTokenizer> {
    use anyhow::Context;
    match &weights.gguf_metadata {
        Some(md) => mentor_model::TextTokenizer::from_gguf(md),
        None => mentor_model::TextTokenizer::from_file(&path.join("tokenizer.json")),
    }
    .with_context(|| format!("tokenizer of {}", path.display()))
}

/// Loads `spec` as a student to train (`tuning`: full or LoRA; `seed` initialises adapters).
pub fn load_student(
    spec: &str,
    tuning: mentor_model::load::Tuning,
    seed: u64,
) -> Result<(
    mentor_model::load::Student,
    mentor_model::TextTokenizer,
    PathBuf,
)> {
    use anyhow::Context;
    use mentor_model::load::{read_weights, Student};
    let path = resolve(spec)?;
    let Placement { device: dev, dtype } = placement();
    let weights =
        read_weights(&path, &dev).with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = tokenizer_of(&weights, &path)?;
    let student = Student::new_in(weights, tuning, &dev, dtype, seed)?;
    Ok((student, tokenizer, path))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_stage_is_the_highest_numbered() {
        let d = tempfile::tempdir().unwrap();
        let best = |p: &str| {
            let b = d.path().join("student").join(p).join("best");
            std::fs::create_dir_all(&b).unwrap();
            std::fs::write(b.join("model.safetensors"), b"").unwrap();
        };
        for stage in ["stage-2", "stage-10", "stage-1"] {
            best(stage);
        }
        let got = super::run_student(d.path()).unwrap();
        assert!(got.ends_with("student/stage-10/best"), "{}", got.display());
    }

    /// A run in rounds: the round its summary chose on validation, else the last one.
    #[test]
    fn a_run_in_rounds_gives_its_chosen_rounds_student() {
        let d = tempfile::tempdir().unwrap();
        for round in 0..3 {
            let b = d.path().join(format!("student/round-{round}/stage-0/best"));
            std::fs::create_dir_all(&b).unwrap();
            std::fs::write(b.join("model.safetensors"), b"").unwrap();
            std::fs::write(
                d.path()
                    .join(format!("student/round-{round}/stage-0/log.jsonl")),
                "",
            )
            .unwrap();
        }
        let got = super::run_student(d.path()).unwrap();
        assert!(got.ends_with("round-2/stage-0/best"), "{}", got.display());
        std::fs::write(
            d.path().join("summary.json"),
            r#"{"rounds": {"best_round": 1, "points": []}}"#,
        )
        .unwrap();
        let got = super::run_student(d.path()).unwrap();
        assert!(got.ends_with("round-1/stage-0/best"), "{}", got.display());
        let empty = tempfile::tempdir().unwrap();
        let err = super::run_student(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no trained student yet"), "{err}");
    }
}
