//! The papers' recorded teacher outputs as fetched assets.
//!
//! Each release is a public repository pinned to a commit: the step-by-step release
//! (PaLM-540B rationales for SVAMP, CommonsenseQA and ANLI-R1, shipped upstream as one
//! `datasets.zip`), FAIR's `Learn-from-Committee` data (the committee's feedback, rationales and
//! peer reviews), and Mind's Mirror's sample data. `mentor fetch-assets dss-svamp` downloads each
//! file (or the archive that holds it, verified by the git blob id GitHub lists for it) and checks
//! every file against the sha256 pinned here before it lands under `$MENTOR_HOME/shared/`, in the
//! same layout as the project's `shared/data`. A mirror directory (`--from DIR`, or
//! `MENTOR_SHARED_DATA`) is the offline source: the same table, the same digests, copied instead
//! of downloaded.
//!
//! The file digests were computed from copies whose FAIR and Mind's Mirror files match the
//! upstream blobs byte for byte (checked against the pinned commits); the step-by-step files come
//! from the pinned `datasets.zip`, whose members could not be listed when the table was written:
//! members are found by path suffix and accepted only with the pinned digest.

use crate::assets::{AssetError, Fetcher, Progress};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a release file comes from upstream.
#[derive(Debug, Clone, Copy)]
pub enum Upstream {
    /// A file of the repository at the pinned commit.
    Raw(&'static str),
    /// A member of the release's archive, found by this path suffix.
    Member(&'static str),
}

/// One file of a release.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseFile {
    /// Where it lands, relative to the shared-data root (`dss/svamp/svamp_train.json`).
    pub path: &'static str,
    pub upstream: Upstream,
    pub sha256: &'static str,
    pub size: u64,
}

/// An archive in the repository that holds a release's files.
#[derive(Debug, Clone, Copy)]
pub struct Archive {
    pub path: &'static str,
    /// The git blob id (sha1 of `blob <len>\0` + content) of the archive at the pinned commit.
    pub git_blob: &'static str,
}

/// One recorded release, pinned.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    /// The asset name (`mentor fetch-assets dss-svamp`).
    pub name: &'static str,
    /// Built-in datasets that read it.
    pub datasets: &'static [&'static str],
    pub description: &'static str,
    /// `owner/name` on GitHub.
    pub repo: &'static str,
    pub commit: &'static str,
    pub licence: &'static str,
    pub archive: Option<Archive>,
    pub files: &'static [ReleaseFile],
    /// Releases fetched with this one: what its datasets are usually scored on (`fair-svamp`'s
    /// mistakes are scored on SVAMP's questions: `dss-svamp`).
    pub with: &'static [&'static str],
}

impl Release {
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The licence line `mentor data show` prints on the dataset card.
    pub fn card(&self) -> String {
        format!(
            "{} (github.com/{} @ {}), licence {}",
            self.description,
            self.repo,
            &self.commit[..12],
            self.licence
        )
    }
}

const DSS_REPO: &str = "google-research/distilling-step-by-step";
const DSS_COMMIT: &str = "ef944263c9ddfd40a9888557f3e7d17513fd1a7e";
const DSS_ARCHIVE: Archive = Archive {
    path: "datasets.zip",
    git_blob: "fb9d88a0b44c2daac1ec1639f0bdae993e7e5bcd",
};

pub const RELEASES: &[Release] = &[
    Release {
        name: "dss-svamp",
        datasets: &["svamp"],
        description: "Distilling step-by-step release: SVAMP 800/200 split, PaLM-540B CoTs",
        repo: DSS_REPO,
        commit: DSS_COMMIT,
        licence: "Apache-2.0",
        archive: Some(DSS_ARCHIVE),
        files: DSS_SVAMP,
        with: &[],
    },
    Release {
        name: "dss-cqa",
        datasets: &["cqa"],
        description: "Distilling step-by-step release: CommonsenseQA (CoS-E v1.11), PaLM-540B CoTs",
        repo: DSS_REPO,
        commit: DSS_COMMIT,
        licence: "Apache-2.0",
        archive: Some(DSS_ARCHIVE),
        files: DSS_CQA,
        with: &[],
    },
    Release {
        name: "dss-anli1",
        datasets: &["anli1"],
        description: "Distilling step-by-step release: ANLI round 1, PaLM-540B CoTs",
        repo: DSS_REPO,
        commit: DSS_COMMIT,
        licence: "Apache-2.0",
        archive: Some(DSS_ARCHIVE),
        files: DSS_ANLI1,
        with: &[],
    },
    Release {
        name: "fair-svamp",
        datasets: &["fair-svamp"],
        description: "FAIR / MAPD release: Llama-2-7B-chat's SVAMP and StrategyQA mistakes, the \
                      committee's feedback, rationales and peer reviews",
        repo: "zhuochunli/Learn-from-Committee",
        commit: "60abfafc237e35348565a723ef0169194ae1e601",
        licence: "MIT",
        archive: None,
        files: FAIR,
        with: &["dss-svamp"],
    },
    Release {
        name: "minds-mirror-svamp",
        datasets: &["minds-mirror-svamp"],
        description: "Mind's Mirror release: SVAMP sample, gpt-3.5-turbo CoTs and self-evaluations",
        repo: "Attention-is-All-I-Need/Mind-s-Mirror-Distilling-LLM",
        commit: "4d3fea51ca476be2d2b64ea6530dc5aee0f17a60",
        licence: "Apache-2.0",
        archive: None,
        files: MINDS_MIRROR,
        with: &[],
    },
];

pub fn find(name: &str) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.name == name)
}

/// The release a built-in dataset reads, if it reads one.
pub fn for_dataset(dataset: &str) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.datasets.contains(&dataset))
}

/// Where fetched releases land: `$MENTOR_HOME/shared`, laid out like `shared/data`.
pub fn release_root(home: &Path) -> PathBuf {
    home.join("shared")
}

fn marker(home: &Path, r: &Release) -> PathBuf {
    release_root(home).join(format!(".{}.complete", r.name))
}

/// Whether every file of `r` was fetched and verified into `home`.
pub fn is_installed(r: &Release, home: &Path) -> bool {
    marker(home, r).is_file()
}

/// What one release fetch did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FetchedRelease {
    pub name: String,
    pub root: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// `github`, `mirror DIR`, or `already there`.
    pub source: String,
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn git_blob_id(path: &Path) -> Result<String, AssetError> {
    use sha1::Digest as _;
    let bytes = fs::read(path).map_err(|source| AssetError::Io {
        path: path.into(),
        cause: source,
    })?;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(&bytes);
    Ok(hex::encode(h.finalize()))
}

impl Fetcher {
    /// Makes sure every file of a release is under `$MENTOR_HOME/shared`, verified: copied from
    /// `mirror` when given, else downloaded from GitHub at the pinned commit. Files already there
    /// with the right digest are kept; a rerun after an interruption fetches only what is missing.
    pub fn fetch_release(
        &self,
        r: &Release,
        mirror: Option<&Path>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<FetchedRelease, AssetError> {
        let root = release_root(&self.home);
        let mark = marker(&self.home, r);
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| AssetError::Io {
                path: p.clone(),
                cause: source,
            }
        };
        if mark.is_file() {
            progress(Progress::Done {
                asset: r.name,
                skipped: true,
            });
            return Ok(FetchedRelease {
                name: r.name.into(),
                root,
                files: r.files.len(),
                bytes: r.size(),
                source: "already there".into(),
            });
        }
        let mut archive: Option<zip::ZipArchive<fs::File>> = None;
        for f in r.files {
            let dest = root.join(f.path);
            if fs::read(&dest).is_ok_and(|b| sha256(&b) == f.sha256) {
                continue;
            }
            let (bytes, from) = match mirror {
                Some(dir) => {
                    let src = dir.join(f.path);
                    let b = fs::read(&src).map_err(io(&src))?;
                    (b, src.display().to_string())
                }
                None => match f.upstream {
                    Upstream::Raw(path) => {
                        let url = format!(
                            "{}/{}/{}/{}",
                            self.endpoints.github.trim_end_matches('/'),
                            r.repo,
                            r.commit,
                            path
                        );
                        (self.get_small(&url, f.path, progress)?, url)
                    }
                    Upstream::Member(suffix) => {
                        let a = r.archive.ok_or_else(|| {
                            AssetError::Other(format!("release {} lists no archive", r.name))
                        })?;
                        if archive.is_none() {
                            let path = self.download_archive(r, a, progress)?;
                            let file = fs::File::open(&path).map_err(io(&path))?;
                            archive = Some(zip::ZipArchive::new(file).map_err(|e| {
                                AssetError::Other(format!("{}: not a valid zip: {e}", a.path))
                            })?);
                        }
                        let zip = archive.as_mut().expect("opened above");
                        let name = (0..zip.len())
                            .filter_map(|i| zip.name_for_index(i).map(str::to_string))
                            .find(|n| n == suffix || n.ends_with(&format!("/{suffix}")))
                            .ok_or_else(|| AssetError::NoMember {
                                archive: a.path.into(),
                                member: format!("…/{suffix}"),
                            })?;
                        progress(Progress::Extract {
                            archive: a.path,
                            member: suffix,
                        });
                        let mut b = Vec::new();
                        zip.by_name(&name)
                            .map_err(|_| AssetError::NoMember {
                                archive: a.path.into(),
                                member: name.clone(),
                            })?
                            .read_to_end(&mut b)
                            .map_err(io(Path::new(a.path)))?;
                        (b, format!("{}:{name}", a.path))
                    }
                },
            };
            let got = sha256(&bytes);
            if got != f.sha256 {
                return Err(AssetError::Digest {
                    file: format!("{} (from {from})", f.path),
                    got,
                    want: f.sha256.into(),
                });
            }
            let dir = dest.parent().expect("release paths have a parent");
            fs::create_dir_all(dir).map_err(io(dir))?;
            let tmp = dest.with_extension("part");
            fs::write(&tmp, &bytes).map_err(io(&tmp))?;
            fs::rename(&tmp, &dest).map_err(io(&dest))?;
        }
        if let Some(a) = r.archive {
            let _ = fs::remove_file(self.home.join("downloads").join(archive_name(r, a)));
        }
        fs::write(&mark, format!("{} {}\n", r.repo, r.commit)).map_err(io(&mark))?;
        progress(Progress::Done {
            asset: r.name,
            skipped: false,
        });
        Ok(FetchedRelease {
            name: r.name.into(),
            root,
            files: r.files.len(),
            bytes: r.size(),
            source: match mirror {
                Some(d) => format!("mirror {}", d.display()),
                None => format!("github.com/{} @ {}", r.repo, &r.commit[..12]),
            },
        })
    }

    /// A small file in one GET (retried), for the releases' raw files.
    fn get_small(
        &self,
        url: &str,
        label: &str,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Vec<u8>, AssetError> {
        let dir = self.home.join("downloads");
        fs::create_dir_all(&dir).map_err(|source| AssetError::Io {
            path: dir.clone(),
            cause: source,
        })?;
        let partial = dir.join(format!("{}.part", label.replace('/', "_")));
        self.retrying(url, &partial, label, None, progress)?;
        let b = fs::read(&partial).map_err(|source| AssetError::Io {
            path: partial.clone(),
            cause: source,
        })?;
        let _ = fs::remove_file(&partial);
        Ok(b)
    }

    /// The release's archive in `home/downloads`, resumed where a try left it, checked against
    /// its git blob id (a mismatch removes it).
    fn download_archive(
        &self,
        r: &Release,
        a: Archive,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<PathBuf, AssetError> {
        let dir = self.home.join("downloads");
        fs::create_dir_all(&dir).map_err(|source| AssetError::Io {
            path: dir.clone(),
            cause: source,
        })?;
        let done = dir.join(archive_name(r, a));
        if done.is_file() && git_blob_id(&done)? == a.git_blob {
            return Ok(done);
        }
        let partial = dir.join(format!("{}.part", archive_name(r, a)));
        let url = format!(
            "{}/{}/{}/{}",
            self.endpoints.github.trim_end_matches('/'),
            r.repo,
            r.commit,
            a.path
        );
        self.retrying(&url, &partial, a.path, None, progress)?;
        let got = git_blob_id(&partial)?;
        if got != a.git_blob {
            let _ = fs::remove_file(&partial);
            return Err(AssetError::Digest {
                file: format!("{url} (git blob id)"),
                got,
                want: a.git_blob.into(),
            });
        }
        fs::rename(&partial, &done).map_err(|source| AssetError::Io {
            path: done.clone(),
            cause: source,
        })?;
        Ok(done)
    }

    pub(crate) fn retrying(
        &self,
        url: &str,
        partial: &Path,
        label: &str,
        size: Option<u64>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), AssetError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.download_once(url, partial, label, size, progress) {
                Ok(()) => return Ok(()),
                Err(e @ AssetError::Http { .. }) if attempts < 4 => {
                    tracing::warn!("{e}; resuming (attempt {})", attempts + 1);
                    std::thread::sleep(std::time::Duration::from_millis(500 * attempts));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn archive_name(r: &Release, a: Archive) -> String {
    format!(
        "{}-{}-{}",
        r.repo.replace('/', "_"),
        &r.commit[..12],
        a.path.replace('/', "_")
    )
}

// The pinned files (generated from the release copies; see the module doc).

const DSS_SVAMP: &[ReleaseFile] = &[
    ReleaseFile {
        path: "dss/LICENSE",
        upstream: Upstream::Raw("LICENSE"),
        sha256: "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
        size: 11357,
    },
    ReleaseFile {
        path: "dss/svamp/SVAMP.json",
        upstream: Upstream::Member("svamp/SVAMP.json"),
        sha256: "5be77703a6d891ae476d7c082787ad361392aa02453b132516cdd5f4e7934e3e",
        size: 339970,
    },
    ReleaseFile {
        path: "dss/svamp/llm/test_CoT_0.json",
        upstream: Upstream::Member("svamp/llm/test_CoT_0.json"),
        sha256: "fd536719c09b0cc97bfeee5775b212f8e4541ffe012bcd99c893a99e7e46df37",
        size: 82516,
    },
    ReleaseFile {
        path: "dss/svamp/llm/train_CoT_0.json",
        upstream: Upstream::Member("svamp/llm/train_CoT_0.json"),
        sha256: "9aa813b5653131e53bfe0477fa2cb3f90fb3d1b7a5226433218cb7b85998f094",
        size: 205881,
    },
    ReleaseFile {
        path: "dss/svamp/llm/train_CoT_1.json",
        upstream: Upstream::Member("svamp/llm/train_CoT_1.json"),
        sha256: "db0131252436d0487ff8642d94abad23636c080258da60097d5c6f15b1e32639",
        size: 122946,
    },
    ReleaseFile {
        path: "dss/svamp/svamp_test.json",
        upstream: Upstream::Member("svamp/svamp_test.json"),
        sha256: "b73cba2c53b1e9b1c8aa512a8928c12d0524d1acba560f8c526756185044054c",
        size: 41338,
    },
    ReleaseFile {
        path: "dss/svamp/svamp_train.json",
        upstream: Upstream::Member("svamp/svamp_train.json"),
        sha256: "641fc0f69864e1376fc2e29675affd15fa641f3b40279dcd6a595f3780f4e721",
        size: 163561,
    },
];

const DSS_CQA: &[ReleaseFile] = &[
    ReleaseFile {
        path: "dss/LICENSE",
        upstream: Upstream::Raw("LICENSE"),
        sha256: "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
        size: 11357,
    },
    ReleaseFile {
        path: "dss/cqa/cqa_test.json",
        upstream: Upstream::Member("cqa/cqa_test.json"),
        sha256: "caf4f47b8afac62a80f0517e1af3eba2af11de0c7c6f3baf3742fb6390d99dfb",
        size: 422767,
    },
    ReleaseFile {
        path: "dss/cqa/cqa_train.json",
        upstream: Upstream::Member("cqa/cqa_train.json"),
        sha256: "09601f7b3239eb4c0a3be16c4b897d0c30905e9bc38cf36c77831d98bd37d9fb",
        size: 3443547,
    },
    ReleaseFile {
        path: "dss/cqa/llm/test_CoT_0.json",
        upstream: Upstream::Member("cqa/llm/test_CoT_0.json"),
        sha256: "02860e4fa44b4c1f08ed29513abf74f433345e534c51418448b40869ed752a01",
        size: 480252,
    },
    ReleaseFile {
        path: "dss/cqa/llm/test_CoT_1.json",
        upstream: Upstream::Member("cqa/llm/test_CoT_1.json"),
        sha256: "44f1fc36088d5beed937c204ae43ca09d74fd0ea6a784fa89207b7e88c37fb15",
        size: 104190,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_0.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_0.json"),
        sha256: "632167edcb645336a0ff1194fe87a1821fefdb02515679d178b167619903fff1",
        size: 478929,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_1.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_1.json"),
        sha256: "8d14f619696c2bf3f0989d3a47ee8120f047af4eddaf23eb64610941cb453796",
        size: 479710,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_2.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_2.json"),
        sha256: "25e559368c7e69dba359245395463a669f2fcef91a3b7b89613ff41bed0fbd8f",
        size: 482479,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_3.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_3.json"),
        sha256: "db2a50477c463dd84a4b7ee2dedae323ff8746f20ca0c4a4619c03e04140ddf5",
        size: 480766,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_4.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_4.json"),
        sha256: "52ccbf961db874a47968599f8411372a39f280f91413df7d90bcbcea291b9836",
        size: 479459,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_5.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_5.json"),
        sha256: "0d238b1c5c4be3630bf14c15a176985b4a2e7bcf5fa5a93d24e9d89ccde06974",
        size: 480749,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_6.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_6.json"),
        sha256: "af81b051cefa61be0b513f9e002b9eeab7160c18731732b59138fede91fccee4",
        size: 482082,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_7.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_7.json"),
        sha256: "0cd6eba4d2449fb295d66e3dd9998ab59f6246820ca07e0fd1cc61dfcc3e6b3d",
        size: 477210,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_8.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_8.json"),
        sha256: "02c156f92540f7b2469d252c814a2a87dad47616f828db3e7e236edd72f21b61",
        size: 471556,
    },
    ReleaseFile {
        path: "dss/cqa/llm/train_CoT_9.json",
        upstream: Upstream::Member("cqa/llm/train_CoT_9.json"),
        sha256: "7448c4cd5a9416ccb1e0c021e2b3bf2e697dc70173ff6f08d5b64b56d5fe8038",
        size: 352538,
    },
];

const DSS_ANLI1: &[ReleaseFile] = &[
    ReleaseFile {
        path: "dss/LICENSE",
        upstream: Upstream::Raw("LICENSE"),
        sha256: "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
        size: 11357,
    },
    ReleaseFile {
        path: "dss/anli1/anli1_test.json",
        upstream: Upstream::Member("anli1/anli1_test.json"),
        sha256: "fe494327269367e1ac4342fd72969a6270f51fd90cef0bc47a364a1d452762e7",
        size: 618821,
    },
    ReleaseFile {
        path: "dss/anli1/anli1_valid.json",
        upstream: Upstream::Member("anli1/anli1_valid.json"),
        sha256: "743faf5a43b687e34f5482166106e4c86a9f8f013078364a62caa055f8504704",
        size: 618787,
    },
    ReleaseFile {
        path: "dss/anli1/llm/test_CoT_0.json",
        upstream: Upstream::Member("anli1/llm/test_CoT_0.json"),
        sha256: "49e312c60501f8d374f9d8f7ba7bf86601bc736e667eedb9087793f274a1a0f1",
        size: 492272,
    },
    ReleaseFile {
        path: "dss/anli1/llm/valid_CoT_0.json",
        upstream: Upstream::Member("anli1/llm/valid_CoT_0.json"),
        sha256: "ac3576f6caba189a7c00d1982bb2521518e5247b5aa2b347c483c874451ab935",
        size: 489483,
    },
];

const FAIR: &[ReleaseFile] = &[
    ReleaseFile {
        path: "fair/LICENSE",
        upstream: Upstream::Raw("LICENSE"),
        sha256: "aaa369d8ab256f6d94f82fb35d259fb8b3abac059bcba2ac39888db8c43eab1b",
        size: 1065,
    },
    ReleaseFile {
        path: "fair/Llama-2-7b-chat-hf_strategyQA_false_round0.json",
        upstream: Upstream::Raw("data/Llama-2-7b-chat-hf_strategyQA_false_round0.json"),
        sha256: "754be8bd368ed18611ec5c06d872f575594f1a737e7a4e6d00a9e1914b267968",
        size: 706857,
    },
    ReleaseFile {
        path: "fair/Llama-2-7b-chat-hf_svamp_false_round0.json",
        upstream: Upstream::Raw("data/Llama-2-7b-chat-hf_svamp_false_round0.json"),
        sha256: "cdbe08dfa87853135a0d378fd117f628fa5fd63e3f2b3b3590d51c7a0427bb16",
        size: 172575,
    },
    ReleaseFile {
        path: "fair/Llama-2-7b-chat-hf_svamp_feedback_round0.json",
        upstream: Upstream::Raw("data/Llama-2-7b-chat-hf_svamp_feedback_round0.json"),
        sha256: "b0b302c8d2bbcc5e9f79992aca84b400313c62a24a500a465cb694ab72d8da71",
        size: 891951,
    },
    ReleaseFile {
        path: "fair/Llama-2-7b-chat-hf_svamp_rationale_round0.json",
        upstream: Upstream::Raw("data/Llama-2-7b-chat-hf_svamp_rationale_round0.json"),
        sha256: "5b8eae481ded9eafce622e7ab4eaf283d9c2b9b13494561fcdc6814a91a4b8e9",
        size: 987907,
    },
];

const MINDS_MIRROR: &[ReleaseFile] = &[
    ReleaseFile {
        path: "minds-mirror/LICENSE",
        upstream: Upstream::Raw("LICENSE"),
        sha256: "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
        size: 11357,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree1/llm/test_CoT_0.json",
        upstream: Upstream::Raw("datasets/svamp_tree1/llm/test_CoT_0.json"),
        sha256: "344d41a79ac086c4bdf967103a24d87b582bc642ac0a1ade30f5d23f28374aa4",
        size: 27858,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree1/llm/train_CoT_0.json",
        upstream: Upstream::Raw("datasets/svamp_tree1/llm/train_CoT_0.json"),
        sha256: "09af6e77aca59a7a71944b87d778c24be032636c229a77cc262aac0485fc897c",
        size: 25022,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree1/svamp_tree1_test.json",
        upstream: Upstream::Raw("datasets/svamp_tree1/svamp_tree1_test.json"),
        sha256: "977c6699e0f8aa4abf06e4867610c71e12ad1324176cd401c4b36828c3ebd319",
        size: 451,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree1/svamp_tree1_train.json",
        upstream: Upstream::Raw("datasets/svamp_tree1/svamp_tree1_train.json"),
        sha256: "0b1941712ca4be7d06119d74e86818ecfd9f897c843f12eab0f4bdafd1604746",
        size: 358,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree2/llm/test_CoT_0.json",
        upstream: Upstream::Raw("datasets/svamp_tree2/llm/test_CoT_0.json"),
        sha256: "344d41a79ac086c4bdf967103a24d87b582bc642ac0a1ade30f5d23f28374aa4",
        size: 27858,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree2/llm/train_CoT_0.json",
        upstream: Upstream::Raw("datasets/svamp_tree2/llm/train_CoT_0.json"),
        sha256: "09af6e77aca59a7a71944b87d778c24be032636c229a77cc262aac0485fc897c",
        size: 25022,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree2/svamp_tree2_test.json",
        upstream: Upstream::Raw("datasets/svamp_tree2/svamp_tree2_test.json"),
        sha256: "62e7f504c5404b81ec96a03687c7271384c8c86cfe57015fd43273202ddae0ec",
        size: 10367,
    },
    ReleaseFile {
        path: "minds-mirror/svamp_tree2/svamp_tree2_train.json",
        upstream: Upstream::Raw("datasets/svamp_tree2/svamp_tree2_train.json"),
        sha256: "7f00b220279851e25e9bea730bf8681a57310dc346261c647e40654b251dd8a9",
        size: 10300,
    },
];
