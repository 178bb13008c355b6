//! `mentor import`: a Hugging Face model trained elsewhere becomes a named local model that
//! `eval`, `generate`, `serve` and `train` take as `--model NAME`.

use crate::models;
use crate::output::Summary;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Import a Hugging Face model directory (config.json, *.safetensors, tokenizer.json) trained
/// elsewhere — e.g. by TRL on a cluster from `mentor export` data — for eval, generate and serve.
///
/// The model is checked before anything is copied: a supported architecture (llama, qwen2,
/// mistral), every weight present, a tokenizer that loads, and one forward pass that gives
/// finite logits. It is then copied to MENTOR_HOME/imported/NAME with a manifest (source, file
/// hashes, parameters) and from then on `--model NAME` finds it.
///
/// Example: mentor import ./trl-out/checkpoint-500 --name svamp-sft && mentor serve --model svamp-sft
#[derive(clap::Args)]
pub struct Args {
    /// The model directory (as `save_pretrained` writes it).
    dir: PathBuf,
    /// The name to use with --model; default: the directory's name.
    #[arg(long)]
    name: Option<String>,
    /// Replace an imported model of the same name.
    #[arg(long)]
    force: bool,
}

/// The files of an HF model directory worth keeping (weights, configs, tokenizer, template).
fn model_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let keep = |name: &str| {
        name.ends_with(".safetensors")
            || name == "model.safetensors.index.json"
            || name == "config.json"
            || name == "generation_config.json"
            || name.starts_with("tokenizer")
            || name == "special_tokens_map.json"
            || name == "chat_template.jinja"
            || name == "README.md"
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(keep))
        .collect();
    files.sort();
    Ok(files)
}

/// What is wrong with `dir` as a model to import, said before loading gigabytes.
fn check_layout(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let has = |n: &str| dir.join(n).is_file();
    if has("adapter_config.json") && !has("config.json") {
        bail!(
            "{} holds a LoRA adapter, not a model: merge it into its base first \
             (peft: model.merge_and_unload().save_pretrained(DIR)) and import that",
            dir.display()
        );
    }
    if !has("config.json") {
        bail!(
            "{}: no config.json (is this a save_pretrained directory?)",
            dir.display()
        );
    }
    if !has("tokenizer.json") {
        bail!(
            "{}: no tokenizer.json; save the tokenizer beside the model (tokenizer.save_pretrained(DIR))",
            dir.display()
        );
    }
    let weights = model_files(dir)?
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "safetensors"));
    if !weights {
        let bin = has("pytorch_model.bin") || has("pytorch_model.bin.index.json");
        bail!(
            "{}: no *.safetensors weights{}",
            dir.display(),
            if bin {
                " (only pytorch_model.bin: save with safe_serialization=True)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

pub fn run(a: Args) -> Result<Summary> {
    let src = a.dir.clone();
    check_layout(&src)?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => src
            .canonicalize()?
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{}: pass --name", src.display()))?
            .to_string(),
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--name `{name}`: use a plain name (letters, digits, - _ .)");
    }
    if mentor_data::assets::find(&name).is_ok() {
        bail!("`{name}` is the name of a built-in asset; pass another --name");
    }

    // prove it loads and runs before copying anything
    let src_str = src.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    let loaded = models::load_for_inference(src_str)?;
    let probe = loaded.tokenizer.encode("Hello")?;
    let ids = candle_core::Tensor::new(probe.as_slice(), loaded.model.device())?.unsqueeze(0)?;
    let logits = loaded
        .model
        .forward(&ids)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if logits.iter().any(|v| !v.is_finite()) {
        bail!(
            "{}: a forward pass gives non-finite logits; the weights are broken",
            src.display()
        );
    }
    let cfg = loaded.model.cfg.clone();
    let params = cfg.num_parameters();
    drop(loaded);

    let dest = models::imported_dir(&name);
    if dest.exists() {
        if !a.force {
            bail!(
                "a model named `{name}` is already imported ({}); pass --force to replace it",
                dest.display()
            );
        }
        std::fs::remove_dir_all(&dest).with_context(|| dest.display().to_string())?;
    }
    // copy into a temporary sibling, then rename: a crash never leaves half a model under NAME
    let tmp = dest.with_extension("importing");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    let mut files = vec![];
    for f in model_files(&src)? {
        let file_name = f.file_name().unwrap();
        std::fs::copy(&f, tmp.join(file_name))
            .with_context(|| format!("copying {}", f.display()))?;
        files.push(json!({
            "file": file_name.to_string_lossy(),
            "bytes": f.metadata()?.len(),
            "sha256": sha256_file(&f)?,
        }));
    }
    let manifest = json!({
        "name": name,
        "source": src.canonicalize()?.display().to_string(),
        "imported_by": format!("mentor {}", env!("CARGO_PKG_VERSION")),
        "parameters": params,
        "config": cfg,
        "files": files,
    });
    std::fs::write(
        tmp.join("mentor-import.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    std::fs::rename(&tmp, &dest).with_context(|| dest.display().to_string())?;
    Ok(Summary {
        human: format!(
            "imported {} as `{name}` ({:.0}M parameters, {} files) → {}\nuse it with --model {name}",
            src.display(),
            params as f64 / 1e6,
            files.len(),
            dest.display()
        ),
        json: json!({"name": name, "path": dest, "parameters": params, "files": files.len()}),
    })
}
