//! A mentor run end to end, as a library: [`run::open`] a run (config, dataset, store),
//! [`teachers::for_run`] its teachers (HTTP, replay, the embedded model), then the stages —
//! [`annotate`] (a recipe's teacher stages, MAPD's mining), [`rounds`] (ELAD's and MAPD's round
//! loop, with [`elad::Elad`] and [`mapd::Mapd`] as its round teachers), [`train`] (the student,
//! stage by stage), [`eval`] (a model on a split) and [`report`] — or all of them at once with
//! [`distill::distill`]. Every stage resumes from what the run store and the run directory
//! hold. The `mentor` binary parses arguments and calls these; a Rust program can too
//! (`examples/` at the repository root).

pub mod annotate;
pub mod compare;
pub mod config;
pub mod distill;
pub mod elad;
pub mod eval;
pub mod local_teacher;
pub mod mapd;
pub mod models;
pub mod progress;
pub mod report;
pub mod rounds;
pub mod run;
pub mod sweep;
pub mod teachers;
pub mod train;

/// The version and commit this code was built from, as recorded in every run's summary.
pub fn build_info() -> serde_json::Value {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("MENTOR_GIT_COMMIT"),
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    fn git(args: &[&str]) -> Option<String> {
        let o = Command::new("git").args(args).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    /// The recorded commit is the checkout's, marked dirty exactly when a tracked source file
    /// differs from it (a sweep's cells and every summary rely on it to say which code ran).
    #[test]
    fn build_info_names_the_checkout_and_its_changes() {
        let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
            eprintln!("not in a git checkout: nothing to compare");
            return;
        };
        let sources = [":/crates", ":/Cargo.toml", ":/Cargo.lock"];
        let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
        status.extend(sources);
        let dirty = git(&status).is_some_and(|s| !s.is_empty());
        let want = if dirty { format!("{head}-dirty") } else { head };
        assert_eq!(super::build_info()["commit"], want.as_str());
    }
}
