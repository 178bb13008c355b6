//! `mentor sweep` and `mentor compare` end to end on a tiny grid (two variants × two seeds of a
//! tiny random student on toy sums): a sweep killed with SIGKILL twice and relaunched ends with
//! the same table as one that ran straight through, and compare refuses runs it cannot pair.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BASE: &str = "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\n\n\
    [student]\nmodel = \"student\"\n\n[recipe]\nname = \"standard\"\n\n\
    [train]\nepochs = 6\nbatch_size = 4\nmax_len = 128\nsave_every = 1\neval_every = 4\n\n\
    [eval]\nmax_new_tokens = 6\nvalid_limit = 3\nbatch = 8\n";

const GRID: &str = "base = \"base.toml\"\nseeds = [0, 1]\ndir = \"grid\"\nbaseline = \"slow\"\n\n\
    [variants.slow]\ntrain = { lr = 1e-4 }\n\n[variants.fast]\ntrain = { lr = 3e-3 }\n";

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 256, 3);
    common::write_sums_dataset(d.path(), 40);
    std::fs::write(d.path().join("base.toml"), BASE).unwrap();
    std::fs::write(d.path().join("grid.toml"), GRID).unwrap();
    d
}

fn sweep(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mentor"));
    c.args(["sweep", "grid.toml", "--resamples", "500", "--json"])
        .current_dir(dir)
        .env("MENTOR_LOG", "warn")
        .env("RAYON_NUM_THREADS", "1")
        .env("CANDLE_NUM_THREADS", "1");
    c
}

fn run_to_end(dir: &Path) -> serde_json::Value {
    let out = sweep(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().unwrap()).unwrap()
}

/// The parts of the results that must not depend on how the sweep was interrupted.
fn table(dir: &Path) -> serde_json::Value {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grid/results.json")).unwrap())
            .unwrap();
    let c = &j["comparison"];
    // what each run cost (wall time, memory) differs between any two runs of it
    let mut runs = c["runs"].clone();
    for r in runs.as_array_mut().unwrap() {
        assert!(r["cost"]["wall_s"].as_f64().unwrap() > 0.0, "{r}");
        r.as_object_mut().unwrap().remove("cost");
    }
    serde_json::json!({ "runs": runs, "variants": c["variants"], "pairs": c["pairs"] })
}

#[test]
fn a_sweep_killed_twice_ends_with_the_same_table_as_one_run_straight() {
    let straight = setup();
    let t0 = Instant::now();
    let j = run_to_end(straight.path());
    let whole = t0.elapsed();
    assert_eq!(
        (j["cells"].as_u64(), j["done"].as_u64()),
        (Some(4), Some(4)),
        "{j}"
    );
    // cells ran seed by seed, in the grid's order, each with its seed
    for (cell, seed) in [
        ("slow-s0", 0),
        ("fast-s0", 0),
        ("slow-s1", 1),
        ("fast-s1", 1),
    ] {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(straight.path().join("grid").join(cell).join("summary.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(s["seed"], seed, "{cell}");
        assert!(s["mentor"]["commit"].is_string());
    }
    let md = std::fs::read_to_string(straight.path().join("grid/results.md")).unwrap();
    assert!(
        md.contains("| fast − slow |") && md.contains("4 of 4 cells finished"),
        "{md}"
    );

    let killed = setup();
    let grid = killed.path().join("grid");
    // first kill: mid-training of the first cell, once it has written a checkpoint; second: in
    // the first cell of seed 1, after seed 0's cells finished
    let kill_points = [
        grid.join("slow-s0/student/stage-0/checkpoint"),
        grid.join("slow-s1/log"),
    ];
    for at in &kill_points {
        let mut child = sweep(killed.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + whole * 4 + Duration::from_secs(30);
        while !at.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(at.exists(), "{} never appeared", at.display());
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before the kill"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // the cell that was running dies with the sweep: nothing holds the grid's lock
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(!grid.join("slow-s1/summary.json").exists());
    let status = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["sweep", "grid.toml", "--status"])
        .current_dir(killed.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("slow-s0") && status.contains("/4 done"),
        "{status}"
    );
    let j = run_to_end(killed.path());
    assert_eq!(j["done"].as_u64(), Some(4), "{j}");
    assert_eq!(table(killed.path()), table(straight.path()));
}

#[test]
fn compare_refuses_runs_scored_on_different_questions_and_pairs_the_rest() {
    let d = setup();
    run_to_end(d.path());
    let grid = d.path().join("grid");
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args([
            "compare",
            "slow-s0",
            "fast-s0",
            "slow-s1",
            "fast-s1",
            "--markdown",
        ])
        .current_dir(&grid)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| fast − slow | 2 "), "{text}");
    // grouping by a config key: both variants share recipe.name, so every run is one variant
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args([
            "compare",
            "slow-s0",
            "fast-s0",
            "--group-by",
            "train.lr",
            "--json",
        ])
        .current_dir(&grid)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["variants"][0]["variant"], "0.0001", "{j}");
    // a predictions file stands for a run (the untrained student's, say): named after its run
    // directory, no seed, so it pairs with each seed of the other variant
    let preds = std::fs::read_dir(grid.join("slow-s0/eval"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .arg("compare")
        .arg(&preds)
        .args(["fast-s0", "fast-s1", "--json"])
        .current_dir(&grid)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file_j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(file_j["runs"][0]["name"], "slow-s0", "{file_j}");
    assert_eq!(
        file_j["pairs"][0]["per_seed"].as_array().unwrap().len(),
        2,
        "{file_j}"
    );
    // each validation is a plain line in the cell's log (no terminal: no bar to print above)
    let cell_log = std::fs::read_to_string(grid.join("slow-s0/log")).unwrap();
    assert!(
        cell_log.contains("step 4: valid loss") && cell_log.contains("chars (median)"),
        "{cell_log}"
    );
    // two checkpoints of one run, compared on the validation questions from their answers
    let valid = grid.join("slow-s0/student/stage-0/valid");
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .arg("compare")
        .args([valid.join("step-4.jsonl"), valid.join("step-8.jsonl")])
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(steps["pairs"][0]["b"], "step-8", "{steps}");
    assert_eq!(steps["n"], 3, "valid_limit = 3: {steps}");
    // each run's validation curve, read from its training log, with the step it kept
    let log = std::fs::read_to_string(grid.join("slow-s0/student/stage-0/log.jsonl")).unwrap();
    let evals = log
        .lines()
        .filter(|l| l.contains("\"kind\":\"eval\""))
        .count();
    let curve = j["runs"][0]["valid_curve"].as_array().unwrap();
    assert!(evals > 0 && curve.len() == evals, "{evals} evals: {j}");
    let kept = j["runs"][0]["best_step"].as_u64().unwrap();
    assert!(curve.iter().any(|p| p[0].as_u64() == Some(kept)), "{j}");

    // the report of one run shows the paired comparison with the others given
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["report", "slow-s0", "--compare", "fast-s0", "--json"])
        .current_dir(&grid)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(grid.join("slow-s0/report.html")).unwrap();
    assert!(
        html.contains("Compared with other runs") && html.contains("fast − slow"),
        "{html}"
    );

    // variants scored in different inference modes: refused unless asked, then each run's
    // mode is shown; the seeds of one variant must still share theirs
    let summary = grid.join("fast-s0/summary.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    j["eval_mode"] = serde_json::json!("cot");
    std::fs::write(&summary, j.to_string()).unwrap();
    let compare = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mentor"))
            .arg("compare")
            .args(args)
            .current_dir(&grid)
            .output()
            .unwrap()
    };
    let out = compare(&["slow-s0", "fast-s0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--across-modes"));
    let out = compare(&["slow-s0", "fast-s0", "--across-modes", "--markdown"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| mode") && text.contains("| cot"), "{text}");
    let out = compare(&["slow-s0", "fast-s0", "slow-s1", "fast-s1", "--across-modes"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("of variant `fast`") && err.contains("different inference modes"),
        "{err}"
    );

    // a run scored on fewer questions is refused, naming both runs
    let preds = grid.join("fast-s1/eval");
    let file = std::fs::read_dir(&preds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("best"))
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let fewer: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, fewer).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["compare", "slow-s0", "fast-s1"])
        .current_dir(&grid)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fast-s1") && err.contains("slow-s0") && err.contains("same test questions"),
        "{err}"
    );
}

/// The seeds of a variant share one teacher run: a step-by-step grid over two seeds sends the
/// teacher each train question once, and both seeds train on the same rationales.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_share_one_teacher_run() {
    use mentor_teacher::loopback::{LoopbackConfig, LoopbackServer};
    let server = LoopbackServer::start(LoopbackConfig {
        answer: std::sync::Arc::new(|p: &str| {
            let n: Vec<i64> = p
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|s| s.parse().ok())
                .take(2)
                .collect();
            format!(
                "{} plus {} is {}. The answer is {}.",
                n[0],
                n[1],
                n[0] + n[1],
                n[0] + n[1]
            )
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = setup();
    std::fs::write(
        d.path().join("base.toml"),
        BASE.replace(
            "[recipe]\nname = \"standard\"\n",
            &format!(
                "[teachers.t]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"t\"\nmax_in_flight = 2\n\n\
                 [recipe]\nname = \"step-by-step\"\n",
                server.base_url
            ),
        ),
    )
    .unwrap();
    std::fs::write(
        d.path().join("grid.toml"),
        "base = \"base.toml\"\nseeds = [0, 1]\ndir = \"grid\"\n[variants.sbs]\n",
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || run_to_end(&dir))
        .await
        .unwrap();
    assert_eq!(j["done"].as_u64(), Some(2), "{j}");
    // 40 questions, 32 train: one request each, whatever the number of seeds
    assert_eq!(
        server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        32
    );
    let summary = |cell: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(d.path().join("grid").join(cell).join("summary.json"))
                .unwrap(),
        )
        .unwrap()
    };
    let (s0, s1) = (summary("sbs-s0"), summary("sbs-s1"));
    assert_eq!(s0["training_set"], s1["training_set"]);
    assert_eq!(
        (s0["seed"].as_u64(), s1["seed"].as_u64()),
        (Some(0), Some(1))
    );
}

/// `teacher_from`: a variant asking a subset of another's teacher requests starts from its run
/// store and asks nothing; `eval_modes`: every finished cell is also scored in the extra modes,
/// which `mentor compare --mode` reads; a finished cell keeps its chosen student, not its
/// training checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_reuses_anothers_teacher_run_and_cells_are_scored_in_extra_modes() {
    use mentor_teacher::loopback::{LoopbackConfig, LoopbackServer};
    let server = LoopbackServer::start(LoopbackConfig {
        answer: std::sync::Arc::new(|p: &str| {
            let n: Vec<i64> = p
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|s| s.parse().ok())
                .take(2)
                .collect();
            format!(
                "{} plus {} is {}. The answer is {}.",
                n[0],
                n[1],
                n[0] + n[1],
                n[0] + n[1]
            )
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = setup();
    std::fs::write(
        d.path().join("base.toml"),
        BASE.replace(
            "[recipe]\nname = \"standard\"\n",
            &format!(
                "[teachers.t]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"t\"\nmax_in_flight = 2\n\n\
                 [recipe]\nname = \"minds-mirror\"\nevals_per_cot = 0\n",
                server.base_url
            ),
        )
        .replace("[eval]\n", "[eval]\nsamples = 2\n"),
    )
    .unwrap();
    std::fs::write(
        d.path().join("grid.toml"),
        "base = \"base.toml\"\nseeds = [0]\ndir = \"grid\"\nbaseline = \"one-cot\"\n\
         eval_modes = [\"vote\", \"label\"]\nteacher_from = { one-cot = \"k-cots\" }\n\
         [variants.k-cots]\nrecipe = { cots_per_question = 2 }\n\
         [variants.one-cot]\nrecipe = { cots_per_question = 1 }\n",
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || run_to_end(&dir))
        .await
        .unwrap();
    assert_eq!(j["done"].as_u64(), Some(2), "{j}");
    // 32 train questions × 2 chains of thought, asked once: the one-CoT cell asked nothing
    assert_eq!(
        server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        64
    );
    let grid = d.path().join("grid");
    for cell in ["k-cots-s0", "one-cot-s0"] {
        let eval: Vec<String> = std::fs::read_dir(grid.join(cell).join("eval"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            eval.iter().any(|f| f.ends_with(".test.vote.jsonl")),
            "{cell}: {eval:?}"
        );
        let stage = std::fs::read_dir(grid.join(cell).join("student"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("best").is_dir())
            .unwrap_or_else(|| panic!("{cell}: no chosen student"));
        assert!(
            !stage.join("checkpoint").exists(),
            "{cell}: checkpoint kept"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(grid.join("one-cot-s0/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["eval_mode"], "cot");
    let compare = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mentor"))
            .args(["compare", "k-cots-s0", "one-cot-s0", "--markdown"])
            .args(extra)
            .current_dir(&grid)
            .output()
            .unwrap()
    };
    let out = compare(&["--mode", "vote"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("n = 4, mode vote;"), "{text}");
    // a mode these students never learnt says why; one not scored yet names the command
    let out = compare(&["--mode", "self-eval-vote"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be scored in mode `self-eval-vote`") && err.contains("eval.mode"),
        "{err}"
    );
    let out = compare(&["--mode", "cot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // both modes at once: each student against itself in `cot`, one run alone included
    let out = compare(&["--mode", "cot,vote", "--baseline", "@cot"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pair in ["| k-cots@vote − k-cots@cot", "| one-cot@vote − one-cot@cot"] {
        assert!(text.contains(pair), "{pair}: {text}");
    }
    assert!(!text.contains("one-cot@vote − k-cots@cot"), "{text}");
    let alone = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["compare", "one-cot-s0", "--mode", "cot,vote"])
        .current_dir(&grid)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&alone.stdout);
    assert!(text.contains("one-cot@vote − one-cot@cot"), "{text}");
    let alone = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["compare", "one-cot-s0"])
        .current_dir(&grid)
        .output()
        .unwrap();
    assert!(
        !alone.status.success(),
        "one run in one mode is no comparison"
    );
    for f in std::fs::read_dir(grid.join("k-cots-s0/eval")).unwrap() {
        let f = f.unwrap().path();
        if f.to_string_lossy().ends_with(".test.vote.jsonl") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let out = compare(&["--mode", "vote"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--mode vote") && err.contains("mentor eval"),
        "{err}"
    );
    // `label` is no mode a CoT-only student can be scored in: skipped, not failed
    for cell in ["k-cots-s0", "one-cot-s0"] {
        let eval = std::fs::read_dir(grid.join(cell).join("eval")).unwrap();
        assert!(!eval
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .any(|f| f.ends_with(".test.label.jsonl") && f.contains("best")));
    }
    // a second sweep scores the mode removed above again, and asks the teacher nothing
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || run_to_end(&dir))
        .await
        .unwrap();
    assert_eq!(j["done"].as_u64(), Some(2), "{j}");
    assert_eq!(
        server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        64
    );
    let vote_again = std::fs::read_dir(grid.join("k-cots-s0/eval"))
        .unwrap()
        .any(|f| {
            f.unwrap()
                .path()
                .to_string_lossy()
                .ends_with(".test.vote.jsonl")
        });
    assert!(vote_again);
}

#[test]
fn a_grid_scores_the_untrained_student_once_and_pairs_it_with_every_seed() {
    let d = setup();
    std::fs::write(
        d.path().join("grid.toml"),
        GRID.replace("seeds = [0, 1]", "seeds = [0, 1]\nuntrained = true")
            .replace("[variants.fast]\ntrain = { lr = 3e-3 }\n", ""),
    )
    .unwrap();
    run_to_end(d.path());
    let eval = d.path().join("grid/untrained/eval");
    let files: Vec<_> = std::fs::read_dir(&eval).unwrap().collect();
    assert_eq!(files.len(), 1, "one mode, one predictions file");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("grid/results.json")).unwrap())
            .unwrap();
    let c = &j["comparison"];
    assert_eq!(c["runs"][0]["name"], "untrained", "{j}");
    assert!(c["runs"][0]["seed"].is_null());
    // the baseline `slow` against the untrained student, once per seed
    let pair = &c["pairs"][0];
    assert_eq!(
        (pair["a"].as_str(), pair["b"].as_str()),
        (Some("slow"), Some("untrained"))
    );
    assert_eq!(pair["per_seed"].as_array().unwrap().len(), 2, "{pair}");
    let md = std::fs::read_to_string(d.path().join("grid/results.md")).unwrap();
    assert!(md.contains("2 of 2 cells finished"), "{md}");
    // a rerun does not score it again
    let before = std::fs::metadata(eval.join(files[0].as_ref().unwrap().file_name()))
        .unwrap()
        .modified()
        .unwrap();
    run_to_end(d.path());
    let log = std::fs::read_to_string(d.path().join("grid/untrained/log")).unwrap();
    assert!(!log.is_empty());
    let after = std::fs::metadata(eval.join(files[0].as_ref().unwrap().file_name()))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

/// `--until`: a cell that would not finish in time is not started (a killed cell loses its work
/// when its run directory does not outlive the window); the sweep says why and exits with 75.
#[test]
fn a_sweep_with_until_starts_no_cell_that_would_not_finish_in_time() {
    let d = setup();
    std::fs::write(
        d.path().join("grid.toml"),
        "base = \"base.toml\"\nseeds = [0, 1]\ndir = \"grid\"\n\n[variants.slow]\ntrain = { lr = 1e-4 }\n",
    )
    .unwrap();
    let grid = d.path().join("grid");
    let until = |when: &str| {
        let out = sweep(d.path()).args(["--until", when]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // the time is up: nothing starts
    let (code, err) = until("+0s");
    assert_eq!(code, Some(75), "{err}");
    assert!(err.contains("was up before cell slow-s0"), "{err}");
    assert!(!grid.join("slow-s0/log").exists());
    // time enough: with no finished cell there is no estimate, then each takes seconds
    let (code, err) = until("+1h");
    assert_eq!(code, Some(0), "{err}");
    assert!(grid.join("slow-s1/summary.json").exists());
    // slow-s0 took two hours (as its record says), slow-s1 must run again: it is not started
    std::fs::remove_file(grid.join("slow-s1/summary.json")).unwrap();
    let record = grid.join("slow-s0/cell.json");
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let took = rec["seconds"].clone();
    rec["seconds"] = 7200.0.into();
    std::fs::write(&record, rec.to_string()).unwrap();
    let (code, err) = until("+1h");
    assert_eq!(code, Some(75), "{err}");
    assert!(
        err.contains("cell slow-s1 would take about") && err.contains("slow's finished cells"),
        "{err}"
    );
    assert!(!grid.join("slow-s1/summary.json").exists());
    // as it really took, it fits: the same command finishes the grid
    rec["seconds"] = took;
    std::fs::write(&record, rec.to_string()).unwrap();
    let (code, err) = until("+1h");
    assert_eq!(code, Some(0), "{err}");
    assert!(grid.join("slow-s1/summary.json").exists());
}
