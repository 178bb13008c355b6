//! The asset fetcher against a loopback "PyPI" that serves a wheel built here: resume after a
//! dropped connection, digest checks, multi-part assembly, idempotent reruns.

use mentor_data::assets::{sha256_file, Asset, AssetKind, Endpoints, Fetcher, Part, Registry};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn wheel(member: &str, data: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file(
        member,
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    z.write_all(data).unwrap();
    z.finish().unwrap();
    buf.into_inner()
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

struct Server {
    base: String,
    wheel_gets: Arc<AtomicUsize>,
    range_gets: Arc<AtomicUsize>,
}

/// Serves `/pypi/<pkg>/json` and `/files/<name>`. The first GET of each file stops halfway
/// (connection closed); `corrupt` files are served with their last byte flipped.
fn serve(files: Vec<(String, String, Vec<u8>)>, corrupt: Vec<String>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let wheel_gets = Arc::new(AtomicUsize::new(0));
    let range_gets = Arc::new(AtomicUsize::new(0));
    let (wg, rg, b) = (wheel_gets.clone(), range_gets.clone(), base.clone());
    std::thread::spawn(move || {
        let mut first_get: std::collections::HashSet<String> = Default::default();
        for stream in listener.incoming().take(200) {
            let mut s = stream.unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut range_from = None;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range_from = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            if let Some(pkg) = path
                .strip_prefix("/pypi/")
                .and_then(|p| p.strip_suffix("/json"))
            {
                let entries: Vec<_> = files
                    .iter()
                    .filter(|(p, _, _)| p == pkg)
                    .map(|(_, name, data)| serde_json::json!({ "filename": name, "url": format!("{b}/files/{name}"), "digests": { "sha256": sha(data) } }))
                    .collect();
                let body = serde_json::json!({ "releases": { "1.0": entries } }).to_string();
                write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
                continue;
            }
            let name = path.trim_start_matches("/files/").to_string();
            let Some((_, _, data)) = files.iter().find(|(_, n, _)| *n == name) else {
                write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                continue;
            };
            wg.fetch_add(1, Ordering::SeqCst);
            let mut data = data.clone();
            if corrupt.contains(&name) {
                *data.last_mut().unwrap() ^= 0xff;
            }
            let start = range_from.unwrap_or(0);
            if range_from.is_some() {
                rg.fetch_add(1, Ordering::SeqCst);
            }
            let body = &data[start..];
            let status = if range_from.is_some() {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            if first_get.insert(name.clone()) {
                // drop the connection halfway through the first download of each file
                let _ = s.write_all(&body[..body.len() / 2]);
                continue;
            }
            let _ = s.write_all(body);
        }
    });
    Server {
        base,
        wheel_gets,
        range_gets,
    }
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

#[test]
fn multi_part_asset_resumes_verifies_and_is_idempotent() {
    let chunk_a: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let chunk_b: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let whl_a = wheel("pkg_part1/data/part01.bin", &chunk_a);
    let whl_b = wheel("pkg_part2/data/part02.bin", &chunk_b);
    let whole: Vec<u8> = chunk_a.iter().chain(&chunk_b).copied().collect();
    let server = serve(
        vec![
            (
                "pkg-part1".into(),
                "pkg_part1-1.0-py3-none-any.whl".into(),
                whl_a.clone(),
            ),
            (
                "pkg-part2".into(),
                "pkg_part2-1.0-py3-none-any.whl".into(),
                whl_b.clone(),
            ),
        ],
        vec![],
    );
    let parts: &'static [Part] = Box::leak(Box::new([
        Part {
            registry: Registry::PyPi,
            package: "pkg-part1",
            version: "1.0",
            filename: "pkg_part1-1.0-py3-none-any.whl",
            sha256: leak(sha(&whl_a)),
            size: whl_a.len() as u64,
            member: "pkg_part1/data/part01.bin",
        },
        Part {
            registry: Registry::PyPi,
            package: "pkg-part2",
            version: "1.0",
            filename: "pkg_part2-1.0-py3-none-any.whl",
            sha256: leak(sha(&whl_b)),
            size: whl_b.len() as u64,
            member: "pkg_part2/data/part02.bin",
        },
    ]));
    let asset = Asset {
        name: "toy-model",
        kind: AssetKind::Model,
        description: "",
        file: "models/toy.gguf",
        sha256: Some(leak(sha(&whole))),
        default: true,
        parts,
    };
    let home = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(
        home.path().into(),
        Endpoints {
            pypi: server.base.clone(),
            npm: server.base.clone(),
            github: String::new(),
        },
    )
    .unwrap();

    let got = fetcher.fetch_all(&[&asset], &mut |_| {}).unwrap();
    assert!(!got[0].skipped);
    assert_eq!(
        std::fs::read(home.path().join("models/toy.gguf")).unwrap(),
        whole
    );
    assert_eq!(
        sha256_file(&home.path().join("models/toy.gguf")).unwrap(),
        sha(&whole)
    );
    // each archive: one broken GET, then one ranged GET that resumed it
    assert_eq!(server.wheel_gets.load(Ordering::SeqCst), 4);
    assert_eq!(server.range_gets.load(Ordering::SeqCst), 2);
    assert!(
        !home
            .path()
            .join("downloads/pkg_part1-1.0-py3-none-any.whl")
            .exists(),
        "archives removed after assembly"
    );

    let again = fetcher.fetch_all(&[&asset], &mut |_| {}).unwrap();
    assert!(again[0].skipped, "second fetch is a no-op");
    assert_eq!(
        server.wheel_gets.load(Ordering::SeqCst),
        4,
        "nothing downloaded again"
    );
}

#[test]
fn corrupt_download_is_rejected_and_removed() {
    let data = b"hello gguf".repeat(1000);
    let whl = wheel("p/data.bin", &data);
    let name = "p-1.0-py3-none-any.whl".to_string();
    let server = serve(
        vec![("p".into(), name.clone(), whl.clone())],
        vec![name.clone()],
    );
    let parts: &'static [Part] = Box::leak(Box::new([Part {
        registry: Registry::PyPi,
        package: "p",
        version: "1.0",
        filename: "p-1.0-py3-none-any.whl",
        sha256: leak(sha(&whl)),
        size: whl.len() as u64,
        member: "p/data.bin",
    }]));
    let asset = Asset {
        name: "p",
        kind: AssetKind::Dataset,
        description: "",
        file: "datasets/p.bin",
        sha256: None,
        default: true,
        parts,
    };
    let home = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(
        home.path().into(),
        Endpoints {
            pypi: server.base.clone(),
            npm: server.base,
            github: String::new(),
        },
    )
    .unwrap();
    let err = fetcher.fetch(&asset, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("sha256") && err.contains("p-1.0-py3-none-any.whl"),
        "{err}"
    );
    assert!(!home.path().join("datasets/p.bin").exists());
    assert!(
        !home
            .path()
            .join("downloads/p-1.0-py3-none-any.whl.part")
            .exists(),
        "bad bytes are not kept"
    );
}

#[test]
fn missing_member_names_archive_and_member() {
    let whl = wheel("p/other.bin", b"x");
    let server = serve(
        vec![("q".into(), "q-1.0-py3-none-any.whl".into(), whl.clone())],
        vec![],
    );
    let parts: &'static [Part] = Box::leak(Box::new([Part {
        registry: Registry::PyPi,
        package: "q",
        version: "1.0",
        filename: "q-1.0-py3-none-any.whl",
        sha256: leak(sha(&whl)),
        size: whl.len() as u64,
        member: "p/data.bin",
    }]));
    let asset = Asset {
        name: "q",
        kind: AssetKind::Dataset,
        description: "",
        file: "q.bin",
        sha256: None,
        default: true,
        parts,
    };
    let home = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(
        home.path().into(),
        Endpoints {
            pypi: server.base.clone(),
            npm: server.base,
            github: String::new(),
        },
    )
    .unwrap();
    let err = fetcher.fetch(&asset, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("q-1.0-py3-none-any.whl") && err.contains("p/data.bin"),
        "{err}"
    );
}
