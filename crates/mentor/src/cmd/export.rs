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
    /// LLaMA-Factory: alpaca JSON plus `dataset_info.json`.
    Llamafactory,
    /// Distilling step-by-step's `{input, label, rationale}` JSONL, one row per item.
    Dss,
    /// The trained student as an HF directory (safetensors, config, tokenizer, chat template).
    Hf,
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
    let set = super::train::training_set(&r, r.ds.split(Split::Train))?;
    let written = match a.format {
        Format::Hf => {
            let model = super::eval::trained_model(&r)?;
            copy_dir(&model, &out)?
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
            let info = json!({ format!("mentor_{}", r.cfg.recipe.name.as_str()): {"file_name": "train.json"} });
            std::fs::write(
                out.join("dataset_info.json"),
                serde_json::to_string_pretty(&info)?,
            )?;
            vec![out.join("train.json"), out.join("dataset_info.json")]
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
    Ok(Summary {
        human: format!(
            "exported {} ({} pairs) to {}",
            fmt_name,
            set.pairs.len(),
            out.display()
        ),
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
    let what = if format == Format::Hf {
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
