//! `mentor generate`: batched generation from a model for a file of prompts.

use crate::output::Summary;
use anyhow::{anyhow, bail, Context, Result};
use mentor_model::{ChatMessage, SamplingParams};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Generate completions for a file of prompts with a local model, many at once.
///
/// PROMPTS is JSONL, one `{"prompt": "…"}` per line (optional per row: "id", "system",
/// "seed", "max_tokens"). Chat models get their chat template applied (turn it off with
/// --raw); generation stops at the model's end-of-turn token, a --stop string or --max-tokens.
/// Results go to --out as JSONL ({"id", "prompt", "text", "tokens", "finish_reason",
/// "logprob"}), or, with --json, inside the one-line summary.
///
/// Example: mentor generate --model smollm2-135m --prompts prompts.jsonl --max-tokens 64 --json
#[derive(clap::Args)]
pub struct Args {
    /// Model: an asset name (smollm2-135m), a .gguf file or a Hugging Face directory.
    #[arg(long)]
    model: String,
    /// JSONL file of {"prompt": …} rows.
    #[arg(long)]
    prompts: PathBuf,
    /// Most new tokens per prompt.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Seed of row i is seed + i (unless the row sets its own).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop strings (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Prompts decoded together.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Feed prompts as they are, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Write generations here as JSONL.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads for the tensor kernels (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<Summary> {
    crate::models::set_threads(a.threads);
    let mut skipped = vec![];
    let rows = mentor_data::read_rows(&a.prompts, false, &mut skipped)?;
    if rows.is_empty() {
        bail!("{}: no prompts", a.prompts.display());
    }
    let base = SamplingParams {
        max_new_tokens: a.max_tokens,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
        stop: a.stop.clone(),
        ignore_eos: false,
    };
    base.validate().map_err(|e| anyhow!(e))?;
    // Check every row before loading the model: a bad row fails fast, naming file and line.
    struct Prompt {
        id: serde_json::Value,
        text: String,
        system: Option<String>,
        params: SamplingParams,
        at: String,
    }
    let mut prompts = vec![];
    for (i, row) in rows.iter().enumerate() {
        let at = format!("{}:{}", a.prompts.display(), row.line);
        let text = row
            .get("prompt")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("{at}: expected a string field \"prompt\""))?;
        let mut p = base.clone();
        p.seed = row
            .get("seed")
            .and_then(|v| v.as_u64())
            .unwrap_or(a.seed + i as u64);
        if let Some(m) = row.get("max_tokens") {
            p.max_new_tokens = m
                .as_u64()
                .ok_or_else(|| anyhow!("{at}: \"max_tokens\" must be a non-negative integer"))?
                as usize;
        }
        prompts.push(Prompt {
            id: row.get("id").cloned().unwrap_or(json!(i)),
            text: text.to_string(),
            system: row.get("system").and_then(|v| v.as_str()).map(String::from),
            params: p,
            at,
        });
    }
    let loaded = crate::models::load_for_inference(&a.model)?;
    let tok = &loaded.tokenizer;
    let mut requests = vec![];
    let mut meta = vec![];
    for p in prompts {
        let text = if a.raw {
            p.text.clone()
        } else {
            let mut msgs = vec![];
            if let Some(s) = &p.system {
                msgs.push(ChatMessage::new("system", s.clone()));
            }
            msgs.push(ChatMessage::new("user", p.text.clone()));
            tok.apply_chat_template(&msgs, true)
                .with_context(|| p.at.clone())?
        };
        let ids = tok.encode(&text).with_context(|| p.at.clone())?;
        meta.push((p.id, p.text));
        requests.push((ids, p.params));
    }
    let bar = crate::progress::items_bar(requests.len() as u64, "generate");
    let started = Instant::now();
    let gens = mentor_model::generate(&loaded.model, tok, &requests, a.batch, &mut |n| {
        bar.inc(n as u64)
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let new_tokens: usize = gens.iter().map(|g| g.token_ids.len()).sum();
    let items: Vec<serde_json::Value> = gens
        .iter()
        .zip(&meta)
        .map(|(g, (id, prompt))| {
            json!({"id": id, "prompt": prompt, "text": g.text, "tokens": g.token_ids.len(), "token_ids": g.token_ids,
                   "finish_reason": g.finish_reason, "logprob": g.sequence_logprob()})
        })
        .collect();
    if let Some(out) = &a.out {
        let mut f = std::fs::File::create(out).with_context(|| out.display().to_string())?;
        for it in &items {
            writeln!(f, "{it}")?;
        }
    }
    let mut human = String::new();
    if a.out.is_none() {
        for it in &items {
            human.push_str(&format!(
                "[{}] {}\n",
                it["id"],
                it["text"].as_str().unwrap_or_default().trim()
            ));
        }
    }
    human.push_str(&format!(
        "{} prompts, {new_tokens} new tokens in {secs:.1}s ({:.1} tokens/s){}",
        items.len(),
        new_tokens as f64 / secs,
        a.out
            .as_ref()
            .map(|o| format!(", written to {}", o.display()))
            .unwrap_or_default()
    ));
    Ok(Summary {
        human,
        json: json!({
            "model": loaded.path,
            "prompts": items.len(),
            "new_tokens": new_tokens,
            "seconds": secs,
            "tokens_per_s": new_tokens as f64 / secs,
            "generations": if a.out.is_some() { serde_json::Value::Null } else { json!(items) },
            "out": a.out,
        }),
    })
}
