//! Each recipe end to end through `mentor distill CONFIG` with a tiny random student (a real
//! byte-level tokenizer, weights written as an HF directory): the teacher stages, the training
//! set each builds (counts, tasks, weights), training, and scoring before and after. Accuracy
//! is not asserted: a random 30k-parameter model knows nothing.

mod common;

use mentor_teacher::loopback::{LoopbackConfig, LoopbackServer};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A run directory with a tiny student and `toy.jsonl`: `n` questions "What is i plus (i + k)?".
fn sums_run(n: usize, k: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 2048, 3);
    let rows: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": \"q{i:02}\", \"question\": \"What is {i} plus {}?\", \"answer\": {}}}\n",
                i + k,
                2 * i + k
            )
        })
        .collect();
    std::fs::write(d.path().join("toy.jsonl"), rows).unwrap();
    d
}

const TRAIN_AND_EVAL: &str = "[student]\nmodel = \"student\"\n\n\
    [train]\nmax_steps = 2\nbatch_size = 4\nmax_len = 384\nsave_every = 0\n\n\
    [eval]\nmax_new_tokens = 6\nvalid_limit = 2\nsamples = 2\nbatch = 8\n";

/// Runs `mentor ARGS --json` in `dir` and returns its summary line; fails the test on an error.
fn mentor_json(dir: &Path, args: &[&str], extra_env: &[(&str, &Path)]) -> serde_json::Value {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mentor"));
    c.args(args)
        .arg("--json")
        .current_dir(dir)
        .env("MENTOR_LOG", "warn");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(s.lines().last().unwrap()).unwrap()
}

/// Runs `mentor ARGS` in `dir` and returns what it did, success or not.
fn mentor_out(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mentor"))
        .args(args)
        .current_dir(dir)
        .env("MENTOR_LOG", "warn")
        .output()
        .unwrap()
}

fn distill(dir: &Path, extra_env: &[(&str, &Path)]) -> serde_json::Value {
    mentor_json(
        dir,
        &["distill", "exp.toml", "--eval-limit", "3", "--threads", "1"],
        extra_env,
    )
}

fn shared_data() -> Option<std::path::PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if shared.join("dss/svamp").is_dir() {
        Some(shared)
    } else {
        mentor_data::skip::skip_test(
            "recipes",
            "shared reference data not found",
            "MENTOR_REQUIRE_SHARED_DATA",
        );
        None
    }
}

/// `mentor annotate examples/NAME.toml --json` over the shared data; None (skipped) without it.
fn annotate_example(name: &str, needs: &str) -> Option<serde_json::Value> {
    let shared = shared_data()?;
    if !shared.join(needs).is_dir() {
        mentor_data::skip::skip_test(
            "recipes",
            &format!("shared/data/{needs} not found"),
            "MENTOR_REQUIRE_SHARED_DATA",
        );
        return None;
    }
    let d = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{name}.toml"));
    let env = [("MENTOR_SHARED_DATA", shared.as_path())];
    Some(mentor_json(
        d.path(),
        &["annotate", example.to_str().unwrap(), "--run-dir", "run"],
        &env,
    ))
}

fn svamp_replay_config(dir: &Path, recipe: &str) {
    std::fs::write(
        dir.join("exp.toml"),
        format!(
            "[data]\ndataset = \"svamp\"\nlimit = 6\n\n[teachers.palm]\nkind = \"replay\"\nsource = \"palm-540b\"\n\n\
             [recipe]\n{recipe}\n\n{TRAIN_AND_EVAL}"
        ),
    )
    .unwrap();
}

#[test]
fn standard_learns_gold_labels_and_asks_no_teacher() {
    let Some(shared) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 2048, 3);
    svamp_replay_config(d.path(), "name = \"standard\"");
    let j = distill(d.path(), &[("MENTOR_SHARED_DATA", &shared)]);
    assert_eq!(j["teacher"]["calls"], 0, "{j}");
    assert_eq!(
        j["training_set"]["pairs"],
        serde_json::json!({ "label": 6 })
    );
    assert_eq!(j["training"][0]["steps"], 2);
    assert_eq!(j["accuracy_after"]["n"], 3);
    assert_eq!(j["accuracy_before"]["n"], 3);
    assert_eq!(j["eval_mode"], "label");
    assert!(d
        .path()
        .join(j["student"].as_str().unwrap())
        .join("tokenizer.json")
        .is_file());
}

#[test]
fn a_standard_baseline_is_trained_beside_the_recipe_and_compared_paired() {
    let Some(shared) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 2048, 3);
    svamp_replay_config(d.path(), "name = \"step-by-step\"\nalpha = 0.5");
    let cfg = std::fs::read_to_string(d.path().join("exp.toml")).unwrap();
    std::fs::write(
        d.path().join("exp.toml"),
        format!("{cfg}\n[baseline]\nstandard = true\n"),
    )
    .unwrap();
    let j = distill(d.path(), &[("MENTOR_SHARED_DATA", &shared)]);
    let b = &j["baseline_standard"];
    // the same questions' gold labels alone, no teacher, scored on the same test questions
    assert_eq!(
        b["training_set"]["pairs"],
        serde_json::json!({ "label": 6 }),
        "{j}"
    );
    assert_eq!(b["accuracy"]["n"], 3);
    let base_dir = d.path().join(b["run_dir"].as_str().unwrap());
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(base["recipe"], "standard");
    assert_eq!(base["teacher"]["calls"], 0);
    assert!(base["config"]["teachers"].as_object().unwrap().is_empty());
    assert_eq!(base["config"]["train"], j["config"]["train"]);
    // the paired differences agree with the accuracies they pair
    let correct = |a: &serde_json::Value| a["correct"].as_f64().unwrap();
    let vs_standard = &j["paired"]["distilled_vs_standard"];
    let vs_untrained = &j["paired"]["distilled_vs_untrained"];
    assert_eq!(vs_standard["n"], 3);
    let want = (correct(&j["accuracy_after"]) - correct(&b["accuracy"])) / 3.0;
    assert!(
        (vs_standard["diff"].as_f64().unwrap() - want).abs() < 1e-9,
        "{vs_standard}"
    );
    let want = (correct(&j["accuracy_after"]) - correct(&j["accuracy_before"])) / 3.0;
    assert!(
        (vs_untrained["diff"].as_f64().unwrap() - want).abs() < 1e-9,
        "{vs_untrained}"
    );
    let t = &vs_standard["table"];
    let cells: u64 = ["both_right", "only_a", "only_b", "both_wrong"]
        .iter()
        .map(|k| t[k].as_u64().unwrap())
        .sum();
    assert_eq!(cells, 3);
    let lo = vs_standard["ci95"][0].as_f64().unwrap();
    let hi = vs_standard["ci95"][1].as_f64().unwrap();
    assert!(
        lo <= vs_standard["diff"].as_f64().unwrap() && vs_standard["diff"].as_f64().unwrap() <= hi
    );
    // the peak memory at the end of each stage, never falling (Linux)
    if cfg!(target_os = "linux") {
        let m = &j["peak_rss_mb"];
        let mb = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("{k}: {m}"));
        assert!(
            mb("teachers") > 0 && mb("teachers") <= mb("train") && mb("train") <= mb("examples"),
            "{m}"
        );
    }
    // how many validation questions chose the checkpoint, and the chosen score's interval
    let stage = &j["training"][0];
    assert_eq!(stage["valid_n"], 2, "{stage}");
    if let Some(m) = stage["best_valid_metric"]
        .as_f64()
        .filter(|m| (0.0..=1.0).contains(m))
    {
        let ci = &stage["best_valid_ci95"];
        assert!(
            ci[0].as_f64().unwrap() <= m && m <= ci[1].as_f64().unwrap(),
            "{stage}"
        );
    }
    // the report's first screen names all three students
    let html = std::fs::read_to_string(d.path().join("runs/exp/report.html")).unwrap();
    let first = &html[..html.find("<h2>Data</h2>").unwrap()];
    assert!(
        first.contains("untrained")
            && first.contains("standard fine-tuning")
            && first.contains("distilled − standard"),
        "{first}"
    );
}

#[test]
fn step_by_step_trains_label_and_rationale_from_the_recorded_teacher() {
    let Some(shared) = shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 2048, 3);
    svamp_replay_config(
        d.path(),
        "name = \"step-by-step\"\nalpha = 0.3\nfilter_correct = true",
    );
    let j = distill(d.path(), &[("MENTOR_SHARED_DATA", &shared)]);
    // One recorded PaLM CoT per train item, replayed for free.
    assert_eq!(j["teacher"]["calls"], 6, "{j}");
    let st = &j["training_set"];
    assert_eq!(st["cots"], 6);
    let kept = st["cots_kept"].as_u64().unwrap();
    assert_eq!(kept + st["cots_wrong"].as_u64().unwrap(), 6);
    assert_eq!(st["pairs"]["label"], 6);
    assert_eq!(st["pairs"]["rationale"].as_u64().unwrap_or(0), kept);
    // Rerunning pays nothing again and retrains nothing: the checkpoint is complete.
    let again = distill(d.path(), &[("MENTOR_SHARED_DATA", &shared)]);
    assert_eq!(again["teacher"]["calls"], 6);
    assert_eq!(again["training"][0]["steps"], 2);
    // Both tasks reach the loop: the step log's per-task losses name exactly the two, each
    // finite (the weights themselves: `student::tests`, `mentor-train/tests/loop.rs`)
    let log = std::fs::read_to_string(d.path().join("runs/exp/student/stage-0/log.jsonl")).unwrap();
    let mut tasks = std::collections::BTreeSet::new();
    for line in log.lines().filter(|l| l.contains("\"kind\":\"step\"")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for (t, l) in v["log"]["task_loss"].as_object().unwrap() {
            assert!(
                l.as_f64().is_some_and(|l| l.is_finite() && l > 0.0),
                "{t}: {l}"
            );
            tasks.insert(t.clone());
        }
    }
    let want: std::collections::BTreeSet<String> =
        ["label".to_string(), "rationale".to_string()].into();
    assert!(
        kept > 0,
        "the recorded teacher's first six CoTs include right ones"
    );
    assert_eq!(tasks, want);

    // The training set exports for other trainers, the student as an HF directory.
    let export = |format: &str| {
        mentor_json(
            d.path(),
            &["export", "runs/exp", "--format", format],
            &[("MENTOR_SHARED_DATA", &shared)],
        );
        d.path().join("runs/exp/export").join(format)
    };
    let trl = std::fs::read_to_string(export("trl").join("train.jsonl")).unwrap();
    let n_pairs = 6 + kept as usize;
    assert_eq!(trl.lines().count(), n_pairs);
    let row: serde_json::Value = serde_json::from_str(trl.lines().next().unwrap()).unwrap();
    assert_eq!(row["messages"][1]["role"], "assistant");
    let dss = std::fs::read_to_string(export("dss").join("train.jsonl")).unwrap();
    assert_eq!(dss.lines().count(), 6);
    let row: serde_json::Value = serde_json::from_str(dss.lines().next().unwrap()).unwrap();
    assert!(
        row["input"].is_string() && row["label"].as_str().unwrap().starts_with("The answer is")
    );
    let lf = export("llamafactory");
    assert!(lf.join("dataset_info.json").is_file() && lf.join("README.md").is_file());
    let sharegpt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lf.join("train_sharegpt.json")).unwrap())
            .unwrap();
    assert_eq!(sharegpt.as_array().unwrap().len(), n_pairs);
    assert_eq!(sharegpt[0]["conversations"][1]["from"], "gpt");
    let hf = export("hf");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    ] {
        assert!(hf.join(f).is_file(), "{f}");
    }
    // and as GGUF, which reads back as the same model (llama.cpp's check: scripts/check-export.sh);
    // in f32, so the logits must match exactly (the default f16 rounds: mentor-model's tests)
    mentor_json(
        d.path(),
        &[
            "export",
            "runs/exp",
            "--format",
            "gguf",
            "--gguf-type",
            "f32",
        ],
        &[("MENTOR_SHARED_DATA", &shared)],
    );
    let gguf = d.path().join("runs/exp/export/gguf/exp.gguf");
    let dev = candle_core::Device::Cpu;
    let mut from_gguf = mentor_model::load::read_weights(&gguf, &dev).unwrap();
    let from_hf = mentor_model::load::read_weights(&hf, &dev).unwrap();
    assert_eq!(from_gguf.config.hidden_size, from_hf.config.hidden_size);
    assert_eq!(from_gguf.config.vocab_size, from_hf.config.vocab_size);
    assert_eq!(from_gguf.tensors.len(), from_hf.tensors.len());
    // the same logits on the same tokens (GGUF keeps ε as f32, so the HF model's ε is used for
    // both, as the library's round-trip test does)
    let eps = from_hf.config.rms_norm_eps;
    assert!((from_gguf.config.rms_norm_eps - eps).abs() < 1e-9);
    from_gguf.config.rms_norm_eps = eps;
    use mentor_model::load::{Student, Tuning};
    let ids = candle_core::Tensor::new(&[[1u32, 40, 41, 42, 50, 60, 70]], &dev).unwrap();
    let logits = |w| {
        Student::new(w, Tuning::Frozen, &dev, 0)
            .unwrap()
            .model
            .forward(&ids)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (a, b) = (logits(from_gguf), logits(from_hf));
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-4,
        "GGUF and HF exports differ by {diff} in logits"
    );
}

/// Numeric questions "What is a plus b?"; the teacher's first CoT of an item is right, its
/// second wrong; it judges right CoTs correct and wrong ones wrong, then uncertain.
fn mirror_teacher() -> mentor_teacher::loopback::Answerer {
    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    Arc::new(move |p: &str| {
        let n = {
            let mut c = calls.lock().unwrap();
            let e = c.entry(p.to_string()).or_default();
            *e += 1;
            *e
        };
        let nums: Vec<i64> = p
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .take(2)
            .collect();
        let (a, b) = (nums[0], nums[1]);
        if let Some(sol) = p.split("Proposed solution: ").nth(1) {
            let right = sol.contains(&format!("The answer is {}.", a + b));
            let v = match (right, n) {
                (true, _) => "correct",
                (false, 1) => "wrong",
                (false, _) => "uncertain",
            };
            format!("Checking each step. Evaluation result: the given answer is {v}.")
        } else if n == 1 {
            format!("{a} plus {b} makes {}. The answer is {}.", a + b, a + b)
        } else {
            format!(
                "{a} plus {b} makes {}. The answer is {}.",
                a + b + 1,
                a + b + 1
            )
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minds_mirror_samples_cots_judges_them_and_trains_both_tasks_in_two_stages() {
    let server = LoopbackServer::start(LoopbackConfig {
        answer: mirror_teacher(),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = sums_run(10, 2);
    std::fs::write(
        d.path().join("exp.toml"),
        format!(
            "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [0.6, 0.2, 0.2]\n\n\
             [teachers.loop]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"loopback\"\nmax_in_flight = 1\n\n\
             [recipe]\nname = \"minds-mirror\"\ncots_per_question = 2\nevals_per_cot = 2\nschedule = \"mixed\"\n\n{TRAIN_AND_EVAL}\nmode = \"self-eval-vote\"\n",
            server.base_url
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    // 6 train items × (2 CoTs + 2 distinct CoTs × 2 self-evaluations) = 36 calls.
    assert_eq!(j["teacher"]["calls"], 36, "{j}");
    let st = &j["training_set"];
    assert_eq!(
        (
            st["cots"].as_u64(),
            st["cots_kept"].as_u64(),
            st["cots_duplicate"].as_u64()
        ),
        (Some(12), Some(12), Some(0))
    );
    assert_eq!(st["pairs"]["cot"], 12);
    assert_eq!(st["pairs"]["self-eval"], 24);
    assert_eq!(
        st["verdicts"],
        serde_json::json!({ "correct": 12, "wrong": 6, "uncertain": 6 })
    );
    assert_eq!(st["verdict_agreement"], 0.75);
    // a dry run of the finished run prices nothing: the chains and their judgements are stored
    let dry = mentor_json(d.path(), &["annotate", "exp.toml", "--dry-run"], &[]);
    assert_eq!(dry["teachers"]["loop"]["calls"], 0, "{dry}");
    // `mixed`: both tasks in one stage (self-eval-vote refuses `two-stage`, which ends on CoTs)
    let stages = j["training"].as_array().unwrap();
    assert_eq!(stages.len(), 1);
    assert_eq!(stages[0]["examples"].as_u64(), Some(36));
    assert!(j["student"].as_str().unwrap().ends_with("stage-0/best"));
    assert_eq!(j["eval_mode"], "self-eval-vote");
    assert_eq!(j["accuracy_after"]["n"], 2);
    // Every prediction carries its votes with verdict weights.
    let preds = std::fs::read_to_string(d.path().join(j["predictions"].as_str().unwrap())).unwrap();
    let first: serde_json::Value = serde_json::from_str(preds.lines().next().unwrap()).unwrap();
    assert_eq!(first["votes"].as_array().unwrap().len(), 2);
    // The report: one static HTML file with the figures, the training curves, and teacher and
    // student side by side on three training questions (teacher CoTs, not labels).
    assert_eq!(j["examples"], 3);
    let examples = std::fs::read_to_string(d.path().join("runs/exp/examples.jsonl")).unwrap();
    for line in examples.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            e["teacher"].as_str().unwrap().contains("The answer is"),
            "{e}"
        );
        assert!(e["question"].as_str().unwrap().starts_with("solve:"), "{e}");
    }
    let html = std::fs::read_to_string(d.path().join(j["report"].as_str().unwrap())).unwrap();
    let after = format!(
        "{:.1}%",
        100.0 * j["accuracy_after"]["accuracy"].as_f64().unwrap()
    );
    for want in [
        "minds-mirror",
        after.as_str(),
        "stage 0: loss",
        "verdict_agreement",
        "loopback",
    ] {
        assert!(html.contains(want), "report lacks {want:?}");
    }
    assert!(html.matches("<svg").count() >= 1, "a loss chart");
    // `mentor report` rebuilds it from the run directory alone.
    std::fs::remove_file(d.path().join("runs/exp/report.html")).unwrap();
    let r = mentor_json(d.path(), &["report", "runs/exp"], &[]);
    assert_eq!(
        std::fs::read_to_string(d.path().join(r["report"].as_str().unwrap())).unwrap(),
        html
    );

    // self-eval-vote judges the samples `vote` drew with the same settings, and only those:
    // marked samples in the vote file come back judged; with other settings it samples anew
    let eval = |mode: &str| {
        mentor_json(
            d.path(),
            &["eval", "exp.toml", "--split", "test", "--mode", mode],
            &[],
        )
    };
    let vote = eval("vote");
    let vote_file = d.path().join(vote["predictions"].as_str().unwrap());
    let settings = vote_file.with_extension("sampling.json");
    assert!(settings.is_file(), "{}", settings.display());
    let marked: String = std::fs::read_to_string(&vote_file)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for (k, s) in v["votes"].as_array_mut().unwrap().iter_mut().enumerate() {
                s["output"] = format!("marked {k}. The answer is 3.").into();
            }
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(&vote_file, marked).unwrap();
    let outputs = |j: &serde_json::Value| -> Vec<String> {
        let text =
            std::fs::read_to_string(d.path().join(j["predictions"].as_str().unwrap())).unwrap();
        text.lines()
            .flat_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["votes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["output"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let judged = eval("self-eval-vote");
    let got = outputs(&judged);
    assert_eq!(got.len(), 4, "2 test items × 2 samples");
    assert!(got.iter().all(|o| o.starts_with("marked")), "{got:?}");
    // each judged sample records whether its own answer is right: every marked sample answers
    // 3, so each is right exactly when its question's voted answer (3) is
    let text =
        std::fs::read_to_string(d.path().join(judged["predictions"].as_str().unwrap())).unwrap();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        for s in v["votes"].as_array().unwrap() {
            assert_eq!(s["correct"].as_bool(), v["correct"].as_bool(), "{v}");
        }
    }
    let mut other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    other["seed"] = 99.into();
    std::fs::write(&settings, other.to_string()).unwrap();
    let fresh = outputs(&eval("self-eval-vote"));
    assert!(fresh.iter().all(|o| !o.starts_with("marked")), "{fresh:?}");
}

#[test]
fn mapd_replay_of_the_fair_committee_reproduces_its_peer_review_outcome() {
    let Some(j) = annotate_example("mapd-fair-replay", "fair") else {
        return;
    };
    // The release's outcome (data README): 286 / 221 / 319 accepted, 365 of 387 mistakes keep one.
    assert_eq!(
        j["accepted"],
        serde_json::json!({ "gpt": 286, "gemini": 221, "mistral": 319 })
    );
    assert_eq!(j["mistakes_with_accepted"], 365);
    let rv = &j["training_set"]["review"];
    assert_eq!(rv["mistakes"], 387);
    // 3 feedback + 3 rationales + 6 reviews a mistake: the paper's 12 calls.
    assert_eq!(rv["teacher_calls_per_mistake"], 12.0);
    assert_eq!(rv["reviews"], 2322);
    // one feedback and one accepted rationale per mistake; the 22 mistakes with no accepted
    // rationale are dropped whole, as the release does (365 + 365)
    assert_eq!(
        j["training_set"]["pairs"],
        serde_json::json!({ "feedback": 365, "cot": 365 })
    );
    // Replayed for free, and a rerun pays nothing again.
    assert_eq!(j["stages"]["reviews"]["total"]["done"], 2322);
}

/// A committee member on the loopback server: feedback, a rationale (right for even a), and a
/// review score ("[4]" for right rationales, "[2]" for wrong, "no score" once in a while).
fn committee_teacher(unratable: i64) -> mentor_teacher::loopback::Answerer {
    Arc::new(move |p: &str| {
        let nums: Vec<i64> = p
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .take(2)
            .collect();
        let (a, b) = (nums[0], nums[1]);
        if p.contains("Rate the proposed solution") {
            let right = p.contains(&format!("The answer is {}.", a + b));
            if a == unratable {
                "I cannot rate this.".into()
            } else if right {
                "Clear and right. [4]".into()
            } else {
                "Wrong sum. [2/5]".into()
            }
        } else if p.contains("is wrong; the correct answer is") {
            format!("The student should add {a} and {b}, which gives {}.", a + b)
        } else {
            let ans = if a % 2 == 0 { a + b } else { a + b + 1 };
            format!("{a} plus {b} makes {ans}. The answer is {ans}.")
        }
    })
}

/// A MAPD run over 10 sums (6 train) with a committee of two loopback teachers, `big` and
/// `small`, and `recipe` lines added to its `[recipe]` table.
/// Also returns `a` of the question whose reviews carry no score.
async fn committee_run(recipe: &str) -> (LoopbackServer, tempfile::TempDir, i64) {
    let d = sums_run(10, 2);
    // the reviews of the first train question ("What is a plus …") carry no score
    let split = mentor_data::load_dataset(&mentor_data::DatasetSpec {
        path: Some(d.path().join("toy.jsonl")),
        task: Some(mentor_core::TaskKind::Numeric),
        fractions: [0.6, 0.2, 0.2],
        ..Default::default()
    })
    .unwrap();
    let first = &split.split(mentor_core::Split::Train)[0];
    let unratable: i64 = first.question["What is ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let server = LoopbackServer::start(LoopbackConfig {
        answer: committee_teacher(unratable),
        ..Default::default()
    })
    .await
    .unwrap();
    let teacher = |name: &str| {
        format!("[teachers.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"{name}\"\nmax_in_flight = 2\n", server.base_url)
    };
    std::fs::write(
        d.path().join("exp.toml"),
        format!(
            "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [0.6, 0.2, 0.2]\n\n{}\n{}\n\
             [recipe]\nname = \"mapd\"\npairs_per_mistake = \"all\"\n{recipe}\n\n{TRAIN_AND_EVAL}\nmode = \"cot\"\n",
            teacher("big"),
            teacher("small")
        ),
    )
    .unwrap();
    (server, d, unratable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapd_mines_the_students_mistakes_and_trains_on_peer_accepted_rationales() {
    let (_server, d, unratable) = committee_run("alpha = 0.4").await;
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    let rv = &j["training_set"]["review"];
    // A random tiny student gets every train question wrong: 6 mistakes.
    let m = rv["mistakes"].as_u64().unwrap();
    assert_eq!(m, 6, "{j}");
    // 2 feedback + 2 rationales + 2 reviews (each by the other teacher) a mistake.
    assert_eq!(j["teacher"]["calls"], 6 * m);
    assert_eq!(rv["teacher_calls_per_mistake"], 6.0);
    // Train items are 6 of q0..q9; rationales for even `a` are right ([4]), odd wrong ([2/5]),
    // the first train question's reviews have no score (invalid, kept raw): not accepted.
    let invalid = rv["reviews_invalid"].as_u64().unwrap();
    assert_eq!(rv["reviews"], 2 * m);
    let accepted = rv["per_teacher"]["big"]["accepted"].as_u64().unwrap();
    assert_eq!(
        accepted,
        rv["per_teacher"]["small"]["accepted"].as_u64().unwrap()
    );
    // a right rationale is rejected only where its review had no score (even `a`)
    assert_eq!(
        rv["per_teacher"]["big"]["rejected_correct"],
        (unratable % 2 == 0) as u64
    );
    // every accepted rationale is a right one, and every right one with a valid score is accepted
    assert_eq!(rv["per_teacher"]["big"]["accepted_correct"], accepted);
    // a mistake none of whose rationales was accepted is dropped whole (the release)
    // (both teachers reason alike, so a mistake keeps both rationales or neither)
    assert_eq!(rv["mistakes_with_accepted"], accepted);
    assert!(accepted > 0 && accepted < m, "{accepted} of {m}");
    assert_eq!(j["training_set"]["pairs"]["feedback"], 2 * accepted);
    assert_eq!(
        j["training_set"]["pairs"]["cot"].as_u64().unwrap_or(0),
        2 * accepted
    );
    // the first train question's two reviews had no score: invalid, kept raw, counted
    assert_eq!(invalid, 2);
    assert_eq!(j["eval_mode"], "cot");
    assert_eq!(j["accuracy_after"]["n"], 2);
    // who taught what: every pair is counted under the teacher it came from
    let from = |t: &str, k: &str| rv["per_teacher"][t][k].as_u64().unwrap();
    assert_eq!(
        from("big", "feedback_pairs") + from("small", "feedback_pairs"),
        2 * accepted
    );
    assert_eq!(
        from("big", "rationale_pairs") + from("small", "rationale_pairs"),
        2 * accepted
    );
    // what the student trained on is written beside it, a pair a line
    let pairs_file = d.path().join("runs/exp/student/pairs.jsonl");
    let trained = std::fs::read_to_string(&pairs_file).unwrap();
    assert_eq!(trained.lines().count() as u64, 4 * accepted);
    let first: serde_json::Value = serde_json::from_str(trained.lines().next().unwrap()).unwrap();
    assert_eq!(first["task"], "feedback", "{first}");
    assert!(first["prompt"].as_str().unwrap().starts_with("feedback:"));
    // each validation's answers are kept under its step: here one, at the end (step 2)
    let valid = d.path().join("runs/exp/student/stage-0/valid");
    let steps: Vec<String> = std::fs::read_dir(&valid)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(steps, ["step-2.jsonl"]);
    let answers = std::fs::read_to_string(valid.join("step-2.jsonl")).unwrap();
    assert_eq!(answers.lines().count(), 2, "valid_limit = 2");
    let a: serde_json::Value = serde_json::from_str(answers.lines().next().unwrap()).unwrap();
    assert!(a["output"].is_string() && a["correct"].is_boolean(), "{a}");
    // and the report charts their median length
    let html = std::fs::read_to_string(d.path().join(j["report"].as_str().unwrap())).unwrap();
    assert!(
        html.contains("median length of the validation answers"),
        "no answer-length chart"
    );
    // --dry-run builds the same set again and trains nothing
    std::fs::remove_file(&pairs_file).unwrap();
    let dry = mentor_json(d.path(), &["train", "exp.toml", "--dry-run"], &[]);
    assert_eq!(dry["tasks"]["feedback"]["pairs"], 2 * accepted, "{dry}");
    assert_eq!(dry["tasks"]["cot"]["pairs"], 2 * accepted);
    assert_eq!(dry["training_set"]["review"], *rv);
    assert_eq!(std::fs::read_to_string(&pairs_file).unwrap(), trained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapd_mines_again_after_training_and_pays_only_for_new_feedback() {
    let (_server, d, _) = committee_run("mining_rounds = 2\nretrain = \"continue\"").await;
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    let c = &j["rounds"];
    assert_eq!(c["recipe"], "mapd", "{j}");
    let points = c["points"].as_array().unwrap();
    let col = |k: &str| -> Vec<u64> { points.iter().map(|p| p[k].as_u64().unwrap()).collect() };
    assert_eq!(col("round"), [0, 1]);
    // A tiny student is still wrong on all 6 train questions after training: 6 new mistakes.
    assert_eq!(col("selected"), [6, 6]);
    assert_eq!(col("items_annotated"), [6, 6]);
    // round 1 trains on both rounds' pairs, twice round 0's
    assert_eq!(col("training_pairs")[1], 2 * col("training_pairs")[0]);
    let store = mentor_store::Store::open_run_dir(d.path().join("runs/exp")).unwrap();
    let in_round = |stage: &str, kind: &str, round: u32| {
        store
            .annotations(stage, kind)
            .unwrap()
            .into_iter()
            .filter(|a| a.round == round)
            .collect::<Vec<_>>()
    };
    for round in [0, 1] {
        assert_eq!(in_round("mine", "student-answer", round).len(), 6);
        assert_eq!(in_round("feedback", "feedback", round).len(), 12);
        assert_eq!(in_round("annotate", "rationale", round).len(), 12);
        assert_eq!(in_round("review", "review", round).len(), 12);
    }
    // Round 1's rationales and reviews repeat round 0's requests (cached, free); feedback is
    // paid again only where the student's answer changed.
    let before: HashMap<String, String> = in_round("mine", "student-answer", 0)
        .into_iter()
        .map(|a| (a.example_id, a.text))
        .collect();
    let changed = in_round("mine", "student-answer", 1)
        .iter()
        .filter(|a| before[&a.example_id] != a.text)
        .count() as u64;
    assert!(changed > 0, "the trained student answers differently");
    assert_eq!(col("teacher_calls"), [36, 36 + 2 * changed]);
    // The report shows the rounds; a rerun pays nothing and repeats the curve.
    let html = std::fs::read_to_string(d.path().join("runs/exp/report.html")).unwrap();
    assert!(html.contains("MAPD mining rounds"));
    let dir = d.path().to_path_buf();
    let again = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    assert_eq!(again["rounds"]["points"], j["rounds"]["points"]);
    assert_eq!(again["teacher"]["calls"], j["teacher"]["calls"]);
}

#[test]
fn minds_mirror_replay_of_the_release_dedupes_cots_and_reads_every_verdict() {
    let Some(j) = annotate_example("minds-mirror-replay", "minds-mirror") else {
        return;
    };
    let st = &j["training_set"];
    // 2 train questions × 5 recorded CoTs, 2 of them repeats; 5 self-evaluations of each distinct one.
    assert_eq!(
        (
            st["cots"].as_u64(),
            st["cots_duplicate"].as_u64(),
            st["cots_kept"].as_u64()
        ),
        (Some(10), Some(2), Some(8))
    );
    assert_eq!(st["self_evals"], 40);
    assert_eq!(st["self_evals_unparseable"], 0);
    assert_eq!(
        st["verdicts"],
        serde_json::json!({ "correct": 38, "wrong": 2 })
    );
    assert_eq!(
        st["pairs"],
        serde_json::json!({ "cot": 8, "self-eval": 40 })
    );
}

#[test]
fn the_local_teacher_answers_in_process_counts_tokens_and_is_cached() {
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 2048, 3);
    common::tiny_student(&d.path().join("teacher"), 2048, 3);
    let rows: String = (0..6)
        .map(|i| {
            format!(
                "{{\"id\": \"q{i}\", \"question\": \"What is {i} plus 1?\", \"answer\": {}}}\n",
                i + 1
            )
        })
        .collect();
    std::fs::write(d.path().join("toy.jsonl"), rows).unwrap();
    std::fs::write(
        d.path().join("exp.toml"),
        "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [1.0, 0.0, 0.0]\n\n\
         [teachers.local]\nkind = \"local\"\nmodel = \"teacher\"\nmax_in_flight = 4\nmax_tokens = 12\n\n\
         [recipe]\nname = \"minds-mirror\"\ncots_per_question = 2\nevals_per_cot = 1\n",
    )
    .unwrap();
    let annotate = || mentor_json(d.path(), &["annotate", "exp.toml"], &[]);
    let j = annotate();
    let cots = &j["stages"]["cots"]["total"];
    assert_eq!(cots["done"], 12, "{j}");
    assert_eq!(cots["failed"], 0);
    // A random model rarely writes an answer: replies without one are kept raw and counted.
    assert_eq!(j["annotations"]["rationales"], 12);
    assert_eq!(j["annotations"]["unparseable"], cots["unparseable"]);
    assert!(
        cots["tokens"].as_u64().unwrap() > 12 * 20,
        "exact prompt + completion token counts"
    );
    assert_eq!(cots["cost_usd"], 0.0);
    // Two seeded samples of one question differ (sampling at the recipe's temperature): no
    // duplicate among the 12, so each gets its one self-evaluation.
    assert_eq!(j["training_set"]["cots_duplicate"], 0, "{j}");
    assert_eq!(j["stages"]["self-evals"]["total"]["done"], 12);
    // Exact token counts within the limit: no reply is longer than max_tokens = 12, and the
    // ones that reached it are the ones recorded as cut (a random model rarely stops by itself)
    let l = &j["ledger"][0];
    let (ok, cut, out) = (
        l["calls_ok"].as_u64().unwrap(),
        l["calls_truncated"].as_u64().unwrap(),
        l["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(ok, 24);
    assert!(out <= 12 * ok && out >= 12 * cut, "{l}");
    assert!(cut > 0, "{l}");
    assert_eq!(cots["truncated"], j["training_set"]["cots_truncated"]);
    // A rerun pays for nothing: every unit is already in the store.
    let again = annotate();
    assert_eq!(again["stages"]["cots"]["total"]["already"], 12);
    assert_eq!(again["stages"]["cots"]["total"]["done"], 0);
}

/// A teacher for "What is a plus b?": chains of thought, and revisions that name step 1 as
/// flawed and end in the right answer. Counts the revision requests it gets.
fn revising_teacher(revisions: Arc<Mutex<Vec<String>>>) -> mentor_teacher::loopback::Answerer {
    Arc::new(move |p: &str| {
        let nums: Vec<i64> = p
            .split("What is ")
            .nth(1)
            .map(|s| {
                s.split(|c: char| !c.is_ascii_digit())
                    .filter_map(|t| t.parse().ok())
                    .take(2)
                    .collect()
            })
            .unwrap_or_default();
        let sum = nums.iter().sum::<i64>();
        if p.contains("First flawed step") {
            revisions.lock().unwrap().push(p.to_string());
            format!("Step 1 adds wrongly.\nFirst flawed step: 1\nRevised explanation:\nWe add {} and {}.\nThe answer is {sum}.", nums[0], nums[1])
        } else {
            format!("We add the two numbers. The answer is {sum}.")
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elad_rounds_send_the_most_uncertain_items_within_budget_and_resume() {
    let revisions: Arc<Mutex<Vec<String>>> = Arc::default();
    let server = LoopbackServer::start(LoopbackConfig {
        answer: revising_teacher(revisions.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = sums_run(20, 3);
    std::fs::write(
        d.path().join("exp.toml"),
        format!(
            "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [0.6, 0.2, 0.2]\n\n\
             [teachers.loop]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"loopback\"\nmax_in_flight = 2\n\n\
             [recipe]\nname = \"elad\"\nseed_fraction = 0.1\nrounds = 2\nround_budget = 3\nreveal_gold = true\n\n\
             [recipe.probe]\nsamples = 2\nmax_new_tokens = 24\nmax_steps = 2\nanswer_tokens = 4\n\n{TRAIN_AND_EVAL}",
            server.base_url
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    // 12 train items: 2 seed chains of thought, then 3 revisions a round for 2 rounds.
    assert_eq!(j["teacher"]["calls"], 2 + 3 + 3, "{j}");
    assert_eq!(revisions.lock().unwrap().len(), 6);
    let points = j["rounds"]["points"].as_array().unwrap();
    let col = |k: &str| -> Vec<u64> { points.iter().map(|p| p[k].as_u64().unwrap()).collect() };
    assert_eq!(col("round"), [0, 1, 2]);
    assert_eq!(col("items_annotated"), [2, 5, 8]);
    assert_eq!(col("teacher_calls"), [2, 5, 8]);
    assert!(col("teacher_tokens").windows(2).all(|w| w[0] < w[1]));
    assert_eq!(col("training_pairs"), [2, 5, 8], "seed CoTs and revisions");
    // the test is scored once, with the round validation preferred (ties: the earliest)
    let best = j["rounds"]["best_round"].as_u64().unwrap() as usize;
    assert_eq!(
        j["rounds"]["tested_round"], best,
        "tested_round defaults to the best"
    );
    assert_eq!(j["student"], points[best]["model"]);
    let acc: Vec<f64> = points
        .iter()
        .map(|p| p["valid_accuracy"].as_f64().unwrap())
        .collect();
    let top = acc.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(best, acc.iter().position(|&a| a == top).unwrap(), "{acc:?}");
    // Each round sent exactly its budget, and the items the scorer ranked highest.
    let store = mentor_store::Store::open_run_dir(d.path().join("runs/exp")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for (round, pool) in [(1u32, 10usize), (2, 7)] {
        let rows = store.selections("elad-select", round).unwrap();
        assert_eq!(
            rows.len(),
            pool,
            "round {round} scores every unannotated item"
        );
        let chosen: Vec<_> = rows.iter().filter(|s| s.selected).collect();
        assert_eq!(chosen.len(), 3);
        let lowest_chosen = chosen
            .iter()
            .map(|s| s.score.unwrap())
            .fold(f64::MAX, f64::min);
        let highest_left = rows
            .iter()
            .filter(|s| !s.selected)
            .map(|s| s.score.unwrap())
            .fold(f64::MIN, f64::max);
        assert!(lowest_chosen >= highest_left, "round {round}: {rows:?}");
        for s in &rows {
            let r: serde_json::Value = serde_json::from_str(s.reason.as_deref().unwrap()).unwrap();
            for part in ["instability", "entropy", "least_confidence"] {
                let v = r[part].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&v), "{part} {v}");
            }
            // ELAD ranks by the mean of instability and answer entropy
            let want = 0.5 * (r["instability"].as_f64().unwrap() + r["entropy"].as_f64().unwrap());
            assert!((s.score.unwrap() - want).abs() < 1e-12, "{r}");
        }
        for s in chosen {
            assert!(seen.insert(s.example_id.clone()), "an item revised twice");
        }
    }
    // The teacher saw the student's own explanation as numbered steps, and the gold answer.
    let first = revisions.lock().unwrap()[0].clone();
    assert!(
        first.contains("A student wrote this explanation")
            && first.contains("The correct answer is"),
        "{first}"
    );
    let revs = store.annotations("revise", "revision").unwrap();
    assert_eq!(revs.len(), 6);
    assert!(revs
        .iter()
        .all(|a| a.parse_ok && a.parsed.as_ref().unwrap()["first_flawed_step"] == 1));
    assert_eq!(revs.iter().filter(|a| a.round == 2).count(), 3);
    // The report plots the curve; a rerun pays nothing and selects nothing anew.
    let html = std::fs::read_to_string(d.path().join("runs/exp/report.html")).unwrap();
    assert!(html.contains("validation accuracy per teacher token"));
    let dir = d.path().to_path_buf();
    let again = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    assert_eq!(again["teacher"]["calls"], 8);
    assert_eq!(revisions.lock().unwrap().len(), 6);
    assert_eq!(again["rounds"]["points"], j["rounds"]["points"]);
}

/// ELAD's baselines probe the pool for what they rank by and nothing more: least confidence reads
/// the greedy explanations only, answer entropy adds the samples, and the random order probes
/// only the items it chose (their explanations are what the teacher revises). The selection
/// record says which parts were computed (null: not computed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elad_baselines_probe_only_what_they_rank_by() {
    for (strategy, computed) in [
        ("least-confidence", ["least_confidence"].as_slice()),
        ("answer-entropy", ["entropy", "least_confidence"].as_slice()),
        ("random", [].as_slice()),
    ] {
        let revisions: Arc<Mutex<Vec<String>>> = Arc::default();
        let server = LoopbackServer::start(LoopbackConfig {
            answer: revising_teacher(revisions.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
        // the random baseline's run also scores its last round on test, whatever validation says
        let tested = if strategy == "random" {
            "tested_round = \"last\"\n"
        } else {
            ""
        };
        let d = sums_run(20, 3);
        std::fs::write(
            d.path().join("exp.toml"),
            format!(
                "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [0.6, 0.2, 0.2]\n\n\
                 [teachers.loop]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"loopback\"\nmax_in_flight = 2\n\n\
                 [recipe]\nname = \"elad\"\nselection = \"{strategy}\"\nseed_fraction = 0.1\nrounds = 1\nround_budget = 3\n{tested}\n\
                 [recipe.probe]\nsamples = 2\nmax_new_tokens = 24\nmax_steps = 2\nanswer_tokens = 4\n\n{TRAIN_AND_EVAL}",
                server.base_url
            ),
        )
        .unwrap();
        let dir = d.path().to_path_buf();
        let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
            .await
            .unwrap();
        assert_eq!(j["teacher"]["calls"], 2 + 3, "{strategy}: {j}");
        let points = j["rounds"]["points"].as_array().unwrap();
        let tested = j["rounds"]["tested_round"].as_u64().unwrap() as usize;
        if strategy == "random" {
            assert_eq!(tested, 1, "the last round: {j}");
        } else {
            assert_eq!(j["rounds"]["tested_round"], j["rounds"]["best_round"]);
        }
        assert_eq!(j["student"], points[tested]["model"], "{strategy}");
        // every strategy revises the student's own explanation
        assert_eq!(revisions.lock().unwrap().len(), 3, "{strategy}");
        let store = mentor_store::Store::open_run_dir(d.path().join("runs/exp")).unwrap();
        let rows = store.selections("elad-select", 1).unwrap();
        assert_eq!(
            rows.len(),
            10,
            "{strategy}: every unannotated item is recorded"
        );
        let reason = |s: &mentor_store::Selection| -> serde_json::Value {
            serde_json::from_str(s.reason.as_deref().unwrap()).unwrap()
        };
        for s in &rows {
            let r = reason(s);
            for part in ["instability", "entropy", "least_confidence"] {
                // random probes its chosen items only: their least confidence is there
                let want = computed.contains(&part)
                    || (strategy == "random" && s.selected && part == "least_confidence");
                match r[part].as_f64() {
                    Some(v) => {
                        assert!(want, "{strategy}: {part} computed: {r}");
                        assert!((0.0..=1.0).contains(&v), "{strategy}: {part} {v}");
                    }
                    None => assert!(!want && r[part].is_null(), "{strategy}: {part}: {r}"),
                }
            }
        }
        let chosen: Vec<_> = rows.iter().filter(|s| s.selected).collect();
        assert_eq!(chosen.len(), 3, "{strategy}");
        if strategy != "random" {
            let lowest_chosen = chosen
                .iter()
                .map(|s| s.score.unwrap())
                .fold(f64::MAX, f64::min);
            let highest_left = rows
                .iter()
                .filter(|s| !s.selected)
                .map(|s| s.score.unwrap())
                .fold(f64::MIN, f64::max);
            assert!(lowest_chosen >= highest_left, "{strategy}: {rows:?}");
        }
    }
}

/// A teacher cut off at its token limit: the loopback server honours `max_tokens` as a real one
/// does (`finish_reason: "length"`). The cut replies are counted apart from unparseable ones,
/// in the stage totals, the training set, the ledger and a warning naming the setting to raise,
/// and none is trained on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_cut_at_the_token_limit_are_counted_named_and_not_trained_on() {
    // even `a`: the answer, then rambling on (cut at 40 tokens = 160 characters, after the
    // answer sentence: the cut reply still parses); odd: a short, complete one
    let server = LoopbackServer::start(LoopbackConfig {
        answer: Arc::new(|p: &str| {
            let n: Vec<i64> = p
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|s| s.parse().ok())
                .take(2)
                .collect();
            let (a, b) = (n[0], n[1]);
            let more = if a % 2 == 0 {
                " Next, let us also check it another way, slowly and step by step.".repeat(4)
            } else {
                String::new()
            };
            format!(
                "{a} plus {b} makes {}. The answer is {}.{more}",
                a + b,
                a + b
            )
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = sums_run(10, 2);
    std::fs::write(
        d.path().join("exp.toml"),
        format!(
            "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [0.6, 0.2, 0.2]\n\n\
             [teachers.loop]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"loopback\"\nmax_tokens = 40\nprice_out_per_mtok = 10.0\n\n\
             [recipe]\nname = \"step-by-step\"\n\n{TRAIN_AND_EVAL}",
            server.base_url
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    // which train questions have an even `a`: their replies were cut
    let split = mentor_data::load_dataset(&mentor_data::DatasetSpec {
        path: Some(d.path().join("toy.jsonl")),
        task: Some(mentor_core::TaskKind::Numeric),
        fractions: [0.6, 0.2, 0.2],
        ..Default::default()
    })
    .unwrap();
    let even = split
        .split(mentor_core::Split::Train)
        .iter()
        .filter(|e| {
            let a: i64 = e.question["What is ".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            a % 2 == 0
        })
        .count() as u64;
    assert!(even > 0 && even < 6, "{even}");
    let total = &j["teacher_stages"]["cots"];
    assert_eq!(total["done"], 6, "{j}");
    assert_eq!(total["truncated"], even);
    assert_eq!(total["unparseable"], 0, "the cut replies still parse");
    let st = &j["training_set"];
    assert_eq!(st["cots_truncated"], even);
    assert_eq!(
        st["pairs"]["rationale"],
        6 - even,
        "a cut reply is never trained on"
    );
    assert_eq!(st["pairs"]["label"], 6);
    let warnings = j["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains(&format!(
            "{even} of 6 replies were cut at the token limit (40 tokens)"
        )) && w.contains("[teachers.loop] max_tokens")
            && w.contains("at most $"),
        "{w}"
    );
    // the ledger says so too: cut replies of successful calls, per teacher
    let ledger = mentor_json(d.path(), &["ledger", "runs/exp"], &[]);
    assert_eq!(ledger["teachers"][0]["calls_truncated"], even, "{ledger}");
    assert_eq!(ledger["teachers"][0]["calls_ok"], 6);

    // The fix: raise the limit and ask again for the cut replies only.
    let cfg = std::fs::read_to_string(d.path().join("exp.toml")).unwrap();
    std::fs::write(
        d.path().join("exp.toml"),
        cfg.replace("max_tokens = 40", "max_tokens = 200"),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let a = tokio::task::spawn_blocking(move || {
        mentor_json(&dir, &["annotate", "exp.toml", "--retry-truncated"], &[])
    })
    .await
    .unwrap();
    let cots = &a["stages"]["cots"]["total"];
    assert_eq!(cots["done"], even, "only the cut ones are asked again: {a}");
    assert_eq!(cots["already"], 6 - even);
    assert_eq!(cots["truncated"], 0);
    let ledger = mentor_json(d.path(), &["ledger", "runs/exp"], &[]);
    assert_eq!(ledger["teachers"][0]["calls_ok"], 6 + even);
    // the training set the store now makes: every rationale complete, all six trained on
    assert_eq!(a["training_set"]["pairs"]["rationale"], 6, "{a}");
    assert_eq!(a["training_set"]["cots_truncated"], 0);
}

/// `[recipe] kd` trains the student on its pairs with an embedded teacher's logits mixed in:
/// the step log carries the divergence; a teacher with another tokenizer, or one that is not
/// embedded, is refused with both named.
#[test]
fn kd_mixes_an_embedded_teachers_logits_into_training() {
    let d = tempfile::tempdir().unwrap();
    common::tiny_student(&d.path().join("student"), 256, 3);
    common::tiny_student(&d.path().join("teacher"), 256, 9);
    common::write_sums_dataset(d.path(), 12);
    let write = |teacher_model: &str, kind: &str| {
        std::fs::write(
            d.path().join("exp.toml"),
            format!(
                "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [0.5, 0.25, 0.25]\n\n\
                 [teachers.big]\nkind = \"{kind}\"\nmodel = \"{teacher_model}\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n\
                 [student]\nmodel = \"student\"\nlora_rank = 0\n\n\
                 [recipe]\nname = \"standard\"\nkd = {{ teacher = \"big\", loss = \"reverse-kl\", weight = 0.7, temperature = 2.0 }}\n\n\
                 [train]\nmax_steps = 3\nbatch_size = 4\nsave_every = 0\n"
            ),
        )
        .unwrap();
    };
    write("teacher", "local");
    let j = mentor_json(d.path(), &["train", "exp.toml"], &[]);
    assert!(j["ok"].as_bool().unwrap_or(true), "{j}");
    let log = std::fs::read_to_string(d.path().join("runs/exp/student/stage-0/log.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .collect();
    assert_eq!(steps.len(), 3, "{log}");
    assert!(
        steps
            .iter()
            .all(|s| s["log"]["kd_loss"].as_f64().unwrap() > 0.0),
        "{log}"
    );

    // a teacher reading other tokens: refused, both named
    let words = mentor_model::TextTokenizer::word_level(300);
    let cfg = mentor_model::LlamaConfig::tiny(300);
    mentor_model::load::Student::random(&cfg, &candle_core::Device::Cpu, 1)
        .unwrap()
        .save_hf(&d.path().join("other"))
        .unwrap();
    words.save(&d.path().join("other")).unwrap();
    write("other", "local");
    let out = mentor_out(d.path(), &["train", "exp.toml", "--run-dir", "runs/other"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("do not share a tokenizer")
            && err.contains("other")
            && err.contains("student"),
        "{err}"
    );

    // an API teacher has no logits to give
    write("teacher", "openai");
    let out = mentor_out(d.path(), &["train", "exp.toml", "--run-dir", "runs/api"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("recipe.kd.teacher") && err.contains("kind = \"local\""),
        "{err}"
    );
}

/// The kd lines added to a recipe: logits from `[teachers.logits]`, an embedded teacher that
/// writes nothing (`annotate = false`) beside the HTTP teachers that write the rationales.
const KD_FROM_LOGITS: &str =
    "kd = { teacher = \"logits\", loss = \"forward-kl\", weight = 0.5, temperature = 2.0 }";
const LOGITS_TEACHER: &str =
    "\n[teachers.logits]\nkind = \"local\"\nmodel = \"teacher\"\nannotate = false\n";

/// Every training stage of the run in `dir` logged a positive KD loss on each of its steps;
/// returns how many stages trained.
fn kd_in_every_stage(dir: &Path) -> usize {
    let student = dir.join("runs/exp/student");
    let mut stages = 0;
    for e in std::fs::read_dir(&student).unwrap() {
        let log = e.unwrap().path().join("log.jsonl");
        let Ok(log) = std::fs::read_to_string(&log) else {
            continue;
        };
        let steps: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "step")
            .collect();
        assert!(!steps.is_empty(), "{log}");
        assert!(
            steps
                .iter()
                .all(|s| s["log"]["kd_loss"].as_f64().is_some_and(|x| x > 0.0)),
            "{log}"
        );
        stages += 1;
    }
    stages
}

/// `[recipe] kd` composes with the three recipes that train on teacher text: step-by-step,
/// Mind's Mirror (both of its stages) and MAPD each train with the embedded teacher's logits,
/// while the rationales come from other (HTTP) teachers: the logits-only teacher is asked for
/// nothing, and it is not counted as a committee member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kd_composes_with_every_recipe_that_trains_on_teacher_text() {
    for (recipe, calls) in [
        // 6 train items: a rationale each
        ("name = \"step-by-step\"\nalpha = 0.5", 6),
        // 6 × (2 CoTs + 2 × 1 self-evaluation)
        (
            "name = \"minds-mirror\"\ncots_per_question = 2\nevals_per_cot = 1",
            24,
        ),
    ] {
        // a fresh teacher each: it answers a prompt by how often it has seen it
        let server = LoopbackServer::start(LoopbackConfig {
            answer: mirror_teacher(),
            ..Default::default()
        })
        .await
        .unwrap();
        let d = sums_run(10, 2);
        common::tiny_student(&d.path().join("teacher"), 2048, 9);
        std::fs::write(
            d.path().join("exp.toml"),
            format!(
                "[data]\npath = \"toy.jsonl\"\ntask = \"numeric\"\nfractions = [0.6, 0.2, 0.2]\n\n\
                 [teachers.loop]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"loopback\"\nmax_in_flight = 1\n\
                 {LOGITS_TEACHER}\n\
                 [recipe]\n{recipe}\n{KD_FROM_LOGITS}\n\n{TRAIN_AND_EVAL}",
                server.base_url
            ),
        )
        .unwrap();
        let dir = d.path().to_path_buf();
        let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
            .await
            .unwrap();
        assert_eq!(j["teacher"]["calls"], calls, "{recipe}: {j}");
        let stages = kd_in_every_stage(d.path());
        let expected = if recipe.contains("minds-mirror") {
            2
        } else {
            1
        };
        assert_eq!(stages, expected, "{recipe}: {j}");
        let ledger = mentor_json(d.path(), &["ledger", "runs/exp"], &[]);
        let names: Vec<&str> = ledger["teachers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["teacher"].as_str().unwrap_or_default())
            .collect();
        assert!(
            names.contains(&"loop") && !names.contains(&"logits"),
            "{ledger}"
        );
    }

    // MAPD: a committee of two reviewing each other; the third, logits-only teacher is no peer
    let (_server, d, _) = committee_run(KD_FROM_LOGITS).await;
    common::tiny_student(&d.path().join("teacher"), 2048, 9);
    let cfg = std::fs::read_to_string(d.path().join("exp.toml")).unwrap();
    std::fs::write(d.path().join("exp.toml"), cfg + LOGITS_TEACHER).unwrap();
    let dir = d.path().to_path_buf();
    let j = tokio::task::spawn_blocking(move || distill(&dir, &[]))
        .await
        .unwrap();
    let rv = &j["training_set"]["review"];
    // as in the run without KD: 2 feedback + 2 rationales + 2 reviews a mistake
    assert_eq!(rv["teacher_calls_per_mistake"], 6.0, "{j}");
    assert_eq!(
        rv["per_teacher"].as_object().unwrap().len(),
        2,
        "{}",
        rv["per_teacher"]
    );
    assert_eq!(kd_in_every_stage(d.path()), 1, "{j}");

    // a teacher that writes nothing must give the logits: otherwise it is refused, named
    let cfg = std::fs::read_to_string(d.path().join("exp.toml")).unwrap();
    std::fs::write(d.path().join("exp.toml"), cfg.replace(KD_FROM_LOGITS, "")).unwrap();
    let out = mentor_out(
        d.path(),
        &["distill", "exp.toml", "--run-dir", "runs/unused"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("teachers.logits.annotate") && err.contains("never be used"),
        "{err}"
    );
}
