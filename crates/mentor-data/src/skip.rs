//! For tests whose input (the shared reference data, a fetched model, MKL) may be missing on a
//! machine: a skip that shows. It panics when `require` names a set environment variable (CI
//! sets `MENTOR_REQUIRE_SHARED_DATA`, since CI has the data), and otherwise prints `SKIP:` on
//! stderr and appends the line to `$MENTOR_SKIP_LOG` when set, which `.ci/run` prints at the
//! end so a green run says what it did not check.

use std::io::Write;

/// Skips (returns) or fails (panics) the calling test: see the module doc.
pub fn skip_test(test: &str, why: &str, require: &str) {
    if std::env::var_os(require).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{test}: {why}, and {require} is set");
    }
    let line = format!("SKIP {test}: {why} (set {require}=1 to fail instead)");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("MENTOR_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
