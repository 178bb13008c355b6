//! `mentor data`: what datasets hold.

use crate::config::Config;
use crate::output::Summary;
use anyhow::{bail, Result};
use mentor_core::Split;
use mentor_data::{load_dataset, DatasetSpec, FieldMap, BUILTINS};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// List the built-in datasets and where each comes from.
    List,
    /// Show a dataset's splits, row counts and one example.
    ///
    /// NAME is a built-in dataset (`mentor data list`), an experiment config (.toml) whose
    /// [data] table is used, or your own file with `--task`: JSONL, a JSON array, `.jsonl.gz`,
    /// parquet, or a Hugging Face `datasets.save_to_disk` directory. For a file it also says which
    /// of the row's fields became the question, answer, choices and id, so you can check the
    /// mapping before paying a teacher. Built-ins from packages need `mentor fetch-assets NAME`.
    ///
    /// Examples:
    ///   mentor data show svamp --json
    ///   mentor data show train.parquet --task multiple-choice
    ///   mentor data show rows.jsonl --task numeric --field question=body --field answer=gold
    #[command(verbatim_doc_comment)]
    Show(ShowArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// A built-in dataset name, a config file whose [data] to load, or a data file / directory.
    name: String,
    /// Task kind of a data file: numeric, equation, multiple-choice, nli, yes-no.
    #[arg(long)]
    task: Option<mentor_core::TaskKind>,
    /// Map a field of a data file, as `[data] fields` does: KEY=ROW_FIELD, KEY one of question,
    /// answer, choices, id, explanation, split; dotted paths reach into objects (doc.question).
    #[arg(long = "field", value_name = "KEY=ROW_FIELD")]
    fields: Vec<String>,
    /// Seed of the split, where the dataset has none of its own.
    #[arg(long)]
    seed: Option<u64>,
    /// Count and skip malformed rows instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
}

pub fn run(c: DataCommand) -> Result<Summary> {
    match c {
        DataCommand::List => {
            let mut human = String::from("built-in datasets:\n");
            let mut rows = Vec::new();
            for b in BUILTINS {
                human += &format!(
                    "  {:<11} {:<16} {}\n  {:<11} {:<16} splits: {}\n",
                    b.name, b.task, b.source, "", "", b.splits
                );
                rows.push(json!({ "name": b.name, "task": b.task, "source": b.source, "splits": b.splits }));
            }
            Ok(Summary {
                human,
                json: json!({ "datasets": rows }),
            })
        }
        DataCommand::Show(a) => show(a),
    }
}

fn show(a: ShowArgs) -> Result<Summary> {
    let path = PathBuf::from(&a.name);
    let is_file = !a.name.ends_with(".toml")
        && (path.exists() || a.name.contains('/') || a.name.contains('.'));
    let mut spec = if a.name.ends_with(".toml") {
        Config::load(&path)?.data
    } else if is_file {
        let Some(task) = a.task else {
            bail!(
                "{} is a data file: say its task with --task numeric | equation | multiple-choice | nli | yes-no",
                a.name
            );
        };
        let mut fields = FieldMap::default();
        for f in &a.fields {
            let Some((key, field)) = f.split_once('=') else {
                bail!("--field {f:?}: expected KEY=ROW_FIELD, e.g. --field question=problem");
            };
            let field = field.trim().to_string();
            match key.trim() {
                "question" => fields.question = field,
                "answer" => fields.answer = field,
                "choices" => fields.choices = Some(field),
                "id" => fields.id = Some(field),
                "explanation" => fields.explanation = Some(field),
                "split" => fields.split = Some(field),
                other => bail!(
                    "--field {f:?}: unknown key `{other}`; keys are question, answer, choices, id, explanation, split"
                ),
            }
        }
        DatasetSpec {
            path: Some(path.clone()),
            task: Some(task),
            fields,
            ..Default::default()
        }
    } else {
        if a.task.is_some() || !a.fields.is_empty() {
            bail!(
                "--task and --field are for data files; `{}` is a built-in dataset name (no such file here)",
                a.name
            );
        }
        DatasetSpec::builtin(&a.name)
    };
    if let Some(s) = a.seed {
        spec.seed = s;
    }
    spec.skip_bad_rows |= a.skip_bad_rows;
    let ds = load_dataset(&spec)?;
    let [tr, va, te] = ds.counts();
    let example = Split::ALL
        .iter()
        .find_map(|&s| ds.split(s).first())
        .cloned();
    let mut human = format!(
        "{} ({}) from {}\n  splits ({}{}): train {tr}, valid {va}, test {te}\n",
        ds.name,
        ds.task,
        ds.source,
        ds.split_method,
        ds.seed.map(|s| format!(", seed {s}")).unwrap_or_default()
    );
    if let Some(r) = spec
        .dataset
        .as_deref()
        .and_then(mentor_data::releases::for_dataset)
    {
        human += &format!("  release: {}\n", r.card());
    }
    if !ds.recorded.is_empty() {
        human += &format!("  recorded teacher outputs: {}\n", ds.recorded.len());
    }
    if !ds.skipped.is_empty() {
        human += &format!(
            "  skipped {} malformed rows, first: {}\n",
            ds.skipped.len(),
            ds.skipped[0]
        );
    }
    if !ds.fields.is_empty() {
        human += "  fields read (example field <- row field, rows):\n";
        for (key, sources) in &ds.fields {
            let from: Vec<String> = sources
                .iter()
                .map(|(field, n)| {
                    if field.starts_with('(') || field.contains(" + ") {
                        format!("{field} ({n})")
                    } else {
                        format!("`{field}` ({n})")
                    }
                })
                .collect();
            human += &format!("    {key:<11} <- {}\n", from.join(", "));
        }
    }
    if let Some(e) = &example {
        human += &format!(
            "  example {}:\n    question: {}\n    answer: {}\n",
            e.id,
            e.question.replace('\n', "\n              "),
            e.answer
        );
        if !e.choices.is_empty() {
            human += &format!("    choices: {}\n", e.choices_block().replace('\n', " "));
        }
    }
    Ok(Summary {
        human,
        json: json!({
            "name": ds.name, "task": ds.task, "source": ds.source,
            "split_method": ds.split_method, "seed": ds.seed,
            "splits": { "train": tr, "valid": va, "test": te },
            "recorded": ds.recorded.len(), "skipped_rows": ds.skipped.len(),
            "fields": ds.fields,
            "example": example,
        }),
    })
}
