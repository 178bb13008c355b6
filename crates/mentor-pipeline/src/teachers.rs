//! Building the configured teachers: `[teachers.NAME]` → a [`Teacher`] on the shared call path.

use crate::config::{Config, TeacherConfig, TeacherKind};
use anyhow::{anyhow, bail, Result};
use mentor_core::TaskKind;
use mentor_data::Dataset;
use mentor_teacher::anthropic::AnthropicBackend;
use mentor_teacher::openai::OpenAiBackend;
use mentor_teacher::replay::ReplayBackend;
use mentor_teacher::{
    ApiKey, Backend, Budget, Pricing, RetryPolicy, SharedStore, Teacher, TeacherOptions,
};
use std::sync::Arc;
use std::time::Duration;

/// The embedded teacher when `[teachers.X] kind = "local"` names no model.
pub const DEFAULT_LOCAL_TEACHER: &str = "qwen2.5-coder-1.5b";

/// The reply limit of an embedded teacher whose config names none, by task kind: a maths
/// derivation needs room (~512 tokens) that a multiple-choice, NLI or yes/no rationale does not
/// (~256), and on a CPU the whole batch decodes until its longest reply stops or hits the limit.
pub fn local_default_max_tokens(task: TaskKind) -> u32 {
    match task {
        TaskKind::Numeric | TaskKind::Equation => 512,
        _ => 256,
    }
}

/// The limit a teacher's replies are cut at when its config sets it or picks it by task kind
/// (an embedded teacher); `None` leaves the stage's own limit (512).
pub fn reply_limit(t: &TeacherConfig, task: TaskKind) -> Option<u32> {
    match (t.max_tokens, t.kind) {
        (Some(m), _) => Some(m),
        (None, TeacherKind::Local) => Some(local_default_max_tokens(task)),
        (None, _) => None,
    }
}

/// What a teacher's tokens cost: the config's `price_*` keys over the dated table
/// (`mentor_teacher::prices`); free for replay, the embedded teacher and a server on this
/// machine or the local network; `None` (unknown) for a remote API model the table does not know.
pub fn pricing(t: &TeacherConfig) -> Option<Pricing> {
    let provider = match t.kind {
        TeacherKind::Openai => "openai",
        TeacherKind::Anthropic => "anthropic",
        TeacherKind::Replay | TeacherKind::Local => return Some(Pricing::default()),
    };
    let table = mentor_teacher::prices::lookup(provider, t.model.as_deref().unwrap_or_default());
    let free = t.kind == TeacherKind::Openai && t.base_url.as_deref().is_some_and(is_private_url);
    let base = match (t.price_in_per_mtok, t.price_out_per_mtok) {
        (None, None) if table.is_none() && free => Pricing::default(),
        (None, None) => table?,
        (input, output) => {
            let t = table.unwrap_or_default();
            Pricing::with_batch_discount(
                input.unwrap_or(t.input_per_mtok),
                output.unwrap_or(t.output_per_mtok),
            )
        }
    };
    Some(Pricing {
        batch_input_per_mtok: t
            .price_batch_in_per_mtok
            .unwrap_or(base.batch_input_per_mtok),
        batch_output_per_mtok: t
            .price_batch_out_per_mtok
            .unwrap_or(base.batch_output_per_mtok),
        ..base
    })
}

/// A server on this machine or a private network (vLLM, llama.cpp, Ollama next door): nobody
/// bills per token for it.
fn is_private_url(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".local"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The run-wide budget from `[budget]`, starting from what the run's ledger already spent.
pub fn budget(cfg: &Config, store: &SharedStore) -> Result<Arc<Budget>> {
    let b = Budget::new(
        cfg.budget.max_calls,
        cfg.budget.max_tokens,
        cfg.budget.max_usd,
    );
    for row in store.lock().unwrap().ledger()? {
        b.preload(
            row.calls_ok + row.calls_failed,
            row.prompt_tokens + row.completion_tokens,
            row.cost_usd,
        );
    }
    Ok(Arc::new(b))
}

/// All teachers of a run's config under the run's budget; an embedded teacher loads its model
/// on its first call, and frees it when the last handle is dropped.
pub fn for_run(r: &crate::run::Run) -> Result<Vec<Arc<Teacher>>> {
    let budget = budget(&r.cfg, &r.store)?;
    build(&r.cfg, &r.ds, &r.store, &budget)
}

/// The config's annotating teachers (not the `annotate = false` ones kept for `[recipe] kd`'s
/// logits), in name order.
pub fn build(
    cfg: &Config,
    ds: &Dataset,
    store: &SharedStore,
    budget: &Arc<Budget>,
) -> Result<Vec<Arc<Teacher>>> {
    if cfg.teachers.is_empty() {
        bail!("the config has no [teachers.NAME] table; add one (see `mentor init`)");
    }
    for (name, t) in cfg.annotating_teachers() {
        if pricing(t).is_some() {
            continue;
        }
        let model = t.model.as_deref().unwrap_or_default();
        let fix = format!(
            "set `[teachers.{name}] price_in_per_mtok` and `price_out_per_mtok` (0 for a free server)"
        );
        if let Some(usd) = cfg.budget.max_usd {
            bail!(
                "teacher `{name}`: no known price for `{model}` (mentor's table is of {}), so the ${usd} budget could not stop it; {fix}",
                mentor_teacher::prices::PRICES_AS_OF
            );
        }
        tracing::warn!(
            "teacher `{name}`: no known price for `{model}`: its cost shows as unknown; {fix}"
        );
    }
    cfg.annotating_teachers()
        .map(|(name, t)| {
            let backend = backend(name, t, ds, cfg)?;
            let mut opts = TeacherOptions::new(name);
            opts.max_in_flight = t.max_in_flight;
            opts.rpm = t.rpm;
            opts.tpm = t.tpm;
            opts.retry = RetryPolicy {
                max_retries: t.max_retries,
                ..RetryPolicy::default()
            };
            match pricing(t) {
                Some(p) => opts.pricing = p,
                None => opts.price_known = false,
            }
            opts.max_tokens = reply_limit(t, ds.task);
            if let Some(m) = opts.max_tokens {
                opts.default_max_tokens = m;
            }
            opts.temperature = t.temperature;
            if t.batch {
                let initial = t.batch_poll_s.unwrap_or(10.0).max(0.01);
                opts.batch = Some(mentor_teacher::BatchPolling {
                    initial: Duration::from_secs_f64(initial),
                    max: Duration::from_secs_f64(initial.max(300.0)),
                });
                if t.batch_resubmit == crate::config::BatchResubmit::Batch {
                    opts.batch_resubmits = 3;
                }
            }
            Ok(Arc::new(Teacher::new(
                opts,
                backend,
                store.clone(),
                budget.clone(),
            )))
        })
        .collect()
}

fn key(name: &str, t: &TeacherConfig) -> Result<Option<ApiKey>> {
    match &t.api_key_env {
        Some(var) => ApiKey::from_env(var)
            .map(Some)
            .map_err(|e| anyhow!("teacher `{name}`: {e}")),
        None => Ok(None),
    }
}

fn extra(t: &TeacherConfig) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(&t.extra_body)?)
}

/// A replay of one FAIR committee member (`source = "fair:gpt"`, `"fair:gemini"`,
/// `"fair:mistral"`): its recorded feedback and rationale for each mistake, and the peer-review
/// scores it gave the other members' rationales, replied as the bracketed score the review
/// prompt asks for. Review requests carry the author's position among the config's teachers.
fn fair_replay(name: &str, member: &str, cfg: &Config) -> Result<ReplayBackend> {
    use mentor_data::recorded::{fair_id, load_fair, FAIR_TEACHERS};
    if !FAIR_TEACHERS.contains(&member) {
        bail!(
            "teacher `{name}`: unknown FAIR committee member `{member}` (one of {FAIR_TEACHERS:?})"
        );
    }
    let dir = mentor_data::shared_subdir("fair", "fair-svamp", "the FAIR release files")
        .map_err(|e| anyhow!("teacher `{name}`: {e}"))?;
    // config teacher name → position, and FAIR member → config name
    let names: Vec<&String> = cfg.annotating_teachers().map(|(n, _)| n).collect();
    let config_name_of = |m: &str| {
        cfg.annotating_teachers()
            .find(|(_, t)| {
                t.kind == TeacherKind::Replay && t.source.as_deref() == Some(&format!("fair:{m}"))
            })
            .map(|(n, _)| n)
    };
    let mut r = ReplayBackend::new(format!("fair:{member}"));
    for m in load_fair(&dir, "Llama-2-7b-chat-hf", "svamp")? {
        let id = fair_id(&m.id);
        let mine = &m.teachers[member];
        if let Some(f) = &mine.feedback {
            r.add(&id, "feedback", f.clone());
        }
        if let Some(x) = &mine.rationale {
            r.add(&id, "rationale", x.clone());
        }
        for (author, out) in &m.teachers {
            let Some(pos) = config_name_of(author).and_then(|n| names.iter().position(|x| *x == n))
            else {
                continue;
            };
            if let Some((_, score)) = out.peer_scores.iter().find(|(rev, _)| rev == member) {
                r.add_at(
                    &id,
                    "review",
                    pos as u32,
                    format!("[{}]", score.to_string().trim_matches('"')),
                );
            }
        }
    }
    Ok(r)
}

/// A replay of the Mind's Mirror release's gpt-3.5-turbo: chain of thought k of a question is
/// its k-th recorded CoT; the self-evaluations of distinct CoT d (numbered as mentor numbers
/// distinct CoTs: recorded order, duplicates dropped) are the recorded evaluations of d's first
/// occurrence.
fn minds_mirror_replay(name: &str, ds: &Dataset) -> Result<ReplayBackend> {
    use mentor_methods::annotate::SELF_EVAL_STRIDE;
    let dir = mentor_data::shared_subdir(
        "minds-mirror",
        "minds-mirror-svamp",
        "the Mind's Mirror release files",
    )
    .map_err(|e| anyhow!("teacher `{name}`: {e}"))?;
    let mut r = ReplayBackend::new("gpt-3.5-turbo (minds-mirror release)");
    for split in ["train", "test"] {
        for q in mentor_data::recorded::load_minds_mirror(&dir, split)? {
            let mut seen = std::collections::HashSet::new();
            for (k, cot) in q.cots.iter().enumerate() {
                r.add_at(&q.id, "rationale", k as u32, cot.clone());
                let key = mentor_methods::trainset::cot_key(cot);
                if seen.insert(key) {
                    let d = (seen.len() - 1) as u32;
                    for (m, e) in q.evaluations[k].iter().enumerate() {
                        r.add_at(
                            &q.id,
                            "self-eval",
                            d * SELF_EVAL_STRIDE + m as u32,
                            e.clone(),
                        );
                    }
                }
            }
        }
    }
    if r.is_empty() {
        bail!(
            "teacher `{name}`: no recorded Mind's Mirror outputs for `{}`",
            ds.name
        );
    }
    Ok(r)
}

fn backend(name: &str, t: &TeacherConfig, ds: &Dataset, cfg: &Config) -> Result<Arc<dyn Backend>> {
    let timeout = Duration::from_secs_f64(t.timeout_s.max(0.1));
    Ok(match t.kind {
        TeacherKind::Openai => {
            let url = t.base_url.as_deref().ok_or_else(|| {
                anyhow!("teacher `{name}`: `base_url` is required (e.g. http://127.0.0.1:8000/v1)")
            })?;
            Arc::new(
                OpenAiBackend::new(
                    url,
                    t.model.as_deref().unwrap_or_default(),
                    key(name, t)?,
                    extra(t)?,
                    timeout,
                )
                .map_err(|e| anyhow!("teacher `{name}`: {e}"))?,
            )
        }
        TeacherKind::Anthropic => {
            let url = t.base_url.as_deref().unwrap_or("https://api.anthropic.com");
            Arc::new(
                AnthropicBackend::new(
                    url,
                    t.model.as_deref().unwrap_or_default(),
                    key(name, t)?,
                    extra(t)?,
                    timeout,
                )
                .map_err(|e| anyhow!("teacher `{name}`: {e}"))?,
            )
        }
        TeacherKind::Replay => {
            let source = t.source.clone().unwrap_or_else(|| "palm-540b".into());
            if let Some(member) = source.strip_prefix("fair:") {
                return Ok(Arc::new(fair_replay(name, member, cfg)?));
            }
            if source == "minds-mirror" {
                return Ok(Arc::new(minds_mirror_replay(name, ds)?));
            }
            let mut r = ReplayBackend::new(source.clone());
            for rec in ds.recorded.iter().filter(|r| r.source == source) {
                r.add(&rec.example_id, "rationale", rec.text.clone());
            }
            if r.is_empty() {
                bail!("teacher `{name}`: dataset `{}` has no recorded outputs from `{source}` to replay", ds.name);
            }
            Arc::new(r)
        }
        TeacherKind::Local => {
            let spec = t
                .model
                .clone()
                .unwrap_or_else(|| DEFAULT_LOCAL_TEACHER.into());
            // Fail now on a missing model, but load it only when a request comes.
            crate::models::resolve(&spec).map_err(|e| anyhow!("teacher `{name}`: {e:#}"))?;
            let (n, s) = (name.to_string(), spec.clone());
            let load: crate::local_teacher::Loader = Box::new(move || {
                tracing::info!("teacher `{n}`: loading {s} in this process");
                let m = crate::models::load_quantized_for_inference(&s)?;
                Ok((m.model, m.tokenizer))
            });
            Arc::new(crate::local_teacher::LocalBackend::start(
                format!("local:{spec}"),
                load,
                t.max_in_flight,
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use mentor_methods::annotate::{AnnotateReport, TeacherTally};
    use std::path::Path;

    fn config(teachers: &str) -> Config {
        let text = format!("[data]\ndataset = \"svamp\"\n\n{teachers}\n[student]\nmodel = \"smollm2-135m\"\n\n[recipe]\nname = \"step-by-step\"\n");
        Config::parse(&text, Path::new("exp.toml")).unwrap()
    }

    /// An embedded teacher with no `max_tokens` gets room for a derivation on maths and half
    /// of it elsewhere; a configured limit and an API teacher's (the stage's 512) are left alone.
    #[test]
    fn an_embedded_teachers_reply_limit_follows_the_task_kind() {
        let cfg = config("[teachers.qwen]\nkind = \"local\"\n\n[teachers.fixed]\nkind = \"local\"\nmax_tokens = 300\n\n[teachers.gpt]\nkind = \"openai\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:1/v1\"\n");
        let t = |n: &str| &cfg.teachers[n];
        assert_eq!(reply_limit(t("qwen"), TaskKind::Equation), Some(512));
        assert_eq!(reply_limit(t("qwen"), TaskKind::Numeric), Some(512));
        assert_eq!(reply_limit(t("qwen"), TaskKind::MultipleChoice), Some(256));
        assert_eq!(reply_limit(t("qwen"), TaskKind::Nli), Some(256));
        assert_eq!(reply_limit(t("fixed"), TaskKind::MultipleChoice), Some(300));
        assert_eq!(reply_limit(t("gpt"), TaskKind::MultipleChoice), None);

        // the warning names the limit the replies were really cut at
        let mut rep = AnnotateReport::default();
        rep.teachers.insert(
            "qwen".into(),
            TeacherTally {
                done: 40,
                truncated: 22,
                ..TeacherTally::default()
            },
        );
        let notes =
            crate::annotate::truncation_notes(&cfg, TaskKind::MultipleChoice, "rationale", &rep);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("22 of 40") && notes[0].contains("(256 tokens)"),
            "{}",
            notes[0]
        );
        let notes = crate::annotate::truncation_notes(&cfg, TaskKind::Equation, "rationale", &rep);
        assert!(notes[0].contains("(512 tokens)"), "{}", notes[0]);
    }
}
