//! Subcommands whose interface is fixed (DESIGN.md §7) but whose engine is not built yet. Their
//! `--help` already documents the interface; running one says so and exits 69.

use std::fmt;
use std::path::PathBuf;

/// The error a not-yet-built subcommand returns.
#[derive(Debug)]
pub struct NotBuilt {
    command: &'static str,
    needs: &'static str,
}

impl fmt::Display for NotBuilt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`mentor {}` is not built yet: it needs {}. Nothing was done.",
            self.command, self.needs
        )
    }
}

impl std::error::Error for NotBuilt {}

pub fn not_built(command: &'static str, needs: &'static str) -> anyhow::Error {
    NotBuilt { command, needs }.into()
}

/// Bring an HF-format model trained elsewhere back for eval and serve. [not built yet]
#[derive(clap::Args)]
pub struct ImportArgs {
    pub dir: PathBuf,
}

/// Serve a student over an OpenAI-compatible HTTP API. [not built yet]
#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub model: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}
