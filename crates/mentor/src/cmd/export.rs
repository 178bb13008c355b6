//! `mentor export`: a run's training set in the formats other trainers read, or its student as
//! a Hugging Face directory, each with a card saying where it came from.

use crate::config::Config;
use crate::output::Summary;
use crate::run;
use anyhow::{anyhow, bail, Context, Result};
use mentor_core::Split;
use mentor_methods::trainset::{StudentTask, TrainPair};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// TRL `messages` JSONL (SFTTrainer, also Axolotl `chat_template`).
    Trl,
    /// `{"prompt", "completion"}` JSONL (TRL prompt-completion, most SFT scripts).
    PromptCompletion,
    /// Axolotl: `messages` JSONL plus a `axolotl-datasets.yaml` snippet.
    Axolotl,
    /// LLaMA-Factory: alpaca and sharegpt JSON plus `dataset_info.json` naming both.
    Llamafactory,
    /// Distilling step-by-step's `{input, label, rationale}` JSONL, one row per item.
    Dss,
    /// The trained student as an HF directory (safetensors, config, tokenizer, chat template).
    Hf,
    /// The trained student as one GGUF file for llama.cpp, Ollama, LM Studio (see --gguf-type).
    Gguf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GgufType {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
}

/// Export a run's training set (trl, prompt-completion, axolotl, llamafactory, dss) or its
/// trained student (hf), with a README card: the run's config, data counts and teacher cost.
///
/// The training set is rebuilt from the run store exactly as `mentor train` builds it. Task
/// weights (step-by-step's α) are not part of these formats; each row carries its `task` where
/// the format allows, and the card gives the weights.
///
/// Example: mentor export runs/svamp-step-by-step --format trl
#[derive(clap::Args)]
pub struct Args {
    /// The run directory (holds mentor.sqlite with the run's config).
    run: PathBuf,
    #[arg(long, value_enum)]
    format: Format,
    /// Where to write; default RUN/export/<format>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --format gguf: how matrices are stored (norms and biases stay f32).
    #[arg(long, value_enum, default_value_t = GgufType::F16)]
    gguf_type: GgufType,
}

pub fn run(a: Args) -> Result<Summary> {
    let store_path = a.run.join("mentor.sqlite");
    if !store_path.is_file() {
        bail!(
            "{} is not a run directory (no mentor.sqlite)",
            a.run.display()
        );
    }
    let config_json = mentor_store::Store::open_run_dir(&a.run)?
        .meta("config")?
        .ok_or_else(|| anyhow!("{}: the run store has no config", store_path.display()))?;
    let cfg: Config = serde_json::from_str(&config_json).map_err(|e| {
        anyhow!(
            "{}: the stored config does not parse ({e}); was it made by another mentor version?",
            store_path.display()
        )
    })?;
    let r = run::open_with(cfg, a.run.clone(), &config_json)?;
    let fmt_name = format!("{:?}", a.format).to_lowercase();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.run.join("export").join(&fmt_name));
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let set = mentor_pipeline::train::training_set(&r, r.ds.split(Split::Train))?;
    let written = match a.format {
        Format::Hf => {
            let model = mentor_pipeline::eval::trained_model(&r)?;
            copy_dir(&model, &out)?
        }
        Format::Gguf => {
            let model = mentor_pipeline::eval::trained_model(&r)?;
            let name = r
                .dir
                .file_name()
                .map_or("student".into(), |n| n.to_string_lossy().to_string());
            vec![write_gguf(
                &model,
                &out.join(format!("{name}.gguf")),
                &name,
                a.gguf_type,
            )?]
        }
        _ if set.pairs.is_empty() => {
            bail!("the run's training set is empty: run `mentor annotate` first")
        }
        Format::Trl => write_jsonl(&out.join("train.jsonl"), set.pairs.iter().map(messages))?,
        Format::PromptCompletion => write_jsonl(
            &out.join("train.jsonl"),
            set.pairs
                .iter()
                .map(|p| json!({"prompt": p.prompt, "completion": p.target, "task": p.task})),
        )?,
        Format::Axolotl => {
            let mut files = write_jsonl(&out.join("train.jsonl"), set.pairs.iter().map(messages))?;
            std::fs::write(
                out.join("axolotl-datasets.yaml"),
                "datasets:\n  - path: train.jsonl\n    type: chat_template\n    field_messages: messages\n    roles_to_train: [\"assistant\"]\n",
            )?;
            files.push(out.join("axolotl-datasets.yaml"));
            files
        }
        Format::Llamafactory => {
            let rows: Vec<_> = set
                .pairs
                .iter()
                .map(|p| json!({"instruction": p.prompt, "input": "", "output": p.target}))
                .collect();
            std::fs::write(out.join("train.json"), serde_json::to_string_pretty(&rows)?)?;
            let sharegpt: Vec<_> = set
                .pairs
                .iter()
                .map(|p| json!({"conversations": [{"from": "human", "value": p.prompt}, {"from": "gpt", "value": p.target}]}))
                .collect();
            std::fs::write(
                out.join("train_sharegpt.json"),
                serde_json::to_string_pretty(&sharegpt)?,
            )?;
            let name = format!("mentor_{}", r.cfg.recipe.name.as_str());
            let info = json!({
                name.clone(): {"file_name": "train.json"},
                format!("{name}_sharegpt"): {"file_name": "train_sharegpt.json", "formatting": "sharegpt",
                    "columns": {"messages": "conversations"}},
            });
            std::fs::write(
                out.join("dataset_info.json"),
                serde_json::to_string_pretty(&info)?,
            )?;
            vec![
                out.join("train.json"),
                out.join("train_sharegpt.json"),
                out.join("dataset_info.json"),
            ]
        }
        Format::Dss => {
            let mut rows = std::collections::BTreeMap::<&str, serde_json::Value>::new();
            for p in &set.pairs {
                let row = rows
                    .entry(&p.example_id)
                    .or_insert_with(|| json!({"id": p.example_id}));
                match p.task {
                    StudentTask::Label => row["label"] = json!(p.target),
                    StudentTask::Rationale => row["rationale"] = json!(p.target),
                    _ => {}
                }
                let input = p
                    .prompt
                    .split_once(": ")
                    .map_or(p.prompt.as_str(), |(_, q)| q);
                row["input"] = json!(input);
            }
            write_jsonl(&out.join("train.jsonl"), rows.into_values())?
        }
    };
    let card = card(&r, &set.stats, a.format, &fmt_name)?;
    std::fs::write(out.join("README.md"), &card)?;
    let what = if matches!(a.format, Format::Hf | Format::Gguf) {
        "the trained student".to_string()
    } else {
        format!("{} pairs", set.pairs.len())
    };
    Ok(Summary {
        human: format!("exported {fmt_name} ({what}) to {}", out.display()),
        json: json!({ "format": fmt_name, "out": out, "files": written, "pairs": set.pairs.len() }),
    })
}

fn messages(p: &TrainPair) -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": p.prompt}, {"role": "assistant", "content": p.target}], "task": p.task})
}

fn write_jsonl(path: &Path, rows: impl Iterator<Item = serde_json::Value>) -> Result<Vec<PathBuf>> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| path.display().to_string())?,
    );
    for r in rows {
        writeln!(f, "{r}")?;
    }
    f.flush()?;
    Ok(vec![path.to_path_buf()])
}

/// The HF checkpoint in `model_dir` as one GGUF file (weights, config, tokenizer, template).
fn write_gguf(model_dir: &Path, path: &Path, name: &str, ty: GgufType) -> Result<PathBuf> {
    use mentor_model::gguf::ExportType;
    let dev = candle_core::Device::Cpu;
    let w = mentor_model::load::read_weights(model_dir, &dev)
        .with_context(|| format!("loading {}", model_dir.display()))?;
    let tok = mentor_model::TextTokenizer::from_file(&model_dir.join("tokenizer.json"))?;
    let mut tensors: Vec<(String, candle_core::Tensor)> = w.tensors.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let ty = match ty {
        GgufType::F32 => ExportType::F32,
        GgufType::F16 => ExportType::F16,
        GgufType::Q8_0 => ExportType::Q8_0,
    };
    mentor_model::gguf::write(
        path,
        name,
        &w.config,
        &tensors,
        tok.gguf_metadata(w.config.vocab_size)?,
        ty,
    )?;
    Ok(path.to_path_buf())
}

fn copy_dir(from: &Path, to: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for e in std::fs::read_dir(from).with_context(|| from.display().to_string())? {
        let e = e?;
        if e.file_type()?.is_file() {
            let dst = to.join(e.file_name());
            std::fs::copy(e.path(), &dst).with_context(|| dst.display().to_string())?;
            out.push(dst);
        }
    }
    Ok(out)
}

fn card(
    r: &run::Run,
    stats: &mentor_methods::trainset::TrainSetStats,
    format: Format,
    fmt_name: &str,
) -> Result<String> {
    let ledger = r.store.lock().unwrap().ledger()?;
    let (calls, tokens, cost) = ledger.iter().fold((0, 0, 0.0), |(c, t, d), l| {
        (
            c + l.calls_ok + l.calls_failed,
            t + l.prompt_tokens + l.completion_tokens,
            d + l.cost_usd,
        )
    });
    let what = if matches!(format, Format::Hf | Format::Gguf) {
        "student model"
    } else {
        "training set"
    };
    let [tr, va, te] = r.ds.counts();
    Ok(format!(
        "# mentor export: {what} ({fmt_name})\n\n\
         Recipe `{}` on `{}` ({}): {tr} train / {va} valid / {te} test examples.\n\n\
         Teachers: {} ({calls} calls, {tokens} tokens, ${cost:.4}).\n\n\
         Training pairs per task: {:?}. Task weights: label α = {}, rationale 1 − α; self-evaluation {} (mixed schedule).\n\n\
         Training-set statistics:\n\n```json\n{}\n```\n\nThe run's config:\n\n```json\n{}\n```\n",
        r.cfg.recipe.name.as_str(),
        r.ds.name,
        r.ds.task,
        ledger.iter().map(|l| l.teacher.as_str()).collect::<Vec<_>>().join(", "),
        stats.pairs,
        r.cfg.recipe.alpha,
        r.cfg.recipe.self_eval_weight,
        serde_json::to_string_pretty(stats)?,
        serde_json::to_string_pretty(&r.cfg)?,
    ))
}
