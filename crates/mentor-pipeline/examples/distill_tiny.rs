//! A recipe run through the library, not the CLI: step-by-step distillation of a tiny random
//! student on toy sums, with a teacher that is a plain Rust closure behind mentor's loopback
//! OpenAI-compatible server (the same call path an API teacher takes: cache, budget, ledger).
//!
//!     cargo run -p mentor-pipeline --example distill_tiny [-- RUN_DIR]
//!
//! It takes seconds; the tiny model learns nothing worth scoring, so it prints what the run did
//! rather than how well. Swap the config's student, teacher and data for real ones and the same
//! five lines of `main` run a real experiment.

use mentor_pipeline::config::Config;
use mentor_pipeline::distill::{distill, DistillOptions};
use mentor_teacher::loopback::{LoopbackConfig, LoopbackServer};
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mentor-distill-tiny"));
    let run = run(&dir)?;
    println!("{}", run.human);
    println!(
        "teacher calls: {}, training pairs: {}",
        run.summary["teacher"]["calls"], run.summary["training_set"]["pairs"]
    );
    Ok(())
}

/// The example itself, run by `cargo test` too (`test = true` in Cargo.toml).
#[test]
fn the_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path()).unwrap();
    assert_eq!(run.summary["teacher"]["calls"], 20, "{}", run.summary);
    assert_eq!(run.summary["training_set"]["pairs"]["label"], 20);
}

fn run(dir: &std::path::Path) -> anyhow::Result<mentor_pipeline::distill::Distilled> {
    std::fs::create_dir_all(dir)?;

    // A tiny random student (a real byte-level tokenizer, HF directory layout).
    let student_dir = dir.join("student");
    let tok = mentor_model::TextTokenizer::byte_level();
    let mut arch = mentor_model::LlamaConfig::tiny(tok.vocab_size());
    arch.max_position_embeddings = 1024;
    mentor_model::load::Student::random(&arch, &candle_core::Device::Cpu, 7)?
        .save_hf(&student_dir)?;
    tok.save(&student_dir)?;

    // Toy data: "What is a plus b?"
    let rows: String = (0..24)
        .map(|i| {
            format!(
                "{{\"id\": \"q{i}\", \"question\": \"What is {i} plus {}?\", \"answer\": {}}}\n",
                i + 3,
                2 * i + 3
            )
        })
        .collect();
    std::fs::write(dir.join("sums.jsonl"), rows)?;

    // The teacher: adds the two numbers it is asked about and says so.
    let rt = tokio::runtime::Runtime::new()?;
    let server = rt.block_on(LoopbackServer::start(LoopbackConfig {
        answer: Arc::new(|prompt: &str| {
            let n: Vec<i64> = prompt
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|s| s.parse().ok())
                .take(2)
                .collect();
            format!(
                "We add {} and {}. The answer is {}.",
                n[0],
                n[1],
                n[0] + n[1]
            )
        }),
        ..Default::default()
    }))?;

    // The experiment, as a config file would say it.
    let cfg = Config::parse(
        &format!(
            "[data]\npath = {:?}\ntask = \"numeric\"\n\n\
             [teachers.toy]\nkind = \"openai\"\nbase_url = {:?}\nmodel = \"toy-teacher\"\n\n\
             [student]\nmodel = {:?}\n\n\
             [recipe]\nname = \"step-by-step\"\nalpha = 0.5\n\n\
             [train]\nmax_steps = 4\nbatch_size = 4\nmax_len = 256\n\n\
             [eval]\nmax_new_tokens = 8\nvalid_limit = 2\n",
            dir.join("sums.jsonl").display().to_string(),
            server.base_url,
            student_dir.display().to_string(),
        ),
        &dir.join("exp.toml"),
    )?;

    let run = distill(cfg, dir.join("run"), &DistillOptions::default())?;
    drop(server);
    Ok(run)
}
