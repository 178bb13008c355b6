//! The `mentor` binary as a user runs it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn mentor(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(args)
        .current_dir(cwd)
        .env("MENTOR_LOG", "warn")
        .output()
        .expect("mentor runs")
}

/// The single JSON line `--json` promises on stdout.
fn json_line(o: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "--json must print exactly one line, got: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(lines[0]).unwrap()
}

fn shared_data() -> Option<std::path::PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = here.join("../../../shared/data");
    if p.join("dss").is_dir() {
        Some(p.canonicalize().unwrap())
    } else {
        mentor_data::skip::skip_test(
            "cli",
            "shared reference data not found next to the repo",
            "MENTOR_REQUIRE_SHARED_DATA",
        );
        None
    }
}

#[test]
fn score_numeric_file_gold_counts_unparseable() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("gold.jsonl"), "{\"id\": 1, \"answer\": \"18\"}\n{\"id\": 2, \"answer\": \"1,000\"}\n{\"id\": 3, \"answer\": \"-3\"}\n").unwrap();
    std::fs::write(
        d.path().join("pred.jsonl"),
        "{\"id\": 1, \"output\": \"16 - 3 - 4 = 9; 9 * 2 = 18\\n#### 18\"}\n{\"id\": 2, \"output\": \"The answer is $1,000.\"}\n{\"id\": 3, \"output\": \"no idea\"}\n",
    )
    .unwrap();
    let o = mentor(
        &[
            "score",
            "--task",
            "numeric",
            "--gold",
            "gold.jsonl",
            "--pred",
            "pred.jsonl",
            "--json",
        ],
        d.path(),
    );
    assert!(o.status.success());
    let j = json_line(&o);
    assert_eq!(
        (
            j["n"].as_u64(),
            j["correct"].as_u64(),
            j["unparseable"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    // strict-match only reads "#### N"
    let o = mentor(
        &[
            "score",
            "--task",
            "numeric",
            "--rule",
            "strict-match",
            "--gold",
            "gold.jsonl",
            "--pred",
            "pred.jsonl",
            "--json",
        ],
        d.path(),
    );
    assert_eq!(json_line(&o)["correct"].as_u64(), Some(1));
}

#[test]
fn score_unknown_id_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("gold.jsonl"),
        "{\"id\": \"a\", \"answer\": \"yes\"}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("pred.jsonl"),
        "{\"id\": \"a\", \"output\": \"yes\"}\n{\"id\": \"zzz\", \"output\": \"no\"}\n",
    )
    .unwrap();
    let o = mentor(
        &[
            "score",
            "--task",
            "yes-no",
            "--gold",
            "gold.jsonl",
            "--pred",
            "pred.jsonl",
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("pred.jsonl:2:") && err.contains("zzz"),
        "{err}"
    );
}

#[test]
fn score_palm_test_outputs_against_builtin_svamp() {
    let Some(shared) = shared_data() else { return };
    let cots: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(shared.join("dss/svamp/llm/test_CoT_0.json")).unwrap(),
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let preds: String = cots
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{}\n",
                serde_json::json!({ "id": format!("test-{i}"), "output": c })
            )
        })
        .collect();
    std::fs::write(d.path().join("pred.jsonl"), preds).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args([
            "score",
            "--gold",
            "svamp",
            "--split",
            "test",
            "--pred",
            "pred.jsonl",
            "--json",
        ])
        .current_dir(d.path())
        .env("MENTOR_SHARED_DATA", &shared)
        .output()
        .unwrap();
    let j = json_line(&o);
    assert_eq!(
        (j["n"].as_u64(), j["correct"].as_u64()),
        (Some(200), Some(149))
    );
    assert_eq!(j["task"], "equation");
}

#[test]
fn data_show_json_has_splits_and_an_example() {
    let Some(shared) = shared_data() else { return };
    let o = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["data", "show", "svamp", "--json"])
        .env("MENTOR_SHARED_DATA", &shared)
        .output()
        .unwrap();
    let j = json_line(&o);
    assert_eq!(j["name"], "svamp");
    assert_eq!(
        j["splits"],
        serde_json::json!({ "train": 720, "valid": 80, "test": 200 })
    );
    assert!(j["example"]["question"].as_str().unwrap().len() > 10);
    assert_eq!(j["recorded"], 1000);
}

#[test]
fn data_show_on_a_users_file_says_which_fields_it_read() {
    let d = tempfile::tempdir().unwrap();
    // the most common shape, with no `fields` table: id, question, choices, a letter answer
    let rows: String = (0..12)
        .map(|i| {
            format!(
                "{{\"id\": \"r{i}\", \"question\": \"Pick {i}?\", \"choices\": [\"x\", \"y\", \"z\"], \"answer\": \"C\"}}\n"
            )
        })
        .collect();
    std::fs::write(d.path().join("mine.jsonl"), rows).unwrap();
    let o = mentor(
        &["data", "show", "mine.jsonl", "--task", "multiple-choice"],
        d.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("train 10, valid 1, test 1"), "{out}");
    assert!(out.contains("question    <- `question` (12)"), "{out}");
    assert!(out.contains("choices     <- `choices` (12)"), "{out}");
    assert!(out.contains("id          <- `id` (12)"), "{out}");
    let j = json_line(&mentor(
        &[
            "data",
            "show",
            "mine.jsonl",
            "--task",
            "multiple-choice",
            "--json",
        ],
        d.path(),
    ));
    assert_eq!(j["fields"]["answer"]["answer"], 12);

    // a mapping from the command line, as `[data] fields` would give it
    std::fs::write(
        d.path().join("odd.jsonl"),
        "{\"body\": \"1+1?\", \"gold\": 2}\n{\"body\": \"2+2?\", \"gold\": 4}\n",
    )
    .unwrap();
    let o = mentor(
        &["data", "show", "odd.jsonl", "--task", "numeric"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("odd.jsonl:1: no `question` field"), "{err}");
    assert!(err.contains("the row has: body, gold"), "{err}");
    let o = mentor(
        &[
            "data",
            "show",
            "odd.jsonl",
            "--task",
            "numeric",
            "--field",
            "question=body",
            "--field",
            "answer=gold",
        ],
        d.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("answer      <- `gold` (2)"), "{out}");
    // a file without its task says how to give it
    let o = mentor(&["data", "show", "odd.jsonl"], d.path());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--task numeric"));
}

#[test]
fn a_recorded_dataset_is_one_fetch_assets_away_on_a_fresh_home() {
    let Some(shared) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    // a fresh machine: no shared data beside the working directory, an empty MENTOR_HOME
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mentor"))
            .args(args)
            .current_dir(d.path())
            .env("MENTOR_HOME", &home)
            .env_remove("MENTOR_SHARED_DATA")
            .env("MENTOR_LOG", "warn")
            .output()
            .unwrap()
    };
    let o = run(&["data", "show", "svamp"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("run `mentor fetch-assets dss-svamp`"), "{err}");
    assert!(err.contains("--from DIR"), "{err}");
    // offline, from the mirror folder: every file checked against the pinned table
    let o = run(&[
        "fetch-assets",
        "dss-svamp",
        "minds-mirror-svamp",
        "--from",
        shared.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("got  dss-svamp (7 files"), "{out}");
    assert!(out.contains("licence Apache-2.0"), "{out}");
    let o = run(&["data", "show", "svamp"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("train 720, valid 80, test 200"), "{out}");
    assert!(
        out.contains("github.com/google-research/distilling-step-by-step"),
        "{out}"
    );
    assert!(out.contains("licence Apache-2.0"), "{out}");
    let o = run(&["data", "show", "minds-mirror-svamp", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // a rerun has nothing to do; --list shows both as fetched
    let o = run(&[
        "fetch-assets",
        "dss-svamp",
        "--from",
        shared.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("have dss-svamp"));
    let list = String::from_utf8_lossy(&run(&["fetch-assets", "--list"]).stdout).to_string();
    assert!(list.contains("✓ dss-svamp"), "{list}");
    assert!(list.contains("  fair-svamp"), "{list}");
    // fair-svamp brings what its mistakes are scored on
    let home2 = d.path().join("home2");
    let o = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args([
            "fetch-assets",
            "fair-svamp",
            "--from",
            shared.to_str().unwrap(),
        ])
        .current_dir(d.path())
        .env("MENTOR_HOME", &home2)
        .env_remove("MENTOR_SHARED_DATA")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("got  fair-svamp") && out.contains("got  dss-svamp"),
        "{out}"
    );
}

#[test]
fn missing_asset_error_says_which_command_fetches_it() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["data", "show", "gsm8k"])
        .env("MENTOR_HOME", d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("mentor fetch-assets gsm8k"));
}

#[test]
fn import_checks_a_model_then_every_command_takes_its_name() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mentor"))
            .args(args)
            .current_dir(d.path())
            .env("MENTOR_HOME", &home)
            .env("MENTOR_LOG", "warn")
            .output()
            .unwrap()
    };
    let fails_with = |args: &[&str], needle: &str| {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    // what is not a model says why, before anything is copied
    std::fs::create_dir_all(d.path().join("adapter")).unwrap();
    std::fs::write(d.path().join("adapter/adapter_config.json"), "{}").unwrap();
    fails_with(&["import", "adapter"], "LoRA adapter");
    std::fs::create_dir_all(d.path().join("bin")).unwrap();
    for f in ["config.json", "tokenizer.json", "pytorch_model.bin"] {
        std::fs::write(d.path().join("bin").join(f), "{}").unwrap();
    }
    fails_with(&["import", "bin"], "safe_serialization=True");
    // a real (tiny) model trained elsewhere, with its template in chat_template.jinja
    let src = d.path().join("trl-out");
    let cfg = common::tiny_student(&src, 256, 9);
    std::fs::write(
        src.join("chat_template.jinja"),
        "{% for m in messages %}{{ m.content }}{% endfor %}",
    )
    .unwrap();
    std::fs::write(src.join("optimizer.pt"), "not copied").unwrap();
    fails_with(
        &["import", "trl-out", "--name", "smollm2-135m"],
        "built-in asset",
    );
    let o = run(&["import", "trl-out", "--name", "sft", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json_line(&o);
    assert_eq!(j["name"], "sft");
    let dest = home.join("imported/sft");
    assert!(dest.join("model.safetensors").is_file());
    assert!(dest.join("chat_template.jinja").is_file());
    assert!(
        !dest.join("optimizer.pt").exists(),
        "training leftovers stay behind"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("mentor-import.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["parameters"], cfg.num_parameters());
    assert!(manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["sha256"].as_str().unwrap().len() == 64));
    fails_with(&["import", "trl-out", "--name", "sft"], "--force");
    assert!(run(&["import", "trl-out", "--name", "sft", "--force"])
        .status
        .success());
    // the name now works wherever a model is taken
    std::fs::write(d.path().join("p.jsonl"), "{\"prompt\": \"2+2=\"}\n").unwrap();
    let o = run(&[
        "generate",
        "--model",
        "sft",
        "--prompts",
        "p.jsonl",
        "--raw",
        "--max-tokens",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json_line(&o)["generations"].as_array().unwrap().len(), 1);
    fails_with(&["serve", "--model", "no-such-model"], "mentor import");
    // Built ones fail on bad input with exit 1 and say what is wrong.
    let o = mentor(&["train", "x.toml"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read config x.toml"));
    let o = mentor(&["eval"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("give a CONFIG, or --model and --data"));
    let o = mentor(&["report", "r", "--json"], d.path());
    let j = json_line(&o);
    assert_eq!(j["ok"], false);
    let why = j["error"].as_str().unwrap();
    assert!(
        why.contains("r/summary.json") && why.contains("mentor distill"),
        "{why}"
    );
}

#[test]
fn model_commands_name_the_missing_asset_and_how_to_fetch_it() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        vec!["bench", "train", "--steps", "1"],
        vec!["bench", "generate"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_mentor"))
            .args(&args)
            .env("MENTOR_HOME", d.path())
            .env("MENTOR_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("mentor fetch-assets smollm2-135m"), "{err}");
    }
}

#[test]
fn help_teaches_every_subcommand() {
    let d = tempfile::tempdir().unwrap();
    let o = mentor(&["--help"], d.path());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    // the "Commands:" section: one entry a subcommand, its name then a description
    let commands: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.starts_with("Options:"))
        .collect();
    let described = |sub: &str| {
        commands.iter().any(|l| {
            l.strip_prefix("  ")
                .and_then(|l| l.strip_prefix(sub))
                .is_some_and(|rest| rest.starts_with(' ') && rest.trim().len() > 10)
        })
    };
    for sub in [
        "fetch-assets",
        "distill",
        "annotate",
        "train",
        "eval",
        "score",
        "data",
        "ledger",
        "generate",
        "report",
        "export",
        "import",
        "serve",
        "bench",
        "compare",
        "sweep",
    ] {
        assert!(described(sub), "--help does not describe {sub}:\n{text}");
    }
    let o = mentor(&["score", "--help"], d.path());
    assert!(String::from_utf8_lossy(&o.stdout).contains("lm-eval-harness"));
}

#[test]
fn help_examples_keep_one_command_a_line() {
    // clap reflows doc comments into paragraphs unless told not to: a list of examples then
    // reads as one long line of several commands
    let d = tempfile::tempdir().unwrap();
    for sub in [
        "distill",
        "eval",
        "init",
        "report",
        "compare",
        "sweep",
        "fetch-assets",
        "data show",
    ] {
        let mut args: Vec<&str> = sub.split(' ').collect();
        args.push("--help");
        let o = mentor(&args, d.path());
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            text.contains("Example"),
            "{sub} --help has no example:\n{text}"
        );
        for line in text.lines() {
            let commands = line.matches("mentor ").count();
            let chained = line.matches("&&").count() + 1;
            assert!(
                commands <= chained,
                "{sub} --help runs examples together: {line:?}"
            );
        }
    }
}

#[test]
fn config_error_names_key_and_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("exp.toml"),
        "[data]\ndataset = \"svamp\"\n[train]\nepochz = 3\n",
    )
    .unwrap();
    let o = mentor(&["distill", "exp.toml", "--no-fetch"], d.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("exp.toml") && err.contains("train") && err.contains("epochz"),
        "{err}"
    );
}

#[test]
fn init_then_distill_records_data_and_recorded_teacher_and_reruns_cleanly() {
    let Some(shared) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mentor"))
            .args(args)
            .current_dir(d.path())
            .env("MENTOR_SHARED_DATA", &shared)
            .env("MENTOR_LOG", "warn")
            .output()
            .unwrap()
    };
    assert!(run(&["init", "exp.toml"]).status.success());
    assert_eq!(
        run(&["init", "exp.toml"]).status.code(),
        Some(1),
        "init does not overwrite"
    );
    // The example config, with a tiny random student and a one-step run so the test is quick.
    common::tiny_student(&d.path().join("student"), 1024, 1);
    let example = std::fs::read_to_string(d.path().join("exp.toml")).unwrap();
    let edited = example
        .replace("model = \"smollm2-135m\"", "model = \"student\"")
        .replace("epochs = 3", "epochs = 3\nmax_steps = 1\nmax_len = 256")
        .replace("# valid_limit = 64", "valid_limit = 2\nmax_new_tokens = 4");
    assert_ne!(edited, example);
    std::fs::write(d.path().join("exp.toml"), edited).unwrap();
    let o = run(&[
        "distill",
        "exp.toml",
        "--no-fetch",
        "--json",
        "--eval-limit",
        "2",
    ]);
    let j = json_line(&o);
    assert_eq!(j["splits"]["train"], 720, "{j}");
    assert_eq!(j["recorded_teacher"]["train"]["n"], 720);
    assert!((j["recorded_teacher"]["test"]["accuracy"].as_f64().unwrap() - 0.745).abs() < 1e-9);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("runs/exp/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["dataset"], "svamp");
    let store = mentor_store::Store::open_run_dir(d.path().join("runs/exp")).unwrap();
    let counts: std::collections::HashMap<_, _> = store.counts().unwrap().into_iter().collect();
    // 1000 recorded outputs imported for scoring, and the replay teacher's 720 train CoTs
    assert_eq!((counts["examples"], counts["annotations"]), (1000, 1720));
    assert_eq!(summary["training_set"]["pairs"]["label"], 720);
    assert_eq!(summary["accuracy_after"]["n"], 2);
    // a rerun adds nothing and pays nothing
    let o = run(&[
        "distill",
        "exp.toml",
        "--no-fetch",
        "--json",
        "--eval-limit",
        "2",
    ]);
    assert!(o.status.success());
    let store = mentor_store::Store::open_run_dir(d.path().join("runs/exp")).unwrap();
    let counts: std::collections::HashMap<_, _> = store.counts().unwrap().into_iter().collect();
    assert_eq!((counts["examples"], counts["annotations"]), (1000, 1720));
    let o = run(&["ledger", "runs/exp", "--json"]);
    assert_eq!(json_line(&o)["total"]["calls"], 720);
}

#[test]
fn quickstart_is_a_step_by_step_config_and_names_missing_assets() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(["distill", "--quick", "--no-fetch"])
        .current_dir(d.path())
        .env("MENTOR_HOME", d.path().join("home"))
        .env("MENTOR_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mentor fetch-assets sciq"), "{err}");
    // The built-in config is the shipped example; `init --quickstart` writes it.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.toml"),
    )
    .unwrap();
    let o = mentor(&["init", "qs.toml", "--quickstart"], d.path());
    assert!(o.status.success());
    let written = std::fs::read_to_string(d.path().join("qs.toml")).unwrap();
    assert_eq!(written, shipped);
    for want in [
        "name = \"step-by-step\"",
        "filter_correct = true",
        "kind = \"local\"",
        "dataset = \"sciq\"",
        "choice_label = \"text\"",
    ] {
        assert!(written.contains(want), "{want}");
    }
    // --scale must be positive
    let o = mentor(&["distill", "--scale", "0", "--no-fetch"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--scale"));
}

/// `--device` / `--dtype` are checked before anything loads, with errors that say what to do;
/// a bad value is an error, not a silent CPU run.
#[test]
fn device_and_dtype_flags_fail_clearly() {
    let d = tempfile::tempdir().unwrap();
    let gen = [
        "generate",
        "--model",
        "nowhere.gguf",
        "--prompts",
        "p.jsonl",
    ];
    let o = mentor(&[&["--device", "tpu"][..], &gen].concat(), d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected cpu, cuda or cuda:N"));
    let o = mentor(&[&["--dtype", "f8"][..], &gen].concat(), d.path());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected f32, bf16 or f16"));
    let o = mentor(
        &[&["--device", "cuda", "--json"][..], &gen].concat(),
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = json_line(&o)["error"].as_str().unwrap().to_string();
    if cfg!(feature = "cuda") {
        assert!(err.contains("--device cuda"), "{err}");
    } else {
        assert!(
            err.contains("built without CUDA") && err.contains("build-cuda.sh"),
            "{err}"
        );
    }
    // the environment variable is the same flag
    let o = Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(gen)
        .current_dir(d.path())
        .env("MENTOR_DEVICE", "tpu")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--device tpu"));
}

#[test]
fn bench_train_adds_a_kd_teacher_and_refuses_one_of_another_vocabulary() {
    let d = tempfile::tempdir().unwrap();
    let cfg = common::tiny_student(&d.path().join("student"), 64, 2);
    common::tiny_student(&d.path().join("teacher"), 64, 1);
    let args = [
        "bench", "train", "--model", "student", "--batch", "2", "--seq", "16", "--steps", "1",
        "--warmup", "0", "--json",
    ];
    let mut with_kd = args.to_vec();
    with_kd.extend(["--kd-teacher", "teacher"]);
    let o = mentor(&with_kd, d.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json_line(&o);
    assert_eq!(j["kd_teacher"], "teacher");
    assert_eq!(j["kd_loss"], "forward-kl");
    // two different random models: the divergence the step reports is not zero
    let err = String::from_utf8_lossy(&o.stderr);
    let kd: f64 = err
        .split(" kd ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no kd loss in the step line: {err}"));
    assert!(kd > 0.0, "{err}");
    // without it: no teacher, no kd term
    let o = mentor(&args, d.path());
    assert!(json_line(&o)["kd_teacher"].is_null());
    // a student of another vocabulary (a config alone: randomly initialised)
    let text = std::fs::read_to_string(d.path().join("student/config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["vocab_size"] = serde_json::json!(cfg.vocab_size + 7);
    std::fs::write(d.path().join("other.json"), v.to_string()).unwrap();
    let mut bad = with_kd.clone();
    bad[3] = "other.json";
    let o = mentor(&bad, d.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("one vocabulary"), "{err}");
    let o = mentor(&[&with_kd[..], &["--kd-loss", "l2"]].concat(), d.path());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected forward-kl"));
}
