//! The recorded releases as fetched assets: downloaded from a loopback "GitHub" (raw files and a
//! release archive, resumed after a dropped connection, checked by digest and git blob id), or
//! copied from a mirror folder against the same pinned table.

use mentor_data::assets::{Endpoints, Fetcher};
use mentor_data::releases::{self, Archive, Release, ReleaseFile, Upstream, RELEASES};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn git_blob(b: &[u8]) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", b.len()).as_bytes());
    h.update(b);
    hex::encode(h.finalize())
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// Serves `files` by URL path; the first GET of each path stops halfway (connection closed);
/// range requests continue. Counts GETs.
fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    std::thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        for stream in listener.incoming().take(500) {
            let mut s = stream.unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut from = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    from = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                }
            }
            let Some(data) = files.get(&path) else {
                let _ = write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                continue;
            };
            g.fetch_add(1, Ordering::SeqCst);
            let body = &data[from..];
            let status = if from > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if seen.insert(path.clone()) && body.len() > 1 {
                let _ = s.write_all(&body[..body.len() / 2]);
                continue;
            }
            let _ = s.write_all(body);
        }
    });
    (base, gets)
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    for (name, data) in members {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
    buf.into_inner()
}

fn fetcher(home: &std::path::Path, github: &str) -> Fetcher {
    Fetcher::new(
        home.to_path_buf(),
        Endpoints {
            github: github.into(),
            ..Endpoints::default()
        },
    )
    .unwrap()
}

#[test]
fn a_release_downloads_raw_files_and_archive_members_resumes_and_verifies() {
    let licence = b"Apache License 2.0 (a test copy)".to_vec();
    let train = br#"{"input": "1+1?", "label": "(1 + 1)"}"#.repeat(50);
    let cots = br#"["The answer is (1 + 1)."]"#.repeat(40);
    let archive = zip_of(&[
        ("datasets/toy/toy_train.json", &train),
        ("datasets/toy/llm/train_CoT_0.json", &cots),
        ("datasets/other/unrelated.json", b"{}"),
    ]);
    let release: &'static Release = leak(Release {
        name: "toy",
        datasets: &["toy"],
        description: "a toy release",
        repo: "someone/toy-release",
        commit: "0123456789abcdef0123456789abcdef01234567",
        licence: "Apache-2.0",
        archive: Some(Archive {
            path: "datasets.zip",
            git_blob: leak(git_blob(&archive)).as_str(),
        }),
        files: leak(vec![
            ReleaseFile {
                path: "toy/LICENSE",
                upstream: Upstream::Raw("LICENSE"),
                sha256: leak(sha256(&licence)).as_str(),
                size: licence.len() as u64,
            },
            ReleaseFile {
                path: "toy/data/toy_train.json",
                upstream: Upstream::Member("toy/toy_train.json"),
                sha256: leak(sha256(&train)).as_str(),
                size: train.len() as u64,
            },
            ReleaseFile {
                path: "toy/data/llm/train_CoT_0.json",
                upstream: Upstream::Member("toy/llm/train_CoT_0.json"),
                sha256: leak(sha256(&cots)).as_str(),
                size: cots.len() as u64,
            },
        ])
        .as_slice(),
        with: &[],
    });
    let prefix = format!("/{}/{}", release.repo, release.commit);
    let (base, gets) = serve(HashMap::from([
        (format!("{prefix}/LICENSE"), licence.clone()),
        (format!("{prefix}/datasets.zip"), archive.clone()),
    ]));
    let home = tempfile::tempdir().unwrap();
    let f = fetcher(home.path(), &base);
    assert!(!releases::is_installed(release, home.path()));
    let got = f.fetch_release(release, None, &mut |_| {}).unwrap();
    assert_eq!(got.files, 3);
    assert!(got
        .source
        .starts_with("github.com/someone/toy-release @ 0123456789ab"));
    let root = releases::release_root(home.path());
    assert_eq!(
        std::fs::read(root.join("toy/data/toy_train.json")).unwrap(),
        train
    );
    assert_eq!(
        std::fs::read(root.join("toy/data/llm/train_CoT_0.json")).unwrap(),
        cots
    );
    assert_eq!(std::fs::read(root.join("toy/LICENSE")).unwrap(), licence);
    assert!(releases::is_installed(release, home.path()));
    // each file was cut halfway once and resumed: 2 files × 2 GETs
    assert_eq!(gets.load(Ordering::SeqCst), 4);
    // the archive is not kept once the release is complete
    let left: Vec<_> = std::fs::read_dir(home.path().join("downloads"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // a rerun downloads nothing
    let again = f.fetch_release(release, None, &mut |_| {}).unwrap();
    assert_eq!(again.source, "already there");
    assert_eq!(gets.load(Ordering::SeqCst), 4);
}

#[test]
fn a_file_or_archive_that_differs_from_the_pin_is_refused_and_nothing_is_marked_done() {
    let good = b"the real rationale".to_vec();
    let release: &'static Release = leak(Release {
        name: "pinned",
        datasets: &[],
        description: "",
        repo: "someone/pinned",
        commit: "89abcdef0123456789abcdef0123456789abcdef",
        licence: "MIT",
        archive: Some(Archive {
            path: "datasets.zip",
            git_blob: "0000000000000000000000000000000000000000",
        }),
        files: leak(vec![
            ReleaseFile {
                path: "p/a.json",
                upstream: Upstream::Raw("data/a.json"),
                sha256: leak(sha256(&good)).as_str(),
                size: good.len() as u64,
            },
            ReleaseFile {
                path: "p/b.json",
                upstream: Upstream::Member("b.json"),
                sha256: leak(sha256(&good)).as_str(),
                size: good.len() as u64,
            },
        ])
        .as_slice(),
        with: &[],
    });
    let prefix = format!("/{}/{}", release.repo, release.commit);
    let (base, _) = serve(HashMap::from([
        (format!("{prefix}/data/a.json"), b"a changed file".to_vec()),
        (
            format!("{prefix}/datasets.zip"),
            zip_of(&[("b.json", &good)]),
        ),
    ]));
    let home = tempfile::tempdir().unwrap();
    let err = fetcher(home.path(), &base)
        .fetch_release(release, None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("p/a.json") && err.contains("sha256 is"),
        "{err}"
    );
    assert!(err.contains(&format!("{prefix}/data/a.json")), "{err}");
    assert!(!releases::is_installed(release, home.path()));
    assert!(!releases::release_root(home.path())
        .join("p/a.json")
        .exists());

    // with the raw file right, the archive's git blob id is checked next
    let (base, _) = serve(HashMap::from([
        (format!("{prefix}/data/a.json"), good.clone()),
        (
            format!("{prefix}/datasets.zip"),
            zip_of(&[("b.json", &good)]),
        ),
    ]));
    let err = fetcher(home.path(), &base)
        .fetch_release(release, None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("git blob id"), "{err}");
    assert!(!releases::is_installed(release, home.path()));
}

fn shared() -> Option<PathBuf> {
    let d = mentor_data::shared_data_dir().filter(|d| d.join("dss").is_dir());
    if d.is_none() {
        assert!(
            std::env::var_os("MENTOR_REQUIRE_SHARED_DATA").is_none(),
            "MENTOR_REQUIRE_SHARED_DATA is set but shared/data is missing"
        );
        eprintln!("skipped: shared/data missing");
    }
    d
}

#[test]
fn the_pinned_table_matches_the_shared_copy_from_a_mirror_and_over_http() {
    let Some(shared) = shared() else { return };
    // every built-in that reads recorded data has a release
    for ds in ["svamp", "cqa", "anli1", "fair-svamp", "minds-mirror-svamp"] {
        assert!(releases::for_dataset(ds).is_some(), "{ds} has no release");
    }
    // the mirror path: every pinned digest checked against the shared copy
    let home = tempfile::tempdir().unwrap();
    let f = fetcher(home.path(), "http://127.0.0.1:9");
    for r in RELEASES {
        let got = f.fetch_release(r, Some(&shared), &mut |_| {}).unwrap();
        assert!(got.source.starts_with("mirror"), "{}", got.source);
        assert!(releases::is_installed(r, home.path()));
    }
    // the download path with the real table: the raw-file releases, served from the shared copy
    // at the URLs GitHub uses
    let mut files = HashMap::new();
    for r in RELEASES.iter().filter(|r| r.archive.is_none()) {
        for file in r.files {
            let Upstream::Raw(up) = file.upstream else {
                panic!("{} has members but no archive", r.name)
            };
            files.insert(
                format!("/{}/{}/{up}", r.repo, r.commit),
                std::fs::read(shared.join(file.path)).unwrap(),
            );
        }
    }
    let (base, _) = serve(files);
    let home = tempfile::tempdir().unwrap();
    let f = fetcher(home.path(), &base);
    for r in RELEASES.iter().filter(|r| r.archive.is_none()) {
        f.fetch_release(r, None, &mut |_| {}).unwrap();
        assert!(releases::is_installed(r, home.path()));
    }
}
