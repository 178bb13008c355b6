//! `mentor init`: write a commented experiment config.

use crate::config::EXAMPLE;
use crate::output::Summary;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;

/// Write a commented example experiment config to start from.
///
/// Example: mentor init svamp-sbs.toml && mentor distill svamp-sbs.toml
#[derive(clap::Args)]
pub struct Args {
    /// Where to write it.
    #[arg(default_value = "experiment.toml")]
    path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> Result<Summary> {
    if a.path.exists() && !a.force {
        bail!("{} exists; pass --force to overwrite it", a.path.display());
    }
    std::fs::write(&a.path, EXAMPLE)
        .with_context(|| format!("cannot write {}", a.path.display()))?;
    Ok(Summary {
        human: format!(
            "wrote {}; edit it, then: mentor distill {}",
            a.path.display(),
            a.path.display()
        ),
        json: json!({ "path": a.path }),
    })
}
