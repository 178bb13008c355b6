//! The dataset readers over arbitrary file bytes (JSON lines or a JSON array), for every task
//! kind, skipping bad rows or not: no panic; an error names the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mentor_core::TaskKind;
use mentor_data::{load_dataset, DatasetSpec};

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("mentor-fuzz-rows-{}.jsonl", std::process::id()));
    std::fs::write(&path, data).unwrap();
    for (i, task) in TaskKind::ALL.into_iter().enumerate() {
        let spec = DatasetSpec { path: Some(path.clone()), task: Some(task), skip_bad_rows: i % 2 == 0, ..Default::default() };
        if let Err(e) = load_dataset(&spec) {
            let msg = e.to_string();
            assert!(msg.contains("mentor-fuzz-rows") || msg.contains("fractions") || msg.contains("split"), "{msg}");
        }
    }
});
