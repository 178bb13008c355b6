//! The experiment config: one TOML file per experiment.
//!
//! Every table rejects unknown keys, and every error names the file and the dotted key
//! (`train.lr`), because a typo in an experiment config should never silently fall back to a
//! default. `mentor init` writes a commented example.

use anyhow::{anyhow, Context, Result};
use mentor_data::DatasetSpec;
pub use mentor_methods::evaluate::EvalConfig;
pub use mentor_methods::recipe::Recipe;
use mentor_methods::recipe::RecipeName;
use mentor_methods::recipes::RecipeExt;
pub use mentor_train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data: DatasetSpec,
    #[serde(default)]
    pub teachers: BTreeMap<String, TeacherConfig>,
    #[serde(default)]
    pub student: StudentConfig,
    #[serde(default)]
    pub recipe: Recipe,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub budget: BudgetConfig,
    #[serde(default)]
    pub prompts: PromptFiles,
    #[serde(default, skip_serializing_if = "BaselineConfig::is_off")]
    pub baseline: BaselineConfig,
}

/// The `[baseline]` table: the honest comparison trained and scored beside the recipe's student.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Also fine-tune the same student on the same train questions' gold labels alone (recipe
    /// `standard`, no teacher) with the same training settings, score it on the same test
    /// questions, and report untrained, standard and distilled with the paired differences
    /// (distilled − standard: what the teacher added over plain fine-tuning). Its run is
    /// RUN/baseline-standard.
    pub standard: bool,
}

impl BaselineConfig {
    pub fn is_off(&self) -> bool {
        !self.standard
    }
}

/// The `[prompts]` table: teacher prompt templates (minijinja) replacing the defaults per task
/// kind. Paths are relative to the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptFiles {
    /// The system message of chain-of-thought requests.
    pub system: Option<String>,
    /// Chain-of-thought template; variables `question`, `choices`, `choices_block`.
    pub cot: Option<PathBuf>,
    /// Self-evaluation template; the same variables plus `solution`.
    pub self_eval: Option<PathBuf>,
    /// Few-shot: worked examples (question, shipped explanation if any, answer sentence) drawn
    /// from the train split, by `few_shot_seed`, before every chain-of-thought request.
    #[serde(default)]
    pub few_shot: usize,
    #[serde(default)]
    pub few_shot_seed: u64,
}

/// How to reach one teacher. API keys are never in the file: only the *name* of the environment
/// variable that holds one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    pub kind: TeacherKind,
    /// Model name sent to the endpoint (or the GGUF asset / path for `local`).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// For `replay`: the recorded source to answer from (e.g. `palm-540b`).
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Requests and tokens per minute (0 = unlimited).
    #[serde(default)]
    pub rpm: u32,
    #[serde(default)]
    pub tpm: u32,
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Dollars per million tokens; unset: the dated table in `mentor_teacher::prices`, and for
    /// a model it does not know, unknown (a free server says 0).
    #[serde(default)]
    pub price_in_per_mtok: Option<f64>,
    #[serde(default)]
    pub price_out_per_mtok: Option<f64>,
    /// Batch-API rates; unset: half the online rates.
    #[serde(default)]
    pub price_batch_in_per_mtok: Option<f64>,
    #[serde(default)]
    pub price_batch_out_per_mtok: Option<f64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Send each stage's requests through the provider's batch API (OpenAI's Batch API,
    /// Anthropic's Message Batches): about half the
    /// price, answered within a day; a stopped run re-attaches to its batches.
    #[serde(default)]
    pub batch: bool,
    /// Where a batch's failed, expired or missing rows go: `online` (at once, full price) or
    /// `batch` (up to three new batches, then online).
    #[serde(default)]
    pub batch_resubmit: BatchResubmit,
    /// Seconds between the first polls of a batch (growing 1.5× to 300 s).
    #[serde(default)]
    pub batch_poll_s: Option<f64>,
    /// Extra JSON fields merged into every request body (e.g. `top_k` for vLLM).
    #[serde(default)]
    pub extra_body: BTreeMap<String, toml::Value>,
    /// Whether the recipe's teacher stages ask this teacher for text. `false` keeps an
    /// embedded teacher for `[recipe] kd`'s logits alone, beside another teacher that writes
    /// the rationales (the two roles need not be one model).
    #[serde(default = "yes")]
    pub annotate: bool,
}

fn yes() -> bool {
    true
}

fn default_in_flight() -> usize {
    8
}
fn default_timeout() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    5
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherKind {
    Openai,
    Anthropic,
    Replay,
    Local,
}

/// Where the batch route sends rows that came back failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchResubmit {
    #[default]
    Online,
    Batch,
}

/// The `[student]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudentConfig {
    /// An asset name (`smollm2-135m`) or a path to a GGUF file or HF directory.
    pub model: String,
    /// LoRA rank; 0 trains all weights.
    pub lora_rank: usize,
    pub lora_alpha: f64,
    /// Projections that get adapters.
    pub lora_targets: Vec<String>,
}

impl Default for StudentConfig {
    fn default() -> Self {
        let lora = mentor_model::LoraConfig::default();
        StudentConfig {
            model: "smollm2-135m".into(),
            lora_rank: 0,
            lora_alpha: lora.alpha,
            lora_targets: lora.targets,
        }
    }
}

impl StudentConfig {
    /// What training updates: every weight, or LoRA adapters.
    pub fn tuning(&self) -> mentor_model::load::Tuning {
        use mentor_model::load::Tuning;
        if self.lora_rank == 0 {
            Tuning::Full
        } else {
            Tuning::Lora(mentor_model::LoraConfig {
                rank: self.lora_rank,
                alpha: self.lora_alpha,
                targets: self.lora_targets.clone(),
            })
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub max_usd: Option<f64>,
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
}

impl Config {
    /// A config with only a `[data]` table; everything else at its defaults.
    pub fn for_data(data: DatasetSpec) -> Config {
        Config {
            data,
            teachers: BTreeMap::new(),
            student: StudentConfig::default(),
            recipe: Recipe::default(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            budget: BudgetConfig::default(),
            prompts: PromptFiles::default(),
            baseline: BaselineConfig::default(),
        }
    }

    /// Parses a config; errors name the file, the dotted key and TOML's line/column.
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| anyhow!("{}: {}", file.display(), e.to_string().trim()))?;
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            anyhow!("{}: key `{key}`: {}", file.display(), inner.trim())
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg = Config::parse(&text, path)?;
        // Relative paths are relative to the config file, not the working directory.
        if let Some(dir) = path.parent() {
            let rebase = |p: &mut Option<PathBuf>| {
                if let Some(x) = p.as_mut().filter(|x| x.is_relative()) {
                    *x = dir.join(&*x);
                }
            };
            rebase(&mut cfg.data.path);
            rebase(&mut cfg.prompts.cot);
            rebase(&mut cfg.prompts.self_eval);
        }
        Ok(cfg)
    }

    /// Whether this run's student can be scored in inference `mode` (a label-only student has no
    /// `cot`, one without the self-evaluation task no `self-eval-vote`): Err says why not.
    pub fn check_mode(&self, mode: &str) -> Result<()> {
        let mut cfg = self.clone();
        cfg.eval.mode = Some(mode.parse().map_err(|e: String| anyhow!(e))?);
        cfg.validate(Path::new("its config"))
    }

    fn validate(&self, file: &Path) -> Result<()> {
        let bad = |key: &str, msg: String| Err(anyhow!("{}: key `{key}`: {msg}", file.display()));
        if let Err((key, msg)) = self.recipe.validate() {
            return bad(key, msg);
        }
        let annotating = self.annotating_teachers().count();
        if self.recipe.name == RecipeName::Mapd && self.recipe.review && annotating == 1 {
            return bad(
                "recipe.review",
                "MAPD with one teacher has no peer to review its rationales, so none would be \
                 accepted; set `review = false` to keep them all (or add a teacher)"
                    .into(),
            );
        }
        if self.train.kd.is_some() {
            return bad(
                "train.kd",
                "token-level distillation is set in the recipe: `[recipe] kd = { teacher = \"NAME\", … }`".into(),
            );
        }
        if let Some(kd) = &self.recipe.kd {
            match self.teachers.get(&kd.teacher) {
                None => {
                    return bad(
                        "recipe.kd.teacher",
                        format!("no [teachers.{}] in the config", kd.teacher),
                    )
                }
                Some(t) if t.kind != TeacherKind::Local => {
                    return bad(
                        "recipe.kd.teacher",
                        format!(
                            "`{}` is not an embedded teacher; token-level distillation needs its logits (`kind = \"local\"`)",
                            kd.teacher
                        ),
                    )
                }
                Some(_) => {}
            }
            let trained: Vec<&str> = self
                .recipe
                .trained_tasks()
                .into_iter()
                .map(|t| t.as_str())
                .collect();
            if let Some(task) = kd.tasks.iter().find(|t| !trained.contains(&t.as_str())) {
                return bad(
                    "recipe.kd.tasks",
                    format!(
                        "`{task}` is not a task this recipe trains (it trains: {})",
                        trained.join(", ")
                    ),
                );
            }
        }
        for (name, t) in &self.teachers {
            let gives_logits = self
                .recipe
                .kd
                .as_ref()
                .is_some_and(|kd| kd.teacher == *name);
            if !t.annotate && !gives_logits {
                return bad(
                    &format!("teachers.{name}.annotate"),
                    format!(
                        "`{name}` writes nothing (`annotate = false`) and is not `[recipe] kd`'s teacher, so it would never be used; remove it or set `kd = {{ teacher = \"{name}\", … }}`"
                    ),
                );
            }
        }
        if annotating == 0 && !self.teachers.is_empty() && !self.recipe.teacher_stages().is_empty()
        {
            return bad(
                "teachers",
                "every teacher has `annotate = false`: none would write the recipe's rationales; let one annotate".into(),
            );
        }
        if let Some(mode) = self.eval.mode {
            if let Err(msg) = self.recipe.check_mode(mode) {
                return bad("eval.mode", msg);
            }
        }
        for (name, t) in &self.teachers {
            if (t.kind == TeacherKind::Openai || t.kind == TeacherKind::Anthropic)
                && t.model.is_none()
            {
                return bad(
                    &format!("teachers.{name}.model"),
                    "is required for an HTTP teacher".into(),
                );
            }
            if let Some(env) = &t.api_key_env {
                if env.starts_with("sk-") || env.len() > 64 {
                    return bad(
                        &format!("teachers.{name}.api_key_env"),
                        "looks like a key, not the name of an environment variable; put the key in the environment".into(),
                    );
                }
            }
            if t.batch && !matches!(t.kind, TeacherKind::Openai | TeacherKind::Anthropic) {
                return bad(
                    &format!("teachers.{name}.batch"),
                    "the batch route is the provider's batch API: `kind = \"openai\"` or \
                     `\"anthropic\"` (replay and local teachers answer at once)"
                        .into(),
                );
            }
            if t.max_in_flight == 0 {
                return bad(
                    &format!("teachers.{name}.max_in_flight"),
                    "must be at least 1".into(),
                );
            }
        }
        Ok(())
    }
}

impl Config {
    /// The teachers the recipe's stages ask for text, in name order (all but `annotate = false`).
    pub fn annotating_teachers(&self) -> impl Iterator<Item = (&String, &TeacherConfig)> {
        self.teachers.iter().filter(|(_, t)| t.annotate)
    }

    /// The teacher prompt templates: defaults, overridden by `[prompts]` files (checked here, so
    /// a broken template fails before any call is sent).
    pub fn prompts(&self) -> Result<mentor_core::prompt::Prompts> {
        let mut p = mentor_core::prompt::Prompts::default();
        p.system = self.prompts.system.clone();
        for (name, file) in [
            ("cot", &self.prompts.cot),
            ("self_eval", &self.prompts.self_eval),
        ] {
            if let Some(f) = file {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("prompts.{name}: cannot read {}", f.display()))?;
                minijinja::Environment::new()
                    .template_from_str(&text)
                    .map_err(|e| anyhow!("prompts.{name}: {}: {e}", f.display()))?;
                p.set(name, text);
            }
        }
        Ok(p)
    }
}

/// The run directory for a config: `--run-dir`, else `runs/<config file stem>`.
pub fn default_run_dir(config: Option<&Path>) -> PathBuf {
    let stem = config
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "quickstart".into());
    PathBuf::from("runs").join(stem)
}

/// The commented example that `mentor init` writes.
pub const EXAMPLE: &str = r#"# mentor experiment config. Every key is checked: a typo is an error, not a silent default.

[data]
dataset = "svamp"            # built-in: svamp cqa anli1 gsm8k csqa arc-easy sciq … (`mentor data list`)
# path = "my.jsonl"          # or your own JSONL / JSON-array file, with:
# task = "numeric"           #   numeric | equation | multiple-choice | nli | yes-no
# fields = { question = "question", answer = "answer", choices = "choices", id = "id" }
seed = 0                     # seeded train/valid/test split where the source has none
fractions = [0.8, 0.1, 0.1]
# limit = 200                # at most this many examples per split
# train_limit = 200          # at most this many train examples (also valid_limit, test_limit):
#                            # a train-size curve keeps one fixed test set
# eval_dataset = "svamp"     # valid + test from this built-in instead (minus questions in train)

[teachers.palm]              # any number of named teachers
kind = "replay"              # openai | anthropic | replay | local
source = "palm-540b"         # replay: the recorded outputs to answer from

# [teachers.qwen]
# kind = "local"             # embedded: a model in this process (no server, no key)
# model = "qwen2.5-coder-1.5b"   # an asset name, .gguf file or HF directory
# max_in_flight = 8          #   requests decoded together in one batch
# max_tokens = 512           # per reply; default by task kind: 512 for numeric and equation
#                            #   (a derivation needs room), 256 for multiple-choice, nli and yes-no.
#                            #   Replies cut at the limit are counted, not trained on, and
#                            #   `mentor annotate --retry-truncated` asks for them again

# [teachers.gpt]
# kind = "openai"            # any OpenAI-compatible server: OpenAI, vLLM, llama.cpp, Ollama, SGLang, TGI
# base_url = "http://127.0.0.1:8000/v1"
# model = "gpt-4o-mini"
# api_key_env = "OPENAI_API_KEY"   # the variable's NAME; the key itself stays in the environment
# max_in_flight = 8
# price_in_per_mtok = 0.15   # $ per million tokens; unset: mentor's dated table of OpenAI and
# price_out_per_mtok = 0.60  #   Anthropic prices (`mentor_teacher::prices`); a model it does not
#                            #   know is "cost unknown" until you set them (0 for a free server)
# price_batch_in_per_mtok = 0.075   # batch-API rates; unset: half the online ones
# batch = true               # the provider's batch API: half the price, within 24 h; a
#                            #   stopped run re-attaches to its batches (`mentor annotate --batch`)
# batch_resubmit = "online"  #   failed / expired rows: "online" at once, or "batch" (≤ 3 new batches)

[student]
model = "smollm2-135m"       # an asset name or a path (GGUF, HF directory)
lora_rank = 16               # 0 = train every weight
lora_alpha = 32

[recipe]
name = "step-by-step"        # standard | step-by-step | minds-mirror | mapd | elad
alpha = 0.5                  # label weight; rationale weight is 1 - alpha
# filter_correct = false     # keep only teacher rationales whose answer matches gold
# kd = { teacher = "qwen", loss = "forward-kl", weight = 0.5, temperature = 2.0 }
#                            # token-level distillation from an embedded teacher's logits, mixed
#                            #   into any recipe's loss: (1 − weight)·CE + weight·T²·KD; loss =
#                            #   forward-kl | reverse-kl | jsd (with beta); the teacher must share
#                            #   the student's tokenizer; a teacher with `annotate = false` in its
#                            #   table gives only logits (another teacher writes the rationales)
# label_source = "gold"      # standard: learn gold labels or the teacher's ("teacher")
# choice_label = "letter"    # multiple choice: the label names the option by "letter" ("(d)
#                            # darwin") or by "text" ("darwin": no letter to map it to)
# cots_per_question = 5      # minds-mirror: K chains of thought a question ...
# evals_per_cot = 5          #   ... and M self-evaluations of each (0 = none)
# schedule = "two-stage"     #   two-stage (self-evaluation, then CoT) | mixed
# self_eval_weight = 0.5     #   mixed: weight of the self-evaluation task
# mistakes_from = "student"  # mapd: mine the student's mistakes ("recorded": the dataset's answers)
# review_threshold = 3.0     #   accept a rationale when the mean peer score (1-5) is above this
# pairs_per_mistake = "one"  #   one feedback + one accepted rationale a mistake, or "all"
# mining_rounds = 1          #   >1: after training, the student answers again and its new
#                            #   mistakes go to the committee; it retrains on every round's pairs
# retrain = "restart"        # elad, mapd rounds: from the base student, or "continue"
# patience = 0               #   stop after N rounds without a better validation accuracy
# tested_round = "best"      #   the student scored on test: the best round on validation, or
#                            #   "last" (the whole teacher budget: compare selection rules there)

[train]
epochs = 3
# epoch_unit = "pairs"       # or "questions": steps of one pass over the questions however many
#                            # pairs each has (the equal-steps control for step-by-step, K CoTs)
lr = 2e-4                    # peak; warm-up (warmup_ratio) then cosine to min_lr_ratio × lr
batch_size = 8
# grad_accum = 1
# max_len = 512              # tokens of prompt + target; longer: the prompt's middle, then the target's end go
# eval_every = 0             # validate every N optimiser steps (0 = at the end)
# seed = 0
# loss_per = "example"       # each example counts its task weight, whatever its length; "token":
#                            # each target token alike (per task, as the papers' HF code averages)

[eval]
# mode = "label"             # label | cot | vote | self-eval-vote (default: the recipe's own)
# samples = 5                # vote, self-eval-vote: samples a question
# valid_limit = 64           # validation items scored by generation during training

[baseline]
# standard = true            # also fine-tune the student on the gold labels alone (no teacher) and
#                            # score it on the same test questions: the summary and report show
#                            # distilled − standard, paired, beside distilled − untrained

[budget]
# max_usd = 5.0

[prompts]                    # teacher prompt templates (minijinja files), else defaults per task kind
# system = "You are a patient teacher. ..."
# cot = "prompts/cot.j2"     # variables: question, choices, choices_block
# self_eval = "prompts/self_eval.j2"   # also: solution
# few_shot = 0               # worked train-split examples before each chain-of-thought request
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        Config::parse(s, Path::new("exp.toml"))
    }

    #[test]
    fn example_config_parses() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.data.dataset.as_deref(), Some("svamp"));
        assert_eq!(c.teachers["palm"].kind, TeacherKind::Replay);
        assert_eq!(c.recipe.name, RecipeName::StepByStep);
    }

    /// Every shipped config, examples/gpu/ too, loads and validates.
    #[test]
    fn every_example_config_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut n = 0;
        for dir in [root.clone(), root.join("gpu")] {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "toml") {
                    Config::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
                    n += 1;
                }
            }
        }
        assert!(n >= 16, "{n} example configs");
    }

    #[test]
    fn unknown_key_names_file_and_dotted_key() {
        let err = parse("[data]\ndataset = \"svamp\"\n[train]\nlearning_rate = 1e-4\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("exp.toml: key `train"), "{err}");
        assert!(err.contains("learning_rate"), "{err}");
    }

    #[test]
    fn unknown_key_in_a_named_teacher() {
        let err = parse("[data]\ndataset = \"x\"\n[teachers.gpt]\nkind = \"openai\"\nmodel = \"m\"\nbase = \"u\"\n").unwrap_err().to_string();
        assert!(
            err.contains("exp.toml") && err.contains("teachers.gpt") && err.contains("base"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_and_bad_enum_name_the_key() {
        let err = parse("[data]\ndataset = \"x\"\n[train]\nbatch_size = \"eight\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `train.batch_size`"), "{err}");
        let err = parse("[data]\ndataset = \"x\"\n[recipe]\nname = \"magic\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `recipe.name`") && err.contains("magic"),
            "{err}"
        );
    }

    /// A logits-only teacher (`annotate = false`) is not asked for text and does not count as a
    /// MAPD peer; one that gives no logits either, or a config where no teacher writes the
    /// recipe's text, is refused with the key named.
    #[test]
    fn a_logits_only_teacher_must_give_logits_and_leave_someone_to_write() {
        let gpt = "[teachers.gpt]\nkind = \"openai\"\nmodel = \"m\"\n";
        let cfg = |recipe: &str, others: &str| {
            parse(&format!(
                "[data]\ndataset = \"svamp\"\n{others}\n\
                 [teachers.qwen]\nkind = \"local\"\nannotate = false\n[recipe]\n{recipe}\n"
            ))
        };
        let kd = "kd = { teacher = \"qwen\" }";
        let c = cfg(&format!("name = \"step-by-step\"\n{kd}"), gpt).unwrap();
        let names: Vec<&String> = c.annotating_teachers().map(|(n, _)| n).collect();
        assert_eq!(names, ["gpt"]);
        // MAPD with GPT and a logits-only teacher has one peer: review needs two
        let err = cfg(&format!("name = \"mapd\"\n{kd}"), gpt)
            .unwrap_err()
            .to_string();
        assert!(err.contains("recipe.review"), "{err}");
        // no kd: the teacher would never be used
        let err = cfg("name = \"step-by-step\"", gpt).unwrap_err().to_string();
        assert!(err.contains("teachers.qwen.annotate"), "{err}");
        // nobody writes the rationales
        let err = cfg(&format!("name = \"step-by-step\"\n{kd}"), "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `teachers`"), "{err}");
        // a recipe without teacher text (standard + kd on gold labels) needs no writer
        cfg(&format!("name = \"standard\"\n{kd}"), "").unwrap();
        // kd kept to some tasks: only tasks the recipe trains
        let rationale = "kd = { teacher = \"qwen\", tasks = [\"rationale\"] }";
        let c = cfg(&format!("name = \"step-by-step\"\n{rationale}"), gpt).unwrap();
        assert_eq!(c.recipe.kd.unwrap().settings().tasks, ["rationale"]);
        let err = cfg(&format!("name = \"standard\"\n{rationale}"), "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("recipe.kd.tasks") && err.contains("`rationale` is not a task"),
            "{err}"
        );
    }

    #[test]
    fn the_loss_is_per_example_unless_asked_per_token() {
        let c = parse("[data]\ndataset = \"svamp\"\n").unwrap();
        assert_eq!(c.train.loss_per, mentor_train::LossPer::Example);
        let c = parse("[data]\ndataset = \"svamp\"\n[train]\nloss_per = \"token\"\n").unwrap();
        assert_eq!(c.train.loss_per, mentor_train::LossPer::Token);
        let err = parse("[data]\ndataset = \"svamp\"\n[train]\nloss_per = \"batch\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.loss_per"), "{err}");
    }

    #[test]
    fn syntax_error_names_the_file() {
        let err = parse("[data\n").unwrap_err().to_string();
        assert!(err.starts_with("exp.toml:"), "{err}");
    }

    #[test]
    fn semantic_checks_name_the_key() {
        let err = parse("[data]\ndataset = \"x\"\n[recipe]\nalpha = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("recipe.alpha"), "{err}");
        let err = parse("[data]\ndataset = \"x\"\n[teachers.g]\nkind = \"openai\"\nmodel = \"m\"\napi_key_env = \"sk-abc123\"\n").unwrap_err().to_string();
        assert!(
            err.contains("teachers.g.api_key_env") && !err.contains("sk-abc123"),
            "{err}"
        );
        let err = parse("[data]\ndataset = \"x\"\n[teachers.g]\nkind = \"openai\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("teachers.g.model"), "{err}");
    }

    /// MAPD trains `feedback:` and `solve:`: scoring it with `predict:` is refused, naming the
    /// key and the modes that would measure what it trained.
    #[test]
    fn an_inference_mode_the_recipe_never_trains_is_refused() {
        let cfg = |recipe: &str, mode: &str| {
            parse(&format!(
                "[data]\ndataset = \"x\"\n[recipe]\nname = \"{recipe}\"\n[eval]\nmode = \"{mode}\"\n"
            ))
        };
        let err = cfg("mapd", "label").unwrap_err().to_string();
        assert!(
            err.contains("key `eval.mode`") && err.contains("`predict:`") && err.contains("mapd"),
            "{err}"
        );
        assert!(err.contains("use one of: cot, vote"), "{err}");
        cfg("mapd", "cot").unwrap();
        cfg("step-by-step", "label").unwrap();
        assert!(cfg("step-by-step", "cot").is_err());
        assert!(cfg("standard", "vote").is_err());
        assert!(cfg("elad", "label").is_err());
        // self-eval-vote needs the self-evaluation task, trained last: Mind's Mirror's default
        // two-stage schedule trains CoTs after it, and M = 0 has none
        let err = cfg("minds-mirror", "self-eval-vote")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schedule = \"mixed\""), "{err}");
        parse("[data]\ndataset = \"x\"\n[recipe]\nname = \"minds-mirror\"\nschedule = \"mixed\"\n[eval]\nmode = \"self-eval-vote\"\n").unwrap();
        let err = parse("[data]\ndataset = \"x\"\n[recipe]\nname = \"minds-mirror\"\nevals_per_cot = 0\nschedule = \"mixed\"\n[eval]\nmode = \"self-eval-vote\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`evaluate:`"), "{err}");
        // the default is a trained mode
        assert_eq!(
            cfg("mapd", "cot").unwrap().recipe.default_mode().as_str(),
            "cot"
        );
    }

    /// One teacher cannot peer-review itself: refused unless review is off.
    #[test]
    fn mapd_with_one_teacher_needs_review_off() {
        let one = "[data]\ndataset = \"x\"\n[teachers.g]\nkind = \"replay\"\nsource = \"fair:gpt\"\n[recipe]\nname = \"mapd\"\n";
        let err = parse(one).unwrap_err().to_string();
        assert!(
            err.contains("key `recipe.review`") && err.contains("review = false"),
            "{err}"
        );
        parse(&format!("{one}review = false\n")).unwrap();
    }

    #[test]
    fn missing_data_table_is_named() {
        let err = parse("[train]\nlr = 1e-4\n").unwrap_err().to_string();
        assert!(err.contains("data"), "{err}");
    }

    #[test]
    fn prompt_files_are_read_relative_to_the_config_and_checked() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("p")).unwrap();
        std::fs::write(
            d.path().join("p/cot.j2"),
            "Q: {{ question }} Think, then say The answer is N.",
        )
        .unwrap();
        std::fs::write(d.path().join("p/bad.j2"), "{% if %}").unwrap();
        let write = |se: &str| {
            std::fs::write(
                d.path().join("exp.toml"),
                format!("[data]\ndataset = \"svamp\"\n[prompts]\ncot = \"p/cot.j2\"\n{se}"),
            )
            .unwrap();
            Config::load(&d.path().join("exp.toml")).unwrap()
        };
        let cfg = write("");
        let ex = mentor_core::Example {
            id: "1".into(),
            question: "2 + 2?".into(),
            answer: "4".into(),
            choices: vec![],
            explanation: None,
        };
        let (_, user) = cfg
            .prompts()
            .unwrap()
            .cot(mentor_core::TaskKind::Numeric, &ex)
            .unwrap();
        assert_eq!(user, "Q: 2 + 2? Think, then say The answer is N.");
        let err = write("self_eval = \"p/bad.j2\"")
            .prompts()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("prompts.self_eval") && err.contains("bad.j2"),
            "{err}"
        );
    }
}
