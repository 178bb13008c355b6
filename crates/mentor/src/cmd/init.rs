//! `mentor init`: write a commented experiment config.

use crate::config::EXAMPLE;
use crate::output::Summary;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;

/// Write a commented example experiment config to start from.
///
/// `--quickstart` writes the config `mentor distill` runs when given none, to change and rerun.
///
/// Examples: mentor init svamp-sbs.toml && mentor distill svamp-sbs.toml
///           mentor init qs.toml --quickstart
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Where to write it.
    #[arg(default_value = "experiment.toml")]
    path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
    /// Write the quickstart's config (what `mentor distill` with no config runs).
    #[arg(long)]
    quickstart: bool,
}

pub fn run(a: Args) -> Result<Summary> {
    if a.path.exists() && !a.force {
        bail!("{} exists; pass --force to overwrite it", a.path.display());
    }
    let text = if a.quickstart {
        mentor_pipeline::distill::QUICKSTART
    } else {
        EXAMPLE
    };
    std::fs::write(&a.path, text).with_context(|| format!("cannot write {}", a.path.display()))?;
    Ok(Summary {
        human: format!(
            "wrote {}; edit it, then: mentor distill {}",
            a.path.display(),
            a.path.display()
        ),
        json: json!({ "path": a.path }),
    })
}
