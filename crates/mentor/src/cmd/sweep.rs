//! `mentor sweep`: a grid of runs (variants × seeds) that survives being stopped.

use crate::output::Summary;
use anyhow::Result;
use std::path::PathBuf;

/// Run a grid of experiments (variants × seeds), one run at a time, resumably
///
/// GRID.toml names a base config, the variants (named overrides of it) and the seeds:
///
///   base = "svamp-base.toml"        # relative to GRID.toml
///   seeds = [0, 1, 2]
///   dir = "runs/row1"               # default: runs/<grid name>
///   baseline = "standard"           # compare every variant with this one
///   distill_args = ["--no-before"]  # more `mentor distill` arguments for every cell
///   keep_checkpoints = false        # default: a finished cell keeps only its chosen student
///   keep_students = true            # false: the student goes too once scored (disk)
///   teacher_from = { one-cot = "k-cots" }  # one-cot starts from k-cots' teacher run
///   teacher_store = "runs/row3/k-cots-s0"  # the other cells start from this finished run
///   eval_modes = ["vote"]           # also score each finished student in these modes
///   untrained = true                # score the untrained student once, beside the cells
///   [variants.standard]
///   recipe = { name = "standard" }
///   [variants.step-by-step]
///   recipe = { name = "step-by-step", alpha = 0.5 }
///
/// Each cell is `mentor distill` of the merged config with --seed, in DIR/<variant>-s<seed>, its
/// output in that directory's `log`. Cells run seed by seed (every variant of seed 0 first), so
/// what has finished is already a paired comparison. Stop it at any moment (Ctrl-C, a kill, the
/// end of a session) and run the same command again: finished cells are skipped, an unfinished
/// one resumes stage by stage and training from its last checkpoint ([train] save_every bounds
/// what a kill loses). The training seed varies; the teacher's seed ([recipe] teacher_seed)
/// does not, so every seed asks the teacher the same requests.
///
/// The grid runs with a copy of the mentor binary taken at its first start (DIR/.bin/mentor), so
/// rebuilding mentor while it runs changes nothing; each cell records the version and commit
/// that ran it. --new-binary switches to the running binary (later cells then differ in code
/// from earlier ones, which the table notes).
///
/// teacher_from lets a variant whose teacher requests are a subset of another's (one chain of
/// thought of K, no self-evaluations) start from that variant's run store: the stored replies are
/// reused as they are (K's sample 0, sampled, is the one-CoT variant's CoT) and the teacher is
/// paid once. The source must come first in the file; a cell whose source has not finished waits.
/// teacher_store does the same across grids: a follow-up grid's cells (those whose variant names
/// no teacher_from) start from another grid's finished run, so they train on exactly its teacher
/// replies and pay for none again; a run not finished, or asked of other [teachers], is refused.
///
/// eval_modes scores every finished cell's student on the test split in more inference modes
/// (`mentor eval --mode`), where its training allows (a CoT-only student has no `label`);
/// `mentor compare DIR/*-s* --mode vote` reads them.
///
/// untrained = true scores the untrained student once before the first cell (the first
/// variant's config and mode, `mentor eval --model`, in DIR/untrained/) and puts it in the
/// results table, paired with every seed of every variant; with distill_args = ["--no-before"]
/// no cell scores it again.
///
/// A finished cell's training checkpoints (weights and optimizer state, for resuming) are
/// removed unless keep_checkpoints = true; its selected student (student/*/best) stays.
///
/// After every finished cell it writes DIR/results.md and DIR/results.json (`mentor compare`
/// over the finished cells).
///
/// --until keeps a sweep inside a time window (a working session, a lease on a machine): a cell
/// that would not finish by then is not started — a cell killed halfway loses its work when its
/// run directory does not outlive the window — and the sweep exits with status 75.
///
/// Examples: mentor sweep examples/grids/svamp-row1.toml
///           mentor sweep examples/grids/svamp-row1.toml --status
///           nohup mentor sweep grid.toml > runs/row1.log 2>&1 &
///           mentor sweep grid.toml --until +2h30m
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The grid file (TOML).
    grid: PathBuf,
    /// Print each cell's state (done / partial / not started), time spent and an estimate of
    /// what is left; run nothing.
    #[arg(long)]
    status: bool,
    /// Run the remaining cells with this binary instead of the copy taken at the grid's start.
    #[arg(long)]
    new_binary: bool,
    /// Bootstrap resamples for the results table.
    #[arg(long, default_value_t = 10_000)]
    resamples: usize,
    /// Start no cell that would not finish by then: `+DURATION` from now (`+2h30m`, `+90m`) or
    /// `@UNIX_SECONDS` (`date -d '+150 min' +@%s`). A cell's time is the mean of its variant's
    /// finished cells (of all finished cells before then). Stopping for it exits with status 75.
    #[arg(long, value_name = "WHEN", value_parser = parse_until)]
    until: Option<u64>,
}

/// `--until`'s value as unix seconds.
fn parse_until(s: &str) -> Result<u64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    if let Some(t) = s.strip_prefix('@') {
        return t
            .parse()
            .map_err(|_| format!("`{s}`: expected @UNIX_SECONDS, e.g. @{now}"));
    }
    let Some(d) = s.strip_prefix('+') else {
        return Err(format!(
            "`{s}`: expected +DURATION (+2h30m, +90m, +45s) or @UNIX_SECONDS"
        ));
    };
    let (mut secs, mut num) = (0u64, String::new());
    for c in d.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("`{s}`: unknown unit `{c}` (h, m or s)")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}`: a number must come before `{c}`"))?;
        secs += n * unit;
        num.clear();
    }
    if !num.is_empty() || d.is_empty() {
        return Err(format!("`{s}`: each number needs a unit (h, m or s)"));
    }
    Ok(now + secs)
}

pub fn run(a: Args) -> Result<Summary> {
    let out = if a.status {
        mentor_pipeline::sweep::status(&a.grid)?
    } else {
        mentor_pipeline::sweep::run(&a.grid, a.new_binary, a.resamples, a.until)?
    };
    Ok(Summary {
        human: out.human,
        json: out.json,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_until;

    #[test]
    fn until_reads_durations_and_unix_seconds() {
        // each call reads the clock: a second may pass between two
        let now = parse_until("+0s").unwrap();
        assert!((9000..=9001).contains(&(parse_until("+2h30m").unwrap() - now)));
        assert!((5400..=5401).contains(&(parse_until("+90m").unwrap() - now)));
        assert_eq!(parse_until("@1765123456").unwrap(), 1765123456);
        for bad in ["2h", "+", "+90", "+5d", "@soon", "+h"] {
            assert!(parse_until(bad).is_err(), "{bad}");
        }
    }
}
