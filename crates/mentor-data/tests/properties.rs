//! The dataset readers over arbitrary file contents — broken JSON, wrong types, stray bytes,
//! invalid UTF-8, huge lines — never panic: a file loads, or the error names the file (and the
//! line, for a malformed row). `scripts/fuzz.sh` runs this at 10^6 cases.

use mentor_core::TaskKind;
use mentor_data::{load_dataset, DatasetSpec};
use proptest::prelude::*;

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // rows that almost parse
        ("[a-z ]{0,12}", -5i64..500)
            .prop_map(|(q, a)| format!("{{\"question\": \"{q}\", \"answer\": {a}}}").into_bytes()),
        ("[a-z]{0,6}", "[A-E]").prop_map(|(q, a)| format!(
            "{{\"id\": 3, \"question\": \"{q}\", \"choices\": [\"x\", \"y\"], \"answer\": \"{a}\"}}"
        )
        .into_bytes()),
        Just(b"{\"question\": [1, 2], \"answer\": {}}".to_vec()),
        Just(b"{\"question\": null}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"".to_vec()),
        // anything at all
        prop::collection::vec(any::<u8>(), 0..80),
    ]
}

proptest! {
    #[test]
    fn readers_never_panic(lines in prop::collection::vec(line(), 0..12), kind in 0usize..5, skip in any::<bool>(), gz in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![];
        for l in &lines {
            bytes.extend_from_slice(l);
            bytes.push(b'\n');
        }
        let path = if gz {
            use std::io::Write;
            let p = dir.path().join("rows.jsonl.gz");
            let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap();
            p
        } else {
            let p = dir.path().join("rows.jsonl");
            std::fs::write(&p, &bytes).unwrap();
            p
        };
        let task = [TaskKind::Numeric, TaskKind::Equation, TaskKind::MultipleChoice, TaskKind::Nli, TaskKind::YesNo][kind];
        let spec = DatasetSpec {
            path: Some(path.clone()),
            task: Some(task),
            skip_bad_rows: skip,
            ..Default::default()
        };
        if let Err(e) = load_dataset(&spec) {
            let msg = e.to_string();
            prop_assert!(msg.contains("rows.jsonl") || msg.contains("fractions") || msg.contains("split"), "{msg}");
        }
    }
}

/// A 10 MB line is read (or refused) without trouble.
#[test]
fn a_huge_line_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.jsonl");
    let q = "x".repeat(10_000_000);
    std::fs::write(&p, format!("{{\"question\": \"{q}\", \"answer\": 1}}\n")).unwrap();
    let spec = DatasetSpec {
        path: Some(p),
        task: Some(TaskKind::Numeric),
        fractions: [1.0, 0.0, 0.0],
        ..Default::default()
    };
    let ds = load_dataset(&spec).unwrap();
    assert_eq!(ds.counts()[0], 1);
}
