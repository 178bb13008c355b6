//! `mentor bench`: measured, not assumed. `annotate` is built; `train` and `generate` need the
//! student engine.

use crate::output::Summary;
use anyhow::{bail, Result};
use mentor_store::Store;
use mentor_teacher::loopback::{LoopbackConfig, LoopbackServer};
use mentor_teacher::openai::OpenAiBackend;
use mentor_teacher::{Backend, Budget, ChatRequest, Message, Teacher, TeacherOptions};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Benchmarks: `annotate` (teacher call path against a zero-latency loopback server), `train`
/// (one training step), `generate` (batched greedy decode), `probe` (one ELAD round's probe of a
/// pool by the student, for what each selection strategy computes) and `parity` (the `--device` /
/// `--dtype` path against the CPU in f32: logits and a short loss curve). `loopback` serves the
/// zero-latency OpenAI-compatible test server on 127.0.0.1 until interrupted (for comparing
/// other clients against the same server).
///
/// `train` and `parity` take `--model` as a model (asset, GGUF, HF directory) or as a bare
/// Hugging Face `config.json`, which benchmarks a seeded random initialisation of that shape.
///
/// `annotate` sends N distinct requests at each concurrency through the whole call path (cache
/// lookup, budget, rate limiter, retry wrapper, HTTP, ledger commit to SQLite) and, as the
/// baseline, through the bare HTTP backend; the difference is the latency the path adds. The
/// server runs in the same process, so on a small machine client and server share the cores.
///
/// `probe` scores `--items` questions of `--dataset` with `--model` as an ELAD round does:
/// ELAD's score (greedy + `--samples` sampled explanations of `--new-tokens`, then the answers
/// forced after each step prefix), answer entropy (the explanations only) and least confidence
/// (the greedy explanations only).
///
/// Example: mentor bench annotate --in-flight 1,64,512 --requests 2000 --json
///          mentor bench probe --model smollm2-135m --dataset sciq --items 64 --new-tokens 96
#[derive(clap::Args)]
pub struct Args {
    /// What to benchmark: annotate, train, generate, probe, parity or loopback.
    what: String,
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,64,512")]
    in_flight: Vec<usize>,
    /// Requests per level (at least 10× the level is sensible).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Use this OpenAI-compatible server (…/v1) instead of an in-process loopback server.
    #[arg(long)]
    server: Option<String>,
    /// For `loopback`: the port to serve on (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// For `train`, `generate` and `parity`: the model (asset name, .gguf file or HF
    /// directory; for `train` and `parity` also a config.json, randomly initialised).
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// For `train` and `parity`: sequences per step. For `generate`: batch sizes to measure
    /// (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8")]
    batch: Vec<usize>,
    /// For `generate`: new tokens per prompt (end-of-sequence ignored).
    #[arg(long, default_value_t = 128)]
    new_tokens: usize,
    /// For `generate` with a config.json as `--model`: tokens per (random) prompt.
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
    /// For `generate`: keep a GGUF model's projections quantised (the embedded teacher's path)
    /// instead of dequantising them to f32 (the student's).
    #[arg(long)]
    quantized: bool,
    /// For `train` and `parity`: tokens per sequence.
    #[arg(long, default_value_t = 256)]
    seq: usize,
    /// For `train`: timed steps (the median is reported), after `--warmup` untimed ones. For
    /// `parity`: training steps in the loss curve.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// For `train`: `full` fine-tuning or `lora` (rank 16, all projections).
    #[arg(long, default_value = "full")]
    tuning: String,
    /// For `train`: add a token-level distillation term from this teacher (asset name or .gguf,
    /// loaded like `[recipe] kd`'s: quantised, for inference): each step also runs the teacher's
    /// forward over the batch and the divergence chunk by chunk. Compare with the same command
    /// without it for what KD costs a step.
    #[arg(long)]
    kd_teacher: Option<String>,
    /// For `train` with `--kd-teacher`: forward-kl, reverse-kl or jsd.
    #[arg(long, default_value = "forward-kl")]
    kd_loss: String,
    /// For `train`: the device's peak dense TFLOP/s in the benchmark's dtype, to report model
    /// FLOPs utilisation (e.g. 989 for an H100 SXM in bf16).
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// For `probe`: the built-in dataset whose questions form the pool.
    #[arg(long, default_value = "sciq")]
    dataset: String,
    /// For `probe`: pool size (its first questions).
    #[arg(long, default_value_t = 64)]
    items: usize,
    /// For `probe`: sampled explanations an item besides the greedy one (ELAD's K).
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Worker threads for the tensor kernels (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<Summary> {
    match a.what.as_str() {
        "annotate" => annotate(a),
        "loopback" => serve_loopback(a.port),
        "train" => train(a),
        "generate" => generate(a),
        "parity" => parity(a),
        "probe" => probe(a),
        other => bail!(
            "unknown benchmark `{other}`; expected annotate, train, generate, probe, parity or loopback"
        ),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn annotate(a: Args) -> Result<Summary> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let local = match &a.server {
            Some(_) => None,
            None => Some(LoopbackServer::start(LoopbackConfig::default()).await?),
        };
        let base_url = a.server.clone().unwrap_or_else(|| local.as_ref().unwrap().base_url.clone());
        let mut rows = vec![];
        let mut human = format!("{:>9} {:>10} {:>12} {:>10} {:>10} {:>12} {:>12}\n", "in-flight", "requests", "path req/s", "p50 ms", "p99 ms", "bare req/s", "bare p50 ms");
        for &c in &a.in_flight {
            let n = a.requests.max(c);
            let dir = tempfile_dir(c)?;
            let store = Arc::new(Mutex::new(Store::open(dir.join("bench.sqlite"))?));
            let backend: Arc<dyn Backend> = Arc::new(OpenAiBackend::new(&base_url, "loopback", None, serde_json::Value::Null, Duration::from_secs(60)).map_err(anyhow::Error::msg)?);
            let mut opts = TeacherOptions::new("bench");
            opts.max_in_flight = c;
            let teacher = Arc::new(Teacher::new(opts, backend.clone(), store, Arc::new(Budget::default())));
            let tag = format!("c{c}");
            let (path_rps, path_lat) = drive(n, c, {
                let (teacher, tag) = (teacher.clone(), tag.clone());
                move |i| {
                    let t = teacher.clone();
                    let req = ChatRequest::new(vec![Message::user(format!("path {tag} request {i}: what is {i} + 1?"))]);
                    async move { t.complete(&req).await.map(|_| ()).map_err(|e| e.to_string()) }
                }
            })
            .await?;
            let (bare_rps, bare_lat) = drive(n, c, {
                let backend = backend.clone();
                move |i| {
                    let b = backend.clone();
                    let req = ChatRequest::new(vec![Message::user(format!("bare {tag} request {i}: what is {i} + 1?"))]);
                    async move { b.call(&req).await.map(|_| ()).map_err(|e| e.reason) }
                }
            })
            .await?;
            let _ = std::fs::remove_dir_all(&dir);
            let (p50, p99, b50) = (percentile(&path_lat, 0.5), percentile(&path_lat, 0.99), percentile(&bare_lat, 0.5));
            human += &format!("{c:>9} {n:>10} {path_rps:>12.0} {p50:>10.3} {p99:>10.3} {bare_rps:>12.0} {b50:>12.3}\n");
            rows.push(json!({ "in_flight": c, "requests": n, "path_req_per_s": path_rps, "path_p50_ms": p50, "path_p99_ms": p99,
                              "bare_req_per_s": bare_rps, "bare_p50_ms": b50, "added_p50_ms": p50 - b50 }));
        }
        human += "path = cache lookup + budget + limiter + retry wrapper + HTTP + SQLite ledger commit; bare = HTTP only";
        let server = if a.server.is_some() { "external (--server)" } else { "loopback, zero latency, same process" };
        Ok(Summary { human, json: json!({ "benchmark": "annotate", "server": server, "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "levels": rows }) })
    })
}

fn tempfile_dir(level: usize) -> Result<std::path::PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("mentor-bench-{}-{level}-{now}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Runs `n` calls with at most `c` at once; returns (requests/s, sorted latencies in ms).
async fn drive<F, Fut>(n: usize, c: usize, make: F) -> Result<(f64, Vec<f64>)>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    let mut next = 0;
    while next < n || !set.is_empty() {
        while next < n && set.len() < c {
            let fut = make(next);
            set.spawn(async move {
                let t = Instant::now();
                fut.await.map(|_| t.elapsed().as_secs_f64() * 1e3)
            });
            next += 1;
        }
        if let Some(r) = set.join_next().await {
            lat.push(r?.map_err(anyhow::Error::msg)?);
        }
    }
    let rps = n as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok((rps, lat))
}

/// Serves the loopback server until interrupted; prints its base URL first.
fn serve_loopback(port: u16) -> Result<Summary> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        drop(listener);
        let server = LoopbackServer::start_on(&addr.to_string(), LoopbackConfig::default()).await?;
        println!("{}", server.base_url);
        use std::io::Write;
        std::io::stdout().flush()?;
        tokio::signal::ctrl_c().await?;
        Ok(Summary { human: String::new(), json: json!({ "served": server.stats.requests.load(std::sync::atomic::Ordering::SeqCst) }) })
    })
}

/// The model a shape-only benchmark measures: `--model` as a Hugging Face `config.json` gives a
/// seeded random initialisation (weights do not change a step's time or memory, and a config
/// travels where a weights file cannot); anything else loads the real weights.
fn bench_student(
    spec: &str,
    tuning: mentor_model::load::Tuning,
    place: &crate::models::Placement,
) -> Result<mentor_model::load::Student> {
    use mentor_model::load::{read_weights, Student};
    if spec.ends_with(".json") {
        let text = std::fs::read_to_string(spec)?;
        let cfg = mentor_model::LlamaConfig::from_hf_json(&text)
            .map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
        if matches!(tuning, mentor_model::load::Tuning::Lora(_)) {
            bail!("{spec}: a config alone benchmarks full fine-tuning only, not LoRA");
        }
        let mut s = Student::random(&cfg, &place.device, 0)?;
        s.model.set_compute_dtype(place.dtype);
        return Ok(s);
    }
    let path = crate::models::resolve(spec)?;
    let weights = read_weights(&path, &place.device)?;
    Ok(Student::new_in(
        weights,
        tuning,
        &place.device,
        place.dtype,
        0,
    )?)
}

/// Matmul FLOPs of one training step per token (forward + backward = 3 × forward): 6 per
/// weight of every projection and the output head, plus attention's 12 · layers · d · seq
/// (PaLM's accounting, appendix B). Embedding lookups and norms are not counted.
pub fn train_flops_per_token(cfg: &mentor_model::LlamaConfig, seq: usize) -> f64 {
    let (d, i, hd) = (
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
        cfg.head_dim() as f64,
    );
    let (h, kv) = (
        cfg.num_attention_heads as f64,
        cfg.num_key_value_heads as f64,
    );
    let layers = cfg.num_hidden_layers as f64;
    let per_layer = d * h * hd * 2.0 + d * kv * hd * 2.0 + 3.0 * d * i;
    let n = layers * per_layer + cfg.vocab_size as f64 * d;
    6.0 * n + 12.0 * layers * h * hd * seq as f64
}

/// One training step (forward + backward + AdamW) on a random batch in which every position
/// is a target: the shape of the comparison in BENCHMARKS.md. Runs on `--device` in `--dtype`.
fn train(a: Args) -> Result<Summary> {
    use mentor_model::load::Tuning;
    use mentor_train::optim::{AdamW, AdamWConfig};
    use mentor_train::TrainConfig;

    crate::models::set_threads(a.threads);
    let place = crate::models::placement();
    let batch_size = a.batch[0];
    let load_start = Instant::now();
    let tuning = match a.tuning.as_str() {
        "full" => Tuning::Full,
        "lora" => Tuning::Lora(mentor_model::LoraConfig::default()),
        other => bail!("--tuning {other}: expected full or lora"),
    };
    let student = bench_student(&a.model, tuning, &place)?;
    let load_s = load_start.elapsed().as_secs_f64();
    let batch = random_batch(student.model.cfg.vocab_size, batch_size, a.seq, 0);
    let n = batch.tokens;
    let mut cfg = TrainConfig::default();
    let mut opt = AdamW::new(student.trainable(), AdamWConfig::default())?;
    // which training step optimizer_step takes for this model (see cpu_train)
    let step_kind = match mentor_train::written_out_step(&student.model) {
        true if mentor_model::mkl::mkl().is_some() => "written-out, MKL sgemm",
        true => "written-out",
        false => "autograd",
    };
    let kd_load = Instant::now();
    let teacher = match &a.kd_teacher {
        None => None,
        Some(spec) => {
            let t = crate::models::load_quantized_for_inference(spec)?;
            if t.model.cfg.vocab_size != student.model.cfg.vocab_size {
                bail!(
                    "--kd-teacher {spec}: {} tokens, but the student has {}; token-level distillation needs one vocabulary",
                    t.model.cfg.vocab_size,
                    student.model.cfg.vocab_size
                );
            }
            Some(t.model)
        }
    };
    let kd_load_s = teacher.as_ref().map(|_| kd_load.elapsed().as_secs_f64());
    if teacher.is_some() {
        let loss = match a.kd_loss.as_str() {
            "forward-kl" => mentor_train::KdLoss::ForwardKl,
            "reverse-kl" => mentor_train::KdLoss::ReverseKl,
            "jsd" => mentor_train::KdLoss::Jsd,
            other => bail!("--kd-loss {other}: expected forward-kl, reverse-kl or jsd"),
        };
        cfg.kd = Some(mentor_train::KdSettings {
            weight: 0.5,
            temperature: 1.0,
            loss,
            beta: 0.5,
            on_policy: 0.0,
            tasks: vec![],
        });
    }
    let mut times = vec![];
    for i in 0..a.warmup + a.steps {
        let t = Instant::now();
        let out = mentor_train::optimizer_step_with(
            &student.model,
            teacher.as_ref(),
            &mut opt,
            std::slice::from_ref(&batch),
            1e-5,
            &cfg,
        )?;
        // GPU kernels run asynchronously: the step ends when the device is done
        place.device.synchronize()?;
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "step {i}: {s:.3}s loss {:.3}{}{}",
            out.loss,
            out.kd_loss
                .map(|k| format!(" kd {k:.4}"))
                .unwrap_or_default(),
            if i < a.warmup { " (warm-up)" } else { "" }
        );
        if i >= a.warmup {
            times.push(s);
        }
    }
    times.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let tokens_per_s = n as f64 / median;
    let tflops = tokens_per_s * train_flops_per_token(&student.model.cfg, a.seq) / 1e12;
    let mfu = a.peak_tflops.map(|p| tflops / p);
    let peak = crate::models::peak_rss_mb();
    let threads = std::env::var("RAYON_NUM_THREADS").ok();
    Ok(Summary {
        human: format!(
            "train step {} × {} tokens, {}{} ({step_kind}) on {:?} in {:?}: median {median:.3}s → {tokens_per_s:.1} tokens/s, {tflops:.2} TFLOP/s{}, peak RSS {:.0} MiB (load {load_s:.1}s)",
            batch_size,
            a.seq,
            a.tuning,
            a.kd_teacher
                .as_ref()
                .map(|t| format!(" + {} from {t}", a.kd_loss))
                .unwrap_or_default(),
            place.device,
            place.dtype,
            mfu.map(|m| format!(" (MFU {:.1}%)", m * 100.0)).unwrap_or_default(),
            peak.unwrap_or(f64::NAN)
        ),
        json: json!({
            "bench": "train",
            "impl": "mentor",
            "step": step_kind,
            "model": a.model,
            "device": format!("{:?}", place.device),
            "dtype": format!("{:?}", place.dtype),
            "tuning": a.tuning,
            "kd_teacher": a.kd_teacher,
            "kd_loss": a.kd_teacher.as_ref().map(|_| &a.kd_loss),
            "kd_load_s": kd_load_s,
            "batch": batch_size,
            "seq": a.seq,
            "steps": a.steps,
            "step_seconds": times,
            "median_step_s": median,
            "tokens_per_s": tokens_per_s,
            "model_tflops": tflops,
            "mfu": mfu,
            "peak_rss_mb": peak,
            "threads": threads,
            "load_s": load_s,
        }),
    })
}

/// `rows × seq` random token ids, every position a target with weight 1.
fn random_batch(vocab: usize, rows: usize, seq: usize, seed: u64) -> mentor_train::Batch {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = rows * seq;
    mentor_train::Batch {
        rows,
        width: seq,
        input_ids: (0..n).map(|_| rng.random_range(0..vocab as u32)).collect(),
        targets: (0..n).map(|_| rng.random_range(0..vocab as u32)).collect(),
        weights: vec![1.0; n],
        examples: (0..rows).collect(),
        tokens: n,
        on_policy: false,
        kd_rows: None,
    }
}

/// The `--device`/`--dtype` path against the CPU in f32, on the same weights: the logits of a
/// random batch (largest error, absolute and relative to the largest reference logit) and the
/// loss curve of `--steps` full fine-tuning steps on one fixed batch.
fn parity(a: Args) -> Result<Summary> {
    use mentor_model::load::Tuning;
    use mentor_train::optim::{AdamW, AdamWConfig};
    use mentor_train::{optimizer_step, TrainConfig};

    crate::models::set_threads(a.threads);
    let place = crate::models::placement();
    let reference = crate::models::Placement {
        device: candle_core::Device::Cpu,
        dtype: candle_core::DType::F32,
    };
    let (rows, seq) = (a.batch[0], a.seq);
    let logits_of = |p: &crate::models::Placement| -> Result<(Vec<f32>, Vec<f32>)> {
        let s = bench_student(&a.model, Tuning::Frozen, p)?;
        let b = random_batch(s.model.cfg.vocab_size, rows, seq, 1);
        let ids = candle_core::Tensor::from_vec(b.input_ids, (rows, seq), &p.device)?;
        let logits = s.model.forward(&ids)?.flatten_all()?.to_vec1::<f32>()?;
        let mut curve = vec![];
        let s = bench_student(&a.model, Tuning::Full, p)?;
        let mut opt = AdamW::new(s.trainable(), AdamWConfig::default())?;
        let batch = random_batch(s.model.cfg.vocab_size, rows, seq, 2);
        for _ in 0..a.steps {
            let out = optimizer_step(
                &s.model,
                &mut opt,
                std::slice::from_ref(&batch),
                1e-4,
                &TrainConfig::default(),
            )?;
            curve.push(out.loss as f32);
        }
        Ok((logits, curve))
    };
    let t = Instant::now();
    let (want, want_curve) = logits_of(&reference)?;
    let (got, got_curve) = logits_of(&place)?;
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_abs = want
        .iter()
        .zip(&got)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let curve_diff = want_curve
        .iter()
        .zip(&got_curve)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let what = format!("{:?} {:?}", place.device, place.dtype);
    Ok(Summary {
        human: format!(
            "{}: {what} vs CPU f32 on {rows} × {seq} tokens: logits max abs error {max_abs:.3e}, relative {:.3e}
             loss over {} steps: CPU f32 {want_curve:?}
{:>28} {got_curve:?}
             largest loss difference {curve_diff:.3e} ({:.1}s)",
            a.model,
            max_abs / scale,
            a.steps,
            what,
            t.elapsed().as_secs_f64()
        ),
        json: json!({
            "bench": "parity", "model": a.model, "device": format!("{:?}", place.device),
            "dtype": format!("{:?}", place.dtype), "rows": rows, "seq": seq,
            "logits_max_abs_err": max_abs, "logits_max_rel_err": max_abs / scale,
            "reference_loss": want_curve, "loss": got_curve, "loss_max_abs_diff": curve_diff,
        }),
    })
}

/// Prompts shared with `benches/generate_torch.py` (same text, same chat template).
pub const BENCH_PROMPTS: [&str; 4] = [
    "Explain why the sky is blue.",
    "Write a short story about a robot who learns to paint.",
    "List three uses of a paperclip and explain each.",
    "Tom has 3 apples and buys 5 more. How many apples does he have? Think step by step.",
];

/// Greedy batched generation of `--new-tokens` tokens (EOS ignored) per prompt, at each
/// `--batch` size: new tokens per second, wall time including prefill.
///
/// With `--model` a `config.json` the model is a seeded random initialisation of that shape
/// (its projections quantised to Q4_K with `--quantized`, as the teacher GGUFs are), the
/// tokenizer a word-level one of the config's vocabulary, and every prompt `--prompt-tokens`
/// random ids: what travels to a GPU machine that cannot fetch weights.
fn generate(a: Args) -> Result<Summary> {
    crate::models::set_threads(a.threads);
    let place = crate::models::placement();
    let t = Instant::now();
    let shape_only = a.model.ends_with(".json");
    let loaded = if shape_only {
        random_inference_model(&a.model, a.quantized, &place)?
    } else if a.quantized {
        crate::models::load_quantized_for_inference(&a.model)?
    } else {
        crate::models::load_for_inference(&a.model)?
    };
    let load_s = t.elapsed().as_secs_f64();
    let tok = &loaded.tokenizer;
    let mut human = format!(
        "{} ({} on {:?}), loaded in {load_s:.1}s\n",
        a.model,
        if a.quantized {
            "quantised".to_string()
        } else {
            format!("{:?}", loaded.model.dtype())
        },
        place.device
    );
    let mut rows = vec![];
    for &b in &a.batch {
        let params = mentor_model::SamplingParams {
            max_new_tokens: a.new_tokens,
            ignore_eos: true,
            ..Default::default()
        };
        let reqs: Vec<(Vec<u32>, mentor_model::SamplingParams)> = if shape_only {
            let ids = random_batch(loaded.model.cfg.vocab_size, b, a.prompt_tokens, 3).input_ids;
            ids.chunks(a.prompt_tokens.max(1))
                .map(|p| (p.to_vec(), params.clone()))
                .collect()
        } else {
            (0..b)
                .map(|i| {
                    let msg = [mentor_model::ChatMessage::new(
                        "user",
                        BENCH_PROMPTS[i % BENCH_PROMPTS.len()],
                    )];
                    let text = tok.apply_chat_template(&msg, true)?;
                    Ok((tok.encode(&text)?, params.clone()))
                })
                .collect::<Result<_>>()?
        };
        let t = Instant::now();
        let gens = mentor_model::generate(&loaded.model, tok, &reqs, b, &mut |_| {})?;
        let s = t.elapsed().as_secs_f64();
        let new: usize = gens.iter().map(|g| g.token_ids.len()).sum();
        human.push_str(&format!(
            "batch {b:>3}: {new} new tokens in {s:.1}s → {:.1} tokens/s\n",
            new as f64 / s
        ));
        rows.push(
            json!({"batch": b, "new_tokens": new, "seconds": s, "tokens_per_s": new as f64 / s}),
        );
    }
    human.push_str(&format!(
        "peak RSS {:.0} MiB",
        crate::models::peak_rss_mb().unwrap_or(f64::NAN)
    ));
    Ok(Summary {
        human,
        json: json!({"bench": "generate", "impl": "mentor", "model": a.model, "device": format!("{:?}", place.device),
                     "dtype": format!("{:?}", loaded.model.dtype()), "quantized": a.quantized, "load_s": load_s, "new_tokens": a.new_tokens, "rows": rows,
                     "peak_rss_mb": crate::models::peak_rss_mb()}),
    })
}

fn probe(a: Args) -> Result<Summary> {
    use mentor_methods::elad::{score_pool, ProbeConfig, ProbeParts, SelectionStrategy};
    crate::models::set_threads(a.threads);
    let ds = mentor_data::load_dataset(&mentor_data::DatasetSpec::builtin(&a.dataset))?;
    let pool: Vec<mentor_core::Example> = ds
        .splits
        .values()
        .flatten()
        .take(a.items)
        .cloned()
        .collect();
    let loaded = crate::models::load_for_inference(&a.model)?;
    // the probe of examples/grids/elad-row4-base.toml, at this pool size
    let cfg = ProbeConfig {
        samples: a.samples,
        max_new_tokens: a.new_tokens,
        max_steps: 4,
        answer_tokens: 8,
        ..Default::default()
    };
    let mut human = format!(
        "{} scoring {} {} questions (K = {}, {} new tokens)\n",
        a.model,
        pool.len(),
        a.dataset,
        a.samples,
        a.new_tokens
    );
    let mut rows = vec![];
    for strategy in [
        SelectionStrategy::Elad,
        SelectionStrategy::AnswerEntropy,
        SelectionStrategy::LeastConfidence,
    ] {
        let parts = ProbeParts::for_strategy(strategy);
        let t = Instant::now();
        let mut generations = 0;
        score_pool(
            &loaded.model,
            &loaded.tokenizer,
            ds.task,
            &pool,
            &cfg,
            parts,
            &mut |n| generations += n,
        )?;
        let s = t.elapsed().as_secs_f64();
        human.push_str(&format!(
            "{:<16} {generations:>5} generations in {s:.1}s\n",
            strategy.as_str()
        ));
        rows.push(
            json!({"strategy": strategy.as_str(), "samples": parts.samples, "steps": parts.steps,
                         "generations": generations, "seconds": s}),
        );
    }
    Ok(Summary {
        human,
        json: json!({"bench": "probe", "model": a.model, "dataset": a.dataset, "items": pool.len(),
                     "samples": a.samples, "new_tokens": a.new_tokens, "rows": rows,
                     "peak_rss_mb": crate::models::peak_rss_mb()}),
    })
}

/// A seeded random model of the shape `config` (a `config.json`) for inference on `place`,
/// with a word-level tokenizer of its vocabulary. `quantized`: projections and head in Q4_K as
/// in the teacher GGUFs (Q8_0 where a row is not a multiple of Q4_K's 256-value block, much as
/// llama.cpp falls back).
fn random_inference_model(
    config: &str,
    quantized: bool,
    place: &crate::models::Placement,
) -> Result<crate::models::LoadedModel> {
    use candle_core::quantized::{GgmlDType, QTensor};
    use mentor_model::load::{Student, Tuning, Weights};
    let text = std::fs::read_to_string(config)?;
    let cfg = mentor_model::LlamaConfig::from_hf_json(&text)
        .map_err(|e| anyhow::anyhow!("{config}: {e}"))?;
    let random = Student::random(&cfg, &candle_core::Device::Cpu, 0)?;
    let mut weights = Weights {
        config: cfg.clone(),
        tensors: Default::default(),
        source: config.into(),
        gguf_metadata: None,
        quantized: Default::default(),
    };
    for (name, t) in random.model.merged_tensors()? {
        let head = name == "lm_head.weight"
            || (cfg.tie_word_embeddings && name == "model.embed_tokens.weight");
        if quantized && (name.ends_with("_proj.weight") || head) {
            let kind = if t.dim(1)? % 256 == 0 {
                GgmlDType::Q4K
            } else {
                GgmlDType::Q8_0
            };
            let q = QTensor::quantize_onto(&t, kind, &place.device)?;
            weights
                .quantized
                .insert(name.clone(), std::sync::Arc::new(q));
        }
        // the embedding lookups stay dense (a tied head is in both maps)
        if !(quantized && name.ends_with("_proj.weight")) {
            weights.tensors.insert(name, t);
        }
    }
    let model = Student::new_in(weights, Tuning::Frozen, &place.device, place.dtype, 0)?.model;
    Ok(crate::models::LoadedModel {
        tokenizer: mentor_model::TextTokenizer::word_level(cfg.vocab_size),
        model,
        path: config.into(),
    })
}
