//! Records the commit the binary was built from (`MENTOR_GIT_COMMIT`), so every run can say which
//! code produced it and `mentor sweep` can tell when a grid's cells would mix versions. A build
//! from a tree with uncommitted changes to its tracked sources (crates/, Cargo.toml, Cargo.lock)
//! says so (`<commit>-dirty`): no commit reproduces it.

use std::path::Path;
use std::process::Command;

/// What the binary is built from: a change elsewhere (EXPERIMENTS.md, results) is not "dirty".
const SOURCE_STATUS: [&str; 7] = [
    "status",
    "--porcelain",
    "--untracked-files=no",
    "--",
    ":/crates",
    ":/Cargo.toml",
    ":/Cargo.lock",
];

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let dirty = commit != "unknown" && git(&SOURCE_STATUS).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=MENTOR_GIT_COMMIT={commit}{suffix}");
    // Run again when HEAD moves (a commit, a checkout; `--git-path` finds the files of a linked
    // worktree too, whose .git is a file) and when a tracked file changes (clean ↔ dirty).
    for p in ["HEAD", "refs/heads", "packed-refs", "index"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    if commit != "unknown" {
        println!("cargo:rerun-if-changed=../../crates");
        println!("cargo:rerun-if-changed=../../Cargo.toml");
        println!("cargo:rerun-if-changed=../../Cargo.lock");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
