//! A grid of runs (variants × seeds) that survives being stopped: each cell is a child
//! `mentor distill` of a merged config, run seed by seed from a copy of the binary taken at the
//! grid's start, skipped when finished, resumed otherwise; the seeds of a variant share one
//! teacher run; the finished cells' paired comparison is rewritten after each. `mentor sweep`
//! is its command line.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What a sweep (or its status) says: lines for a person and JSON for a script.
pub struct Outcome {
    pub human: String,
    pub json: serde_json::Value,
}

/// What a grid cell's directory says about it (DIR/<cell>/cell.json).
pub use crate::compare::CELL_FILE;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    base: PathBuf,
    seeds: Vec<u64>,
    #[serde(default)]
    dir: Option<PathBuf>,
    #[serde(default)]
    baseline: Option<String>,
    /// More `mentor distill` arguments for every cell (e.g. ["--no-before"]).
    #[serde(default)]
    distill_args: Vec<String>,
    /// Keep a finished cell's training checkpoints (weights + optimizer state, ~4× the model);
    /// by default only its selected student (`best/`) stays.
    #[serde(default)]
    keep_checkpoints: bool,
    /// Keep each finished cell's trained student (default). `false`: once a cell is scored in
    /// every mode, its student's weights go too (its predictions, summary and logs stay) — a grid
    /// of a dozen 0.5B students would hold 24 GB.
    #[serde(default = "yes")]
    keep_students: bool,
    /// variant → the variant whose teacher run it starts from (its stored replies are reused as
    /// they are): variants that ask a subset of another's requests pay the teacher once.
    #[serde(default)]
    teacher_from: std::collections::BTreeMap<String, String>,
    /// A finished run (another grid's cell, e.g. "runs/kd-sciq/text-s0") whose teacher replies
    /// every cell starts from, unless its variant names a `teacher_from`: a follow-up grid
    /// trains on exactly the replies its parent grid trained on and pays for none of them again.
    #[serde(default)]
    teacher_store: Option<PathBuf>,
    /// More inference modes to score every finished cell's student in on the test split
    /// (`mentor eval --mode`), beside the mode its config names.
    #[serde(default)]
    eval_modes: Vec<String>,
    /// Score the untrained student once (the first variant's config and inference mode, in
    /// DIR/untrained/) and put it in the results table: greedy, it is the same for every seed
    /// and variant, so it pairs with each seed of each.
    #[serde(default)]
    untrained: bool,
    variants: toml::Table,
}

/// A loaded grid: its cells in run order.
pub struct Grid {
    pub dir: PathBuf,
    pub baseline: Option<String>,
    pub distill_args: Vec<String>,
    pub keep_checkpoints: bool,
    pub keep_students: bool,
    pub eval_modes: Vec<String>,
    /// Score the untrained student once, in DIR/untrained/ (grid key `untrained`).
    pub untrained: bool,
    /// The finished run whose teacher replies cells start from (grid key `teacher_store`).
    pub teacher_store: Option<PathBuf>,
    pub cells: Vec<Cell>,
}

pub struct Cell {
    pub variant: String,
    pub seed: u64,
    pub dir: PathBuf,
    /// The merged config, as TOML.
    pub config: String,
    /// The variant whose teacher run this cell starts from (grid key `teacher_from`).
    pub teacher_from: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CellRecord {
    variant: String,
    seed: u64,
    /// Seconds spent in finished invocations of the cell.
    seconds: f64,
    attempts: u32,
    /// Commits of the binaries that ran it (one unless --new-binary was used mid-cell).
    commits: Vec<String>,
    #[serde(default)]
    last_error: Option<String>,
    /// Unix seconds when the running invocation started (None when none runs).
    #[serde(default)]
    running_since: Option<u64>,
}

fn yes() -> bool {
    true
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug, Serialize, Deserialize)]
struct SweepRecord {
    version: String,
    commit: String,
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Value, over: &toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Makes the config's file paths absolute against `dir` (the base config's directory), since the
/// merged config is written elsewhere.
fn rebase_paths(cfg: &mut toml::Value, dir: &Path) {
    for (table, key) in [
        ("data", "path"),
        ("prompts", "cot"),
        ("prompts", "self_eval"),
    ] {
        if let Some(toml::Value::String(p)) = cfg.get_mut(table).and_then(|t| t.get_mut(key)) {
            if Path::new(p.as_str()).is_relative() {
                *p = dir.join(&*p).display().to_string();
            }
        }
    }
}

/// The directory (under the grid's) and the name in its tables of the untrained student.
const UNTRAINED: &str = "untrained";

impl Grid {
    /// The untrained student's test predictions, once scored (`untrained = true`).
    fn untrained_predictions(&self) -> Option<PathBuf> {
        let eval = self.dir.join(UNTRAINED).join("eval");
        let mut files: Vec<PathBuf> = std::fs::read_dir(eval)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        files.into_iter().next()
    }
}

/// Scores the untrained student on the test split once, with the first variant's config (its
/// student, data and inference mode): `mentor eval --model` in DIR/untrained/, its output in
/// that directory's `log`. A failure is reported and the grid goes on; a signal stops it.
fn score_untrained(grid: &Grid, bin: &Path) -> Result<()> {
    if !grid.untrained || grid.untrained_predictions().is_some() {
        return Ok(());
    }
    let Some(first) = grid.cells.first() else {
        return Ok(());
    };
    let dir = grid.dir.join(UNTRAINED);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("config.toml");
    write_atomic(&config, &first.config)?;
    let cfg: toml::Value = toml::from_str(&first.config)?;
    let model = cfg["student"]["model"]
        .as_str()
        .context("the grid's config names no [student] model")?;
    tracing::info!("sweep: scoring the untrained {model} on the test split once");
    let status = run_eval(bin, &dir, &["--model", model])?;
    if status.code().is_none() {
        bail!(
            "scoring the untrained student was stopped by a signal; run the same command to resume"
        );
    }
    if !status.success() {
        tracing::warn!(
            "sweep: scoring the untrained student failed (see {}); the table goes without it",
            dir.join("log").display()
        );
    }
    Ok(())
}

pub fn load_grid(path: &Path) -> Result<Grid> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read grid {}", path.display()))?;
    let g: GridFile = toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let here = path.parent().unwrap_or(Path::new("."));
    let base_path = here.join(&g.base);
    let base_text = std::fs::read_to_string(&base_path).with_context(|| {
        format!(
            "{}: key `base`: cannot read {}",
            path.display(),
            base_path.display()
        )
    })?;
    let mut base: toml::Value =
        toml::from_str(&base_text).map_err(|e| anyhow!("{}: {e}", base_path.display()))?;
    let base_dir = match base_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::path::absolute(p)?,
        _ => std::env::current_dir()?,
    };
    rebase_paths(&mut base, &base_dir);
    if g.seeds.is_empty() {
        bail!("{}: key `seeds`: give at least one seed", path.display());
    }
    if g.variants.is_empty() {
        bail!("{}: no [variants.NAME] tables", path.display());
    }
    if let Some(b) = &g.baseline {
        if !g.variants.contains_key(b) {
            bail!("{}: key `baseline`: no variant `{b}`", path.display());
        }
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "grid".into());
    let dir = g
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&name));
    let mut configs = vec![];
    for (variant, over) in &g.variants {
        if variant.is_empty()
            || !variant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            bail!(
                "{}: variant `{variant}`: use letters, digits, '-', '_' or '.' (it names directories)",
                path.display()
            );
        }
        let mut cfg = base.clone();
        merge(&mut cfg, over);
        let text = toml::to_string(&cfg)?;
        // refuse a bad variant now, not hours into the grid
        crate::config::Config::parse(
            &text,
            Path::new(&format!("{}: variant {variant}", path.display())),
        )?;
        configs.push((variant.clone(), text));
    }
    for m in &g.eval_modes {
        if let Err(e) = m.parse::<mentor_methods::evaluate::InferenceMode>() {
            bail!("{}: key `eval_modes`: {e}", path.display());
        }
    }
    let position = |v: &str| configs.iter().position(|(name, _)| name == v);
    for (variant, source) in &g.teacher_from {
        let err = |m: String| anyhow!("{}: key `teacher_from.{variant}`: {m}", path.display());
        let (Some(vi), Some(si)) = (position(variant), position(source)) else {
            return Err(err(format!("no variant `{variant}` or `{source}`")));
        };
        if si >= vi {
            return Err(err(format!(
                "`{source}` must come before `{variant}` in the file (it runs first in each seed)"
            )));
        }
        if g.teacher_from.contains_key(source) {
            return Err(err(format!(
                "`{source}` itself starts from another variant's teacher run; name that one"
            )));
        }
        if teachers_of(&configs[vi].1)? != teachers_of(&configs[si].1)? {
            return Err(err(format!(
                "`{variant}` and `{source}` have different [teachers]"
            )));
        }
        let cfg = crate::config::Config::parse(&configs[vi].1, Path::new("grid cell"))?;
        if in_rounds(&cfg) {
            return Err(err(
                "a recipe in rounds asks the teacher about its own students: it cannot reuse another run"
                    .into(),
            ));
        }
    }
    if g.untrained && g.variants.contains_key(UNTRAINED) {
        bail!(
            "{}: a variant is named `{UNTRAINED}`, which `untrained = true` takes; rename it",
            path.display()
        );
    }
    let mut cells = vec![];
    for &seed in &g.seeds {
        for (variant, config) in &configs {
            cells.push(Cell {
                variant: variant.clone(),
                seed,
                dir: dir.join(format!("{variant}-s{seed}")),
                config: config.clone(),
                teacher_from: g.teacher_from.get(variant).cloned(),
            });
        }
    }
    if let Some(bad) = g
        .distill_args
        .iter()
        .find(|a| ["--run-dir", "--seed"].contains(&a.split('=').next().unwrap_or("")))
    {
        bail!(
            "{}: key `distill_args`: {bad} is the sweep's to set",
            path.display()
        );
    }
    Ok(Grid {
        dir,
        baseline: g.baseline,
        distill_args: g.distill_args,
        keep_checkpoints: g.keep_checkpoints,
        keep_students: g.keep_students,
        eval_modes: g.eval_modes,
        untrained: g.untrained,
        teacher_store: g.teacher_store,
        cells,
    })
}

impl Cell {
    pub fn done(&self) -> bool {
        self.dir.join("summary.json").is_file()
    }

    /// Whether this cell's student can be scored in `mode` (a label-only student has no `cot`,
    /// one without the self-evaluation task no `self-eval-vote`): its config with that mode
    /// passes the config's checks.
    fn can_score_in(&self, mode: &str) -> bool {
        crate::config::Config::parse(&self.config, Path::new("grid cell"))
            .is_ok_and(|c| c.check_mode(mode).is_ok())
    }

    /// The modes of `modes` this finished cell can be scored in and has no test predictions in
    /// yet (all of those when its summary cannot be read).
    pub fn missing_modes(&self, modes: &[String]) -> Vec<String> {
        let modes: Vec<String> = modes
            .iter()
            .filter(|m| self.can_score_in(m))
            .cloned()
            .collect();
        let modes = &modes[..];
        let summary: Option<serde_json::Value> =
            std::fs::read_to_string(self.dir.join("summary.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
        let Some(summary) = summary else {
            return modes.to_vec();
        };
        let scored = summary["eval_mode"].as_str().unwrap_or("?");
        let Some(preds) = summary["predictions"]
            .as_str()
            .and_then(|p| Path::new(p).file_name())
        else {
            return modes.to_vec();
        };
        let preds = self.dir.join("eval").join(preds);
        modes
            .iter()
            .filter(|m| {
                m.as_str() != scored
                    && !crate::compare::predictions_in_mode(&preds, scored, m).is_file()
            })
            .cloned()
            .collect()
    }

    /// Finished, and scored in every extra mode.
    fn complete(&self, modes: &[String]) -> bool {
        self.done() && self.missing_modes(modes).is_empty()
    }

    fn record(&self) -> CellRecord {
        std::fs::read_to_string(self.dir.join(CELL_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| CellRecord {
                variant: self.variant.clone(),
                seed: self.seed,
                ..Default::default()
            })
    }

    fn save_record(&self, r: &CellRecord) -> Result<()> {
        write_atomic(&self.dir.join(CELL_FILE), &serde_json::to_string_pretty(r)?)
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    mentor_model::load::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The last non-empty line of a cell's log (its latest progress line).
fn last_log_line(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("log")).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let line: String = line.chars().filter(|c| !c.is_control()).collect();
    Some(line.chars().take(120).collect())
}

use crate::progress::human_secs as human;

/// `mentor sweep --until`: the sweep stopped before a cell that would not have finished in time
/// (the cells before it are finished and tabled; the same command continues).
#[derive(Debug)]
pub struct Stopped(pub String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sweep stopped: {}; run the same command to continue",
            self.0
        )
    }
}

impl std::error::Error for Stopped {}

/// Why `cell` should not start when the sweep must end by `until` (unix seconds): the time is
/// up, or the cell would take longer than what is left. A cell's estimate is the mean time of its
/// variant's finished cells (of all finished cells before any of its variant has finished), less
/// what it has already spent; with no finished cell there is none, and it starts.
fn too_late(grid: &Grid, cell: &Cell, until: u64) -> Option<String> {
    let name = format!("{}-s{}", cell.variant, cell.seed);
    let left = until as f64 - unix_now() as f64;
    if left <= 0.0 {
        return Some(format!(
            "the time given by --until was up before cell {name}"
        ));
    }
    if cell.done() {
        return None; // only an extra mode left to score
    }
    let finished = |same_variant: bool| -> Vec<f64> {
        grid.cells
            .iter()
            .filter(|c| c.done() && (!same_variant || c.variant == cell.variant))
            .map(|c| c.record().seconds)
            .filter(|&s| s > 0.0)
            .collect()
    };
    let (times, whose) = match finished(true) {
        t if !t.is_empty() => (t, format!("{}'s finished cells", cell.variant)),
        _ => (finished(false), "the finished cells".to_string()),
    };
    if times.is_empty() {
        return None;
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let estimate = (mean - cell.record().seconds).max(0.0);
    (estimate > left).then(|| {
        format!(
            "cell {name} would take about {} (the mean of {} of {whose}), and {} is left before --until",
            human(estimate),
            times.len(),
            human(left)
        )
    })
}

/// Runs the grid at `path` (see `mentor sweep --help`): the cells not yet finished, one at a
/// time, from the grid's copy of the binary; then its results table. With `until` (unix
/// seconds), a cell that would not finish by then is not started: it returns [`Stopped`].
pub fn run(path: &Path, new_binary: bool, resamples: usize, until: Option<u64>) -> Result<Outcome> {
    let grid = load_grid(path)?;
    std::fs::create_dir_all(&grid.dir)
        .with_context(|| format!("cannot create {}", grid.dir.display()))?;
    // one sweep per grid directory at a time
    let lock = std::fs::File::create(grid.dir.join(".lock"))?;
    if lock.try_lock().is_err() {
        bail!(
            "another `mentor sweep` is running on {}; wait for it or stop it first",
            grid.dir.display()
        );
    }
    let bin = binary(&grid.dir, new_binary)?;
    let total = grid.cells.len();
    let todo: Vec<&Cell> = grid
        .cells
        .iter()
        .filter(|c| !c.complete(&grid.eval_modes))
        .collect();
    tracing::info!(
        "sweep {}: {total} cells, {} done, {} to run, binary {}",
        grid.dir.display(),
        total - todo.len(),
        todo.len(),
        bin.display()
    );
    score_untrained(&grid, &bin)?;
    // the bar counts this invocation's cells, so its rate and ETA are this machine's
    let bar = crate::progress::items_bar(todo.len() as u64, "sweep (cells left)");
    let mut failed = vec![];
    for cell in todo {
        if let Some(why) = until.and_then(|t| too_late(&grid, cell, t)) {
            bar.finish_and_clear();
            return Err(Stopped(why).into());
        }
        if cell.done() {
            // finished before, missing only an extra mode
            if !score_extra_modes(&grid, cell, &bin, &mut failed)? {
                continue;
            }
            drop_students_unless_kept(&grid, cell);
            bar.inc(1);
            if let Err(e) = write_results(&grid, resamples) {
                tracing::warn!("sweep: results table not written: {e:#}");
            }
            continue;
        }
        std::fs::create_dir_all(&cell.dir)?;
        if let Err(why) = share_teacher_run(&grid, cell) {
            tracing::warn!("sweep: cell {}-s{} not run: {why}", cell.variant, cell.seed);
            let mut rec = cell.record();
            rec.last_error = Some(why);
            cell.save_record(&rec)?;
            failed.push(format!("{}-s{}", cell.variant, cell.seed));
            continue;
        }
        let config = cell.dir.join("config.toml");
        write_atomic(&config, &cell.config)?;
        let mut rec = cell.record();
        let commit = binary_commit(&bin);
        if !rec.commits.contains(&commit) {
            rec.commits.push(commit);
        }
        rec.attempts += 1;
        rec.running_since = Some(unix_now());
        cell.save_record(&rec)?;
        bar.set_message(format!("{}-s{}", cell.variant, cell.seed));
        tracing::info!(
            "sweep: cell {}-s{} (log: {})",
            cell.variant,
            cell.seed,
            cell.dir.join("log").display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cell.dir.join("log"))?;
        let started = Instant::now();
        let mut cmd = Command::new(&bin);
        cmd.arg("distill")
            .arg(&config)
            .arg("--run-dir")
            .arg(&cell.dir)
            .arg("--seed")
            .arg(cell.seed.to_string())
            .args(&grid.distill_args)
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        let status = cmd
            .status()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        rec.seconds += started.elapsed().as_secs_f64();
        rec.running_since = None;
        if status.success() && cell.done() {
            rec.last_error = None;
            cell.save_record(&rec)?;
            if !grid.keep_checkpoints {
                match drop_checkpoints(&cell.dir)
                    .and_then(|a| Ok(a + drop_unchosen_rounds(&cell.dir)?))
                {
                    Ok(0) => {}
                    Ok(bytes) => tracing::info!(
                        "sweep: {}-s{} is done; removed its training checkpoints and unchosen \
                         rounds' students ({:.1} GB; its selected student stays; \
                         `keep_checkpoints = true` keeps them)",
                        cell.variant,
                        cell.seed,
                        bytes as f64 / 1e9
                    ),
                    Err(e) => tracing::warn!("sweep: checkpoints of a finished cell kept: {e:#}"),
                }
            }
            if !score_extra_modes(&grid, cell, &bin, &mut failed)? {
                continue;
            }
            drop_students_unless_kept(&grid, cell);
            bar.inc(1);
            if let Err(e) = write_results(&grid, resamples) {
                tracing::warn!("sweep: results table not written: {e:#}");
            }
            continue;
        }
        let why = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was stopped by a signal".into(),
        };
        rec.last_error = Some(format!("{why}; see {}", cell.dir.join("log").display()));
        cell.save_record(&rec)?;
        if status.code().is_none() {
            bail!(
                "cell {}-s{} {why}; run the same command to resume",
                cell.variant,
                cell.seed
            );
        }
        tracing::warn!(
            "sweep: cell {}-s{} {why}; going on with the others",
            cell.variant,
            cell.seed
        );
        failed.push(format!("{}-s{}", cell.variant, cell.seed));
    }
    bar.finish_and_clear();
    let results = write_results(&grid, resamples)?;
    if !failed.is_empty() {
        bail!(
            "{} cell(s) failed: {} (the lines above and their logs say why); rerun to retry them",
            failed.len(),
            failed.join(", ")
        );
    }
    let done = grid.cells.iter().filter(|c| c.done()).count();
    Ok(Outcome {
        human: format!(
            "sweep {}: {done}/{total} cells done\n{}",
            grid.dir.display(),
            results
                .as_ref()
                .map_or(String::new(), |(text, _)| text.clone())
        ),
        json: json!({
            "dir": grid.dir, "cells": total, "done": done,
            "results": results.map(|(_, j)| j),
        }),
    })
}

/// Scores a finished cell's student in each extra mode it lacks (`mentor eval --split test
/// --mode M`, output appended to the cell's log). Ok(false) when one failed (named in `failed`);
/// Err when one was stopped by a signal (the sweep is being stopped).
fn score_extra_modes(
    grid: &Grid,
    cell: &Cell,
    bin: &Path,
    failed: &mut Vec<String>,
) -> Result<bool> {
    let name = format!("{}-s{}", cell.variant, cell.seed);
    for mode in cell.missing_modes(&grid.eval_modes) {
        tracing::info!("sweep: {name}: scoring the test split in mode `{mode}`");
        let status = run_eval(bin, &cell.dir, &["--mode", &mode])?;
        if status.code().is_none() {
            bail!("cell {name}: scoring in mode `{mode}` was stopped by a signal; run the same command to resume");
        }
        if !status.success() {
            tracing::warn!(
                "sweep: {name}: scoring in mode `{mode}` failed; see {}",
                cell.dir.join("log").display()
            );
            failed.push(format!("{name} (mode {mode})"));
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs `bin eval DIR/config.toml --run-dir DIR --split test ARGS`, its output appended to
/// DIR/log; the child dies with the sweep.
fn run_eval(bin: &Path, dir: &Path, args: &[&str]) -> Result<std::process::ExitStatus> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("eval")
        .arg(dir.join("config.toml"))
        .arg("--run-dir")
        .arg(dir)
        .args(["--split", "test"])
        .args(args)
        .stdout(log.try_clone()?)
        .stderr(log);
    die_with_parent(&mut cmd);
    cmd.status()
        .with_context(|| format!("cannot start {}", bin.display()))
}

/// Removes the resumption checkpoints (`checkpoint/`, and the `.old` / `.tmp` a crash can leave)
/// under a finished cell's directory: a finished run never resumes, and at full fine-tuning each
/// holds the weights and the optimizer's two moments, ~1.6 GB for a 135M student — a grid of a
/// dozen cells would fill a laptop's disk. The selected students (`best/`) stay. Returns the
/// bytes freed.
pub fn drop_checkpoints(cell_dir: &Path) -> Result<u64> {
    // a training checkpoint is recognised by its state file, never by name alone
    remove_dirs_where(cell_dir, |path, _| {
        path.file_name().is_some_and(|n| {
            ["checkpoint", "checkpoint.old", "checkpoint.tmp"]
                .contains(&n.to_string_lossy().as_ref())
        }) && path.join("state.json").is_file()
    })
}

/// Removes every directory under `root` for which `matches(path, path relative to root)`
/// holds (not looking inside it), and returns the bytes freed.
fn remove_dirs_where(root: &Path, matches: impl Fn(&Path, &Path) -> bool) -> Result<u64> {
    let mut freed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            if matches(&path, rel) {
                freed += dir_bytes(&path);
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            } else {
                stack.push(path);
            }
        }
    }
    Ok(freed)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// With `keep_students = false`, removes a finished and fully scored cell's trained students.
fn drop_students_unless_kept(grid: &Grid, cell: &Cell) {
    if grid.keep_students {
        return;
    }
    match drop_students(&cell.dir) {
        Ok(0) => {}
        Ok(bytes) => tracing::info!(
            "sweep: {}-s{} is scored; removed its students' weights ({:.1} GB; keep_students = false)",
            cell.variant,
            cell.seed,
            bytes as f64 / 1e9
        ),
        Err(e) => tracing::warn!("sweep: students of a finished cell kept: {e:#}"),
    }
}

/// Removes every trained model (`best/`, with its weights) under a run directory's `student/`
/// directories (the run's and its baseline's); training logs stay. Returns the bytes freed.
pub fn drop_students(cell_dir: &Path) -> Result<u64> {
    // below the cell's own directory (whatever its ancestors are called)
    remove_dirs_where(cell_dir, |path, rel| {
        rel.components().any(|c| c.as_os_str() == "student")
            && path.file_name().is_some_and(|n| n == "best")
            && path.join("model.safetensors").is_file()
    })
}

/// Removes the students of a finished run in rounds that its summary did not choose
/// (`student/round-K/stage-N/best` for every K but `rounds.tested_round`; their training logs
/// stay): ELAD's rounds each keep a model, four of them a run. Returns the bytes freed.
pub fn drop_unchosen_rounds(cell_dir: &Path) -> Result<u64> {
    let summary: serde_json::Value = match std::fs::read_to_string(cell_dir.join("summary.json")) {
        Ok(t) => serde_json::from_str(&t)?,
        Err(_) => return Ok(0),
    };
    let Some(tested) = crate::rounds::tested_round_of(&summary) else {
        return Ok(0);
    };
    let keep = format!("round-{tested}");
    let mut freed = 0;
    let Ok(rounds) = std::fs::read_dir(cell_dir.join("student")) else {
        return Ok(0);
    };
    for round in rounds.flatten() {
        let name = round.file_name().to_string_lossy().to_string();
        if !name.starts_with("round-") || name == keep {
            continue;
        }
        for stage in std::fs::read_dir(round.path())?.flatten() {
            let best = stage.path().join("best");
            if best.join("model.safetensors").is_file() {
                freed += dir_bytes(&best);
                std::fs::remove_dir_all(&best)
                    .with_context(|| format!("cannot remove {}", best.display()))?;
            }
        }
    }
    Ok(freed)
}

/// Whether a recipe asks the teacher in rounds about its own students (ELAD, MAPD mining more
/// than once): such a run's teacher requests are its own.
fn in_rounds(cfg: &crate::config::Config) -> bool {
    match cfg.recipe.name {
        mentor_methods::recipe::RecipeName::Elad => true,
        mentor_methods::recipe::RecipeName::Mapd => cfg.recipe.mining_rounds > 1,
        _ => false,
    }
}

/// The seeds of a variant share one teacher run: a cell starting fresh gets a copy of the run
/// store of a finished seed of its variant, so every teacher request it makes (the same ones:
/// the teacher's seed does not follow the training seed) is answered from that store's ledger —
/// nothing is paid twice, and the teacher's samples are the same for every seed. A variant with
/// `teacher_from = SOURCE` starts from SOURCE's run instead (the same seed's, else any finished
/// one); the replies stored there are reused as they are, and only what SOURCE never asked is
/// asked. Err(why) when SOURCE has no finished cell yet: running now would pay for, and train
/// on, different teacher replies than the grid says.
fn share_teacher_run(grid: &Grid, cell: &Cell) -> Result<(), String> {
    let store = cell.dir.join(mentor_store::STORE_FILE);
    if store.exists() {
        return Ok(());
    }
    // a recipe in rounds keeps its finished rounds (and their students) in the store: each
    // seed runs its own
    let cfg = crate::config::Config::parse(&cell.config, Path::new("grid cell"))
        .map_err(|e| format!("{e:#}"))?;
    if in_rounds(&cfg) {
        return Ok(());
    }
    if let (None, Some(from)) = (&cell.teacher_from, &grid.teacher_store) {
        return start_from_store(from, cell);
    }
    let done = match &cell.teacher_from {
        None => grid
            .cells
            .iter()
            .find(|c| c.variant == cell.variant && c.seed != cell.seed && c.done()),
        Some(source) => {
            let of_source = |c: &&Cell| &c.variant == source && c.done();
            let found = grid
                .cells
                .iter()
                .filter(of_source)
                .min_by_key(|c| c.seed != cell.seed);
            if found.is_none() {
                return Err(format!(
                    "it starts from the teacher run of `{source}` (teacher_from), which has no finished cell yet"
                ));
            }
            found
        }
    };
    let Some(done) = done else {
        return Ok(());
    };
    // the finished cell's process has exited: its store and write-ahead log are at rest
    copy_store(&done.dir, &cell.dir)?;
    tracing::info!(
        "sweep: {}-s{} starts from the teacher run of {}-s{}",
        cell.variant,
        cell.seed,
        done.variant,
        done.seed
    );
    Ok(())
}

/// `teacher_store = FROM`: the cell starts from a copy of FROM's run store. FROM must be a
/// finished run (its `summary.json`: a run still writing would hand over a store in motion)
/// with the same `[teachers]` as the cell (else its replies answer other requests, or none).
fn start_from_store(from: &Path, cell: &Cell) -> Result<(), String> {
    let named = |m: &str| format!("teacher_store {}: {m}", from.display());
    if !from.join("summary.json").is_file() {
        return Err(named(
            "not a finished run (no summary.json); finish it, or copy it back from results/ first",
        ));
    }
    let teachers = |text: &str| teachers_of(text).map_err(|e| named(&e.to_string()));
    let theirs = std::fs::read_to_string(from.join("config.toml"))
        .map_err(|e| named(&format!("cannot read its config.toml: {e}")))?;
    if teachers(&theirs)? != teachers(&cell.config)? {
        return Err(named(&format!(
            "its [teachers] differ from cell {}-s{}'s: its replies would not answer this grid's requests",
            cell.variant, cell.seed
        )));
    }
    let store = from.join(mentor_store::STORE_FILE);
    if !store.is_file() {
        return Err(named(&format!(
            "no {} (a saved cell keeps it gzipped: gunzip -k it first)",
            mentor_store::STORE_FILE
        )));
    }
    std::fs::create_dir_all(&cell.dir)
        .map_err(|e| format!("cannot create {}: {e}", cell.dir.display()))?;
    copy_store(from, &cell.dir)?;
    tracing::info!(
        "sweep: {}-s{} starts from the teacher run of {}",
        cell.variant,
        cell.seed,
        from.display()
    );
    Ok(())
}

/// A config's `[teachers]` table (empty when it has none): two runs with equal tables ask the
/// same requests of the same teachers.
fn teachers_of(config: &str) -> Result<toml::Value, toml::de::Error> {
    let v: toml::Value = toml::from_str(config)?;
    Ok(v.get("teachers")
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default())))
}

/// Copies a finished run's store (and its write-ahead log, if any) into `to`.
fn copy_store(from: &Path, to: &Path) -> Result<(), String> {
    for ext in ["", "-wal"] {
        let src = from.join(format!("{}{ext}", mentor_store::STORE_FILE));
        if src.exists() {
            let dst = to.join(format!("{}{ext}", mentor_store::STORE_FILE));
            std::fs::copy(&src, &dst)
                .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// The finished cells' comparison, written to DIR/results.md and DIR/results.json; None when
/// fewer than two cells have finished.
fn write_results(grid: &Grid, resamples: usize) -> Result<Option<(String, serde_json::Value)>> {
    let done: Vec<PathBuf> = grid
        .untrained_predictions()
        .into_iter()
        .chain(
            grid.cells
                .iter()
                .filter(|c| c.done())
                .map(|c| c.dir.clone()),
        )
        .collect();
    if done.len() < 2 {
        return Ok(None);
    }
    let baseline = grid
        .baseline
        .as_deref()
        .filter(|b| grid.cells.iter().any(|c| c.done() && c.variant == *b));
    // a grid's variants may set their own inference modes (CoT distillation is scored in `cot`)
    let c = crate::compare::compare_runs(&done, None, baseline, resamples, 0, true, &[])?;
    let mut commits: Vec<String> = grid
        .cells
        .iter()
        .filter(|c| c.done())
        .flat_map(|c| c.record().commits)
        .collect();
    commits.sort();
    commits.dedup();
    let mut md = format!(
        "# {}\n\n{} of {} cells finished; code: {}{}\n\n",
        grid.dir.display(),
        grid.cells.iter().filter(|c| c.done()).count(),
        grid.cells.len(),
        commits.join(", "),
        if commits.len() > 1 {
            " (**cells ran with different code**)"
        } else {
            ""
        }
    );
    md += &c.render(true);
    // recipes in rounds: each variant's curve over its seeds, drawn beside the table
    let cells: Vec<(String, PathBuf)> = grid
        .cells
        .iter()
        .filter(|c| c.done())
        .map(|c| (c.variant.clone(), c.dir.clone()))
        .collect();
    if let Some(chart) = crate::report::variant_round_curves(&cells) {
        write_atomic(
            &grid.dir.join("curves.svg"),
            &mentor_report::svg_line_chart(&chart),
        )?;
        md += "\n**Validation accuracy against cumulative teacher tokens, per variant over its \
               seeds (mean; the band spans the lowest and highest seed)**\n\n![curves](curves.svg)\n";
    }
    let j = json!({ "commits": commits, "comparison": c });
    write_atomic(&grid.dir.join("results.md"), &md)?;
    write_atomic(
        &grid.dir.join("results.json"),
        &serde_json::to_string_pretty(&j)?,
    )?;
    Ok(Some((c.render(false), j)))
}

/// Each cell's state (done / running / partial / not started), time spent and an estimate of
/// what is left.
pub fn status(path: &Path) -> Result<Outcome> {
    let grid = &load_grid(path)?;
    // a sweep holds the lock while it runs; a stale `running_since` is a killed one
    let running = std::fs::File::open(grid.dir.join(".lock"))
        .map(|f| f.try_lock().is_err())
        .unwrap_or(false);
    // cells run in order: the running one is the first unfinished cell
    let current = grid.cells.iter().position(|c| !c.done());
    let mut rows = vec![];
    let mut cells_json = vec![];
    let (mut spent, mut done_secs, mut done_n, mut left_n) = (0.0, 0.0, 0usize, 0usize);
    for (i, c) in grid.cells.iter().enumerate() {
        let mut rec = c.record();
        let now_running = running && current == Some(i);
        if let Some(since) = rec.running_since.filter(|_| now_running) {
            rec.seconds += unix_now().saturating_sub(since) as f64;
        }
        spent += rec.seconds;
        let state = if c.done() {
            done_secs += rec.seconds;
            done_n += 1;
            let s: serde_json::Value = std::fs::read_to_string(c.dir.join("summary.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            let missing = c.missing_modes(&grid.eval_modes);
            let missing = if missing.is_empty() {
                String::new()
            } else {
                format!(" (not yet scored in {})", missing.join(", "))
            };
            match s["accuracy_after"]["accuracy"].as_f64() {
                Some(a) => format!("done: test {:.1}%{missing}", 100.0 * a),
                None => format!("done{missing}"),
            }
        } else if c.dir.join("log").is_file() {
            left_n += 1;
            let last = last_log_line(&c.dir).unwrap_or_default();
            match (&rec.last_error, now_running) {
                (_, true) => format!("running: {last}"),
                (Some(e), _) => format!("partial ({e}): {last}"),
                (None, _) => format!("partial (stopped): {last}"),
            }
        } else {
            left_n += 1;
            "not started".into()
        };
        rows.push(vec![
            format!("{}-s{}", c.variant, c.seed),
            human(rec.seconds),
            state.clone(),
        ]);
        cells_json.push(json!({"variant": c.variant, "seed": c.seed, "dir": c.dir, "state": state, "seconds": rec.seconds}));
    }
    let estimate = (done_n > 0).then(|| done_secs / done_n as f64 * left_n as f64);
    let untrained = grid.untrained.then(|| match grid.untrained_predictions() {
        Some(p) => format!("scored ({})", p.display()),
        None => "not yet scored (the sweep does it before its next cell)".into(),
    });
    let mut text = mentor_report::compare::render_table(&["cell", "time", "state"], &rows, false);
    if let Some(u) = &untrained {
        text += &format!("untrained student: {u}\n");
    }
    text += &format!(
        "\n{done_n}/{} done, {} spent{}\n",
        grid.cells.len(),
        human(spent),
        match estimate {
            Some(e) => format!(", about {} left (mean of the finished cells)", human(e)),
            None => String::new(),
        }
    );
    Ok(Outcome {
        human: text,
        json: json!({"dir": grid.dir, "cells": cells_json, "done": done_n, "seconds": spent, "estimate_left_seconds": estimate, "untrained": untrained}),
    })
}

/// The binary the grid's cells run: DIR/.bin/mentor, copied from this one at the first start
/// (or now, with `new_binary`).
fn binary(dir: &Path, new_binary: bool) -> Result<PathBuf> {
    let bin_dir = dir.join(".bin");
    let bin = bin_dir.join("mentor");
    let record = dir.join("sweep.json");
    let this = crate::build_info();
    let this_commit = this["commit"].as_str().unwrap_or("unknown").to_string();
    if bin.is_file() && !new_binary {
        if let Some(r) = std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str::<SweepRecord>(&t).ok())
        {
            if r.commit != this_commit {
                tracing::warn!(
                    "sweep: the grid runs with the binary copied at its start (commit {}); this mentor is commit {this_commit}. Pass --new-binary to switch (later cells would then differ in code).",
                    r.commit
                );
            }
        }
        return Ok(bin);
    }
    std::fs::create_dir_all(&bin_dir)?;
    let exe = std::env::current_exe().context("cannot find the running mentor binary")?;
    let tmp = bin_dir.join("mentor.tmp");
    std::fs::copy(&exe, &tmp)
        .with_context(|| format!("cannot copy {} to {}", exe.display(), tmp.display()))?;
    std::fs::rename(&tmp, &bin)?;
    write_atomic(
        &record,
        &serde_json::to_string_pretty(&SweepRecord {
            version: this["version"].as_str().unwrap_or("?").into(),
            commit: this_commit,
        })?,
    )?;
    Ok(bin)
}

/// The commit a grid's binary was built from (as its sweep.json recorded it).
fn binary_commit(bin: &Path) -> String {
    let record = bin
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("sweep.json"));
    record
        .and_then(|r| std::fs::read_to_string(r).ok())
        .and_then(|t| serde_json::from_str::<SweepRecord>(&t).ok())
        .map(|r| r.commit)
        .unwrap_or_else(|| "unknown".into())
}

/// A cell's process ends when the sweep does (Linux: the parent-death signal), so a killed
/// sweep leaves no run writing behind a relaunched one.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_override_the_base_key_by_key() {
        let mut base: toml::Value =
            toml::from_str("[recipe]\nname = \"standard\"\nalpha = 0.5\n[train]\nlr = 1e-4\n")
                .unwrap();
        let over: toml::Value = toml::from_str("[recipe]\nname = \"step-by-step\"\n").unwrap();
        merge(&mut base, &over);
        assert_eq!(base["recipe"]["name"].as_str(), Some("step-by-step"));
        assert_eq!(base["recipe"]["alpha"].as_float(), Some(0.5));
        assert_eq!(base["train"]["lr"].as_float(), Some(1e-4));
    }

    #[test]
    fn a_grid_runs_seed_by_seed_and_refuses_bad_variants_up_front() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("base.toml"),
            "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\n[recipe]\nname = \"standard\"\n",
        )
        .unwrap();
        let grid = d.path().join("g.toml");
        std::fs::write(
            &grid,
            "base = \"base.toml\"\nseeds = [0, 1]\nbaseline = \"a\"\n[variants.a]\n[variants.b]\ntrain = { lr = 1e-3 }\n",
        )
        .unwrap();
        let g = load_grid(&grid).unwrap();
        let names: Vec<String> = g
            .cells
            .iter()
            .map(|c| format!("{}-s{}", c.variant, c.seed))
            .collect();
        assert_eq!(names, ["a-s0", "b-s0", "a-s1", "b-s1"]);
        assert_eq!(g.dir, PathBuf::from("runs/g"));
        // the data path is absolute: the merged config lives in the cell's directory
        let cfg: toml::Value = toml::from_str(&g.cells[1].config).unwrap();
        let p = cfg["data"]["path"].as_str().unwrap();
        assert!(
            Path::new(p).is_absolute() && p.ends_with("toy.jsonl"),
            "{p}"
        );
        assert_eq!(cfg["train"]["lr"].as_float(), Some(1e-3));
        std::fs::write(
            &grid,
            "base = \"base.toml\"\nseeds = [0]\n[variants.a]\nrecipe = { alpha = 3.0 }\n",
        )
        .unwrap();
        let err = load_grid(&grid).err().unwrap().to_string();
        assert!(
            err.contains("variant a") && err.contains("recipe.alpha"),
            "{err}"
        );
        std::fs::write(
            &grid,
            "base = \"base.toml\"\nseeds = [0]\nbaseline = \"z\"\n[variants.a]\n",
        )
        .unwrap();
        let err = load_grid(&grid).err().unwrap().to_string();
        assert!(err.contains("no variant `z`"), "{err}");
    }

    #[test]
    fn a_finished_cell_loses_its_checkpoints_and_keeps_its_student() {
        let d = tempfile::tempdir().unwrap();
        let stage = d.path().join("student/stage-0");
        let baseline = d.path().join("baseline-standard/student/stage-0");
        for dir in [
            stage.join("checkpoint"),
            stage.join("checkpoint.old"),
            baseline.join("checkpoint"),
        ] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("state.json"), "{}").unwrap();
            std::fs::write(dir.join("optimizer.safetensors"), vec![0u8; 1000]).unwrap();
        }
        for dir in [stage.join("best"), baseline.join("best")] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("model.safetensors"), vec![0u8; 10]).unwrap();
        }
        // a directory named like one but without a state file is not ours to remove
        let other = d.path().join("data/checkpoint");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "x").unwrap();
        let freed = drop_checkpoints(d.path()).unwrap();
        assert_eq!(freed, 3 * 1002);
        assert!(!stage.join("checkpoint").exists());
        assert!(!stage.join("checkpoint.old").exists());
        assert!(!baseline.join("checkpoint").exists());
        assert!(stage.join("best/model.safetensors").is_file());
        assert!(baseline.join("best/model.safetensors").is_file());
        assert!(other.join("notes.txt").is_file());
        assert_eq!(drop_checkpoints(d.path()).unwrap(), 0);
    }

    #[test]
    fn dropping_students_removes_every_model_and_keeps_the_logs() {
        let d = tempfile::tempdir().unwrap();
        let models = [
            "student/stage-0/best",
            "student/stage-1/best",
            "baseline-standard/student/stage-0/best",
        ];
        for m in models {
            let b = d.path().join(m);
            std::fs::create_dir_all(&b).unwrap();
            std::fs::write(b.join("model.safetensors"), vec![0u8; 10]).unwrap();
            std::fs::write(b.parent().unwrap().join("log.jsonl"), "{}").unwrap();
        }
        // a directory named `best` outside any student/ is not a model of this run
        std::fs::create_dir_all(d.path().join("eval/best")).unwrap();
        std::fs::write(d.path().join("eval/best/model.safetensors"), "x").unwrap();
        assert_eq!(drop_students(d.path()).unwrap(), 30);
        for m in models {
            assert!(!d.path().join(m).exists(), "{m}");
            assert!(d
                .path()
                .join(m)
                .parent()
                .unwrap()
                .join("log.jsonl")
                .is_file());
        }
        assert!(d.path().join("eval/best/model.safetensors").is_file());
    }

    #[test]
    fn a_finished_run_in_rounds_keeps_only_its_chosen_rounds_student() {
        let d = tempfile::tempdir().unwrap();
        for round in 0..3 {
            let stage = d.path().join(format!("student/round-{round}/stage-0"));
            std::fs::create_dir_all(stage.join("best")).unwrap();
            std::fs::write(stage.join("best/model.safetensors"), vec![0u8; 100]).unwrap();
            std::fs::write(stage.join("log.jsonl"), "{}").unwrap();
        }
        // not finished: nothing is removed
        assert_eq!(drop_unchosen_rounds(d.path()).unwrap(), 0);
        std::fs::write(
            d.path().join("summary.json"),
            r#"{"rounds": {"best_round": 1}}"#,
        )
        .unwrap();
        assert_eq!(drop_unchosen_rounds(d.path()).unwrap(), 200);
        let has = |r: u32| {
            d.path()
                .join(format!("student/round-{r}/stage-0/best/model.safetensors"))
                .is_file()
        };
        assert!(!has(0) && has(1) && !has(2));
        assert!(d.path().join("student/round-0/stage-0/log.jsonl").is_file());
        assert_eq!(
            crate::models::run_student(d.path()).unwrap(),
            d.path().join("student/round-1/stage-0/best")
        );
        // a run that scored its last round (`tested_round = "last"`) keeps that one, not the
        // best on validation
        let d = tempfile::tempdir().unwrap();
        for round in 0..3 {
            let best = d.path().join(format!("student/round-{round}/stage-0/best"));
            std::fs::create_dir_all(&best).unwrap();
            std::fs::write(best.join("model.safetensors"), vec![0u8; 100]).unwrap();
        }
        std::fs::write(
            d.path().join("summary.json"),
            r#"{"rounds": {"best_round": 0, "tested_round": 2}}"#,
        )
        .unwrap();
        assert_eq!(drop_unchosen_rounds(d.path()).unwrap(), 200);
        assert_eq!(
            crate::models::run_student(d.path()).unwrap(),
            d.path().join("student/round-2/stage-0/best")
        );
    }

    /// `teacher_store`: a follow-up grid's cells start from another grid's finished run — not
    /// from one still running, nor from one whose teachers differ; a variant naming its own
    /// `teacher_from` keeps it.
    #[test]
    fn a_follow_up_grid_starts_from_another_grids_finished_run() {
        let d = tempfile::tempdir().unwrap();
        let base = "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\n[teachers.t]\nkind = \"replay\"\n[recipe]\nname = \"standard\"\n";
        std::fs::write(d.path().join("base.toml"), base).unwrap();
        let parent = d.path().join("parent/text-s0");
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::write(
            parent.join(mentor_store::STORE_FILE),
            "the parent's replies",
        )
        .unwrap();
        std::fs::write(parent.join("config.toml"), base).unwrap();
        let grid = d.path().join("g.toml");
        std::fs::write(
            &grid,
            format!(
                "base = \"base.toml\"\nseeds = [0, 1]\ndir = \"{}\"\nteacher_store = \"{}\"\nteacher_from = {{ b = \"a\" }}\n[variants.a]\ntrain = {{ lr = 1e-3 }}\n[variants.b]\n",
                d.path().join("runs").display(),
                parent.display()
            ),
        )
        .unwrap();
        let g = load_grid(&grid).unwrap();
        let cell = |name: &str| {
            g.cells
                .iter()
                .find(|c| format!("{}-s{}", c.variant, c.seed) == name)
                .unwrap()
        };
        let store_of = |name: &str| {
            std::fs::read_to_string(cell(name).dir.join(mentor_store::STORE_FILE)).ok()
        };
        // the parent is still running (no summary.json): nothing is copied
        let err = share_teacher_run(&g, cell("a-s1")).unwrap_err();
        assert!(err.contains("not a finished run"), "{err}");
        assert_eq!(store_of("a-s1"), None);
        std::fs::write(parent.join("summary.json"), "{}").unwrap();
        // finished, but asked of other teachers: refused by name
        std::fs::write(
            parent.join("config.toml"),
            base.replace("kind = \"replay\"", "kind = \"local\""),
        )
        .unwrap();
        let err = share_teacher_run(&g, cell("a-s1")).unwrap_err();
        assert!(
            err.contains("[teachers] differ") && err.contains("a-s1"),
            "{err}"
        );
        std::fs::write(parent.join("config.toml"), base).unwrap();
        // every seed of a starts from the parent, not from a's other seed
        for name in ["a-s1", "a-s0"] {
            share_teacher_run(&g, cell(name)).unwrap();
            assert_eq!(store_of(name).as_deref(), Some("the parent's replies"));
        }
        // b names a, as before: it waits for a finished cell of a, then starts from it
        let a0 = &cell("a-s0").dir;
        std::fs::write(a0.join(mentor_store::STORE_FILE), "a-s0's store").unwrap();
        assert!(share_teacher_run(&g, cell("b-s0")).is_err());
        std::fs::write(a0.join("summary.json"), "{}").unwrap();
        std::fs::create_dir_all(&cell("b-s0").dir).unwrap();
        share_teacher_run(&g, cell("b-s0")).unwrap();
        assert_eq!(store_of("b-s0").as_deref(), Some("a-s0's store"));
    }

    #[test]
    fn a_variant_starts_from_the_teacher_run_it_names_and_waits_for_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("base.toml"),
            "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\n[teachers.t]\nkind = \"replay\"\n[recipe]\nname = \"standard\"\n",
        )
        .unwrap();
        let grid = d.path().join("g.toml");
        let write = |extra: &str| {
            std::fs::write(
                &grid,
                format!("base = \"base.toml\"\nseeds = [0, 1]\ndir = \"{}\"\n{extra}\n[variants.big]\n[variants.small]\ntrain = {{ lr = 1e-3 }}\n[variants.other]\nteachers.u = {{ kind = \"replay\" }}\n",
                    d.path().join("runs").display()),
            )
            .unwrap();
        };
        for (extra, says) in [
            ("teacher_from = { big = \"small\" }", "must come before"),
            ("teacher_from = { small = \"nope\" }", "no variant"),
            ("teacher_from = { other = \"big\" }", "different [teachers]"),
            (
                "teacher_from = { small = \"big\", other = \"small\" }",
                "itself starts from",
            ),
        ] {
            write(extra);
            let err = format!("{:#}", load_grid(&grid).err().unwrap());
            assert!(err.contains(says), "{extra}: {err}");
        }
        write("teacher_from = { small = \"big\" }");
        let g = load_grid(&grid).unwrap();
        let cell = |name: &str| {
            g.cells
                .iter()
                .find(|c| format!("{}-s{}", c.variant, c.seed) == name)
                .unwrap()
        };
        // the source has not finished: the dependent cell must not run on replies of its own
        let err = share_teacher_run(&g, cell("small-s1")).unwrap_err();
        assert!(err.contains("`big`"), "{err}");
        // big-s1 finished (big-s0 did not): small-s0 starts from it, its own seed's missing
        let big1 = &cell("big-s1").dir;
        std::fs::create_dir_all(big1).unwrap();
        std::fs::write(big1.join("summary.json"), "{}").unwrap();
        std::fs::write(big1.join(mentor_store::STORE_FILE), "big-s1's store").unwrap();
        let small0 = &cell("small-s0").dir;
        std::fs::create_dir_all(small0).unwrap();
        share_teacher_run(&g, cell("small-s0")).unwrap();
        let copied = std::fs::read_to_string(small0.join(mentor_store::STORE_FILE)).unwrap();
        assert_eq!(copied, "big-s1's store");
        // with big-s0 finished too, small-s... of the same seed prefers it
        let big0 = &cell("big-s0").dir;
        std::fs::create_dir_all(big0).unwrap();
        std::fs::write(big0.join("summary.json"), "{}").unwrap();
        std::fs::write(big0.join(mentor_store::STORE_FILE), "big-s0's store").unwrap();
        std::fs::remove_file(small0.join(mentor_store::STORE_FILE)).unwrap();
        share_teacher_run(&g, cell("small-s0")).unwrap();
        let copied = std::fs::read_to_string(small0.join(mentor_store::STORE_FILE)).unwrap();
        assert_eq!(copied, "big-s0's store");
        // a store already there is never replaced (the cell is resuming)
        std::fs::write(small0.join(mentor_store::STORE_FILE), "its own").unwrap();
        share_teacher_run(&g, cell("small-s0")).unwrap();
        let kept = std::fs::read_to_string(small0.join(mentor_store::STORE_FILE)).unwrap();
        assert_eq!(kept, "its own");
    }

    /// Every shipped grid loads: its base parses and every variant is a valid config.
    #[test]
    fn every_shipped_grid_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/grids");
        let mut n = 0;
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .chain(std::fs::read_dir(dir.join("gpu")).unwrap());
        for e in files {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            if text.contains("[variants.") {
                let g = load_grid(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                assert!(g.cells.len() >= 2);
                n += 1;
            }
        }
        assert!(n >= 7, "{n} grids");
    }
}
