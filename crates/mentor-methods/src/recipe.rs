//! The `[recipe]` table: which method, and its knobs. Each recipe is the same loop (DESIGN.md §1)
//! with different teacher stages ([`Recipe::teacher_stages`]) and training pairs
//! ([`crate::recipes::training_set`]), one file a recipe in [`crate::recipes`], whose
//! [`crate::recipes::RecipeExt`] gives a `Recipe` its stages, tasks and inference mode. This
//! module is configuration only: it imports nothing of the crate.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecipeName {
    /// The student learns labels: gold, or the teacher's.
    Standard,
    /// Distilling step-by-step: `predict:` label and `explain:` rationale, α-weighted.
    StepByStep,
    /// Mind's Mirror: K chains of thought a question and M self-evaluations of each.
    MindsMirror,
    Mapd,
    Elad,
}

impl RecipeName {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipeName::Standard => "standard",
            RecipeName::StepByStep => "step-by-step",
            RecipeName::MindsMirror => "minds-mirror",
            RecipeName::Mapd => "mapd",
            RecipeName::Elad => "elad",
        }
    }
}

/// Where the standard recipe's labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    Gold,
    /// The answer the teacher's chain of thought ends in (one teacher call an item).
    Teacher,
}

/// How a multiple-choice label is written for the student's `predict:` task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChoiceLabel {
    /// `So the answer is (d) darwin.`: the option's letter first (the step-by-step release's
    /// format, and the sentence teachers are asked to end with).
    #[default]
    Letter,
    /// `So the answer is darwin.`: the option's text alone, read back by matching the options.
    /// A small student says what it knows without first mapping it to a letter.
    Text,
}

/// Where MAPD's student answers (to mine mistakes from) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MistakesFrom {
    /// The configured student answers the train split (temperature 0.3, top-p 0.9).
    Student,
    /// The dataset's recorded student answers (`fair-svamp`: Llama-2-7B-chat's).
    Recorded,
}

/// How many MAPD training pairs a mistake gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairsPerMistake {
    /// One feedback and one accepted rationale, drawn at random (seeded), as the authors did.
    One,
    /// Every feedback and every accepted rationale.
    All,
}

/// What Mind's Mirror's student learns from each chain of thought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CotTargets {
    /// `solve:` → the whole chain of thought, ending in the teacher's own answer (right or
    /// wrong unless `filter_correct`); scored with `cot` / `vote` / `self-eval-vote`.
    Cot,
    /// The authors' release: per chain of thought, `predict:` → the gold answer (weight α) and
    /// `explain:` → its rationale (1 − α), step-by-step's two tasks over K rationales; scored
    /// with the label head (`label`).
    LabelRationale,
}

/// What Mind's Mirror's student learns to say when it judges a chain of thought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelfEvalTargets {
    /// The teacher's judgement, its verdict line made canonical (the paper).
    Teacher,
    /// Only the teacher's judgements whose verdict agrees with the chain of thought's gold
    /// correctness (ours, a departure: a weak teacher's verdicts are often wrong).
    GoldAgreeing,
    /// The gold correctness as the verdict (ours, a departure): the teacher's critique and
    /// verdict where its verdict agrees with gold, the gold verdict line alone where it does not
    /// (the critique argued the other side).
    Gold,
}

/// How Mind's Mirror's two tasks are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskSchedule {
    /// Self-evaluation first, then chains of thought, from the first stage's weights (the
    /// authors' release).
    TwoStage,
    /// Both tasks in one run, weighted by `self_eval_weight`.
    Mixed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    pub name: RecipeName,
    /// Weight of the label task (step-by-step) or feedback task (MAPD); 1 − α goes to rationales.
    pub alpha: f64,
    /// Standard and step-by-step: learn the gold labels or the teacher's (the step-by-step
    /// paper's `label_type llm`).
    pub label_source: LabelSource,
    /// Multiple choice: the label the student learns names the option by `letter` (default) or
    /// by its `text`.
    pub choice_label: ChoiceLabel,
    /// Keep only teacher chains of thought whose parsed answer matches the gold label.
    pub filter_correct: bool,
    /// Train on teacher chains of thought from which no answer could be read (often replies cut
    /// at the token limit). Off by default: they are counted and left out.
    pub keep_unparseable_cots: bool,
    /// Chains of thought per question (Mind's Mirror K).
    pub cots_per_question: u32,
    /// Sampling temperature of the teacher's chains of thought when K > 1 (diversity).
    pub cot_temperature: f64,
    /// Self-evaluations per chain of thought (Mind's Mirror M; 0 = none, "K CoTs" only).
    pub evals_per_cot: u32,
    /// Mind's Mirror: `cot` (solve: → the chain of thought) or `label-rationale` (the release's
    /// predict: → gold label, explain: → each chain of thought's rationale).
    pub targets: CotTargets,
    /// Mind's Mirror: which judgements the self-evaluation task learns (`teacher`,
    /// `gold-agreeing`, `gold`).
    pub self_eval_targets: SelfEvalTargets,
    /// Mind's Mirror: `two-stage` (self-evaluation, then CoT) or `mixed`.
    pub schedule: TaskSchedule,
    /// Mind's Mirror `mixed`: weight of the self-evaluation task; 1 − it goes to CoTs.
    pub self_eval_weight: f64,
    /// Peer-review acceptance threshold: accept when the mean valid score is above it (MAPD).
    pub review_threshold: f64,
    /// MAPD: where the student answers come from.
    pub mistakes_from: MistakesFrom,
    /// MAPD: feedback and rationale pairs per mistake.
    pub pairs_per_mistake: PairsPerMistake,
    /// MAPD: the teachers explain each mistake (the feedback task). Off: rationales only (the
    /// ablations without feedback).
    pub feedback: bool,
    /// MAPD: the teachers peer-review each other's rationales and only those above
    /// `review_threshold` are kept. Off: every rationale is kept (one teacher, or the committee
    /// without review).
    pub review: bool,
    /// MAPD: keep a mistake's feedback when none of its rationales was accepted. The release
    /// drops the whole mistake (off, the default).
    pub keep_unaccepted_feedback: bool,
    /// MAPD: rounds of mistake mining. 1 is the authors' single pass; each further round has
    /// the last round's student answer the train split again, the committee works on its new
    /// mistakes, and the student retrains on every round's pairs.
    pub mining_rounds: u32,
    /// Seeds the recipe's random draws (MAPD's pair per mistake, ELAD's random baseline).
    pub seed: u64,
    /// Seeds the teacher's sampling (the seed sent with each chain-of-thought sample). Apart
    /// from the training seed on purpose: `mentor distill --seed` leaves it alone, so the seeds
    /// of an experiment ask the teacher the same requests (one teacher run, cached) and their
    /// spread measures training, not the teacher's draws.
    pub teacher_seed: u64,
    /// ELAD: share of the train pool annotated up front (the seed set), at least one item.
    pub seed_fraction: f64,
    /// ELAD: selection rounds after the seed round.
    pub rounds: u32,
    /// ELAD: items sent to the teacher each round (B).
    pub round_budget: usize,
    /// ELAD: which ranking selects (`elad`, or a baseline: `random`, `answer-entropy`,
    /// `least-confidence`).
    pub selection: SelectionStrategy,
    /// ELAD: the teacher revises the student's explanation (true) or writes its own chain of
    /// thought from scratch (false, the baseline).
    pub revise: bool,
    /// ELAD: show the teacher the gold answer when revising.
    pub reveal_gold: bool,
    /// ELAD, MAPD with several mining rounds: each round retrains from the base student
    /// (`restart`) or from the previous round's best (`continue`).
    pub retrain: Retrain,
    /// ELAD, MAPD: stop after this many rounds without a better validation accuracy (0 = never).
    pub patience: u32,
    /// ELAD, MAPD with several mining rounds: which round's student is scored on test.
    pub tested_round: TestedRound,
    /// ELAD: how the student's uncertainty is probed.
    pub probe: ProbeConfig,
    /// Token-level distillation from an embedded teacher's logits, beside the recipe's text
    /// targets (any recipe: the student trains on the same pairs, its loss mixes in the teacher's
    /// next-token distributions).
    pub kd: Option<RecipeKd>,
}

/// `[recipe] kd = { teacher = "qwen", loss = "forward-kl", weight = 0.5, temperature = 2.0 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeKd {
    /// The `[teachers.NAME]` of `kind = "local"` whose model gives the logits; it must share the
    /// student's tokenizer (Qwen2.5-Coder-1.5B → Qwen2.5-Coder-0.5B, for example).
    pub teacher: String,
    /// `forward-kl` | `reverse-kl` | `jsd`.
    #[serde(default = "forward_kl")]
    pub loss: mentor_train::KdLoss,
    /// Share of the KD term in the loss: `(1 − weight) · CE + weight · KD`.
    #[serde(default = "half")]
    pub weight: f32,
    #[serde(default = "one")]
    pub temperature: f32,
    /// JSD's mixture weight, in (0, 1).
    #[serde(default = "half")]
    pub beta: f32,
    /// On-policy share λ (GKD): this share of batches train on the student's own samples,
    /// scored by the teacher.
    #[serde(default)]
    pub on_policy: f32,
    /// The tasks whose target tokens take the KD term (`["rationale"]`: not the bare label, a
    /// format the teacher was never asked for); empty (default): every task the recipe trains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
}

fn forward_kl() -> mentor_train::KdLoss {
    mentor_train::KdLoss::ForwardKl
}
fn half() -> f32 {
    0.5
}
fn one() -> f32 {
    1.0
}

impl RecipeKd {
    /// The training loop's setting.
    pub fn settings(&self) -> mentor_train::KdSettings {
        mentor_train::KdSettings {
            weight: self.weight,
            temperature: self.temperature,
            loss: self.loss,
            beta: self.beta,
            on_policy: self.on_policy,
            tasks: self.tasks.clone(),
        }
    }
}

/// Which ranking picks the items sent to the teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionStrategy {
    /// Mean of step instability and answer entropy (ELAD).
    Elad,
    /// Seeded random order (baseline).
    Random,
    /// Answer entropy across samples only (baseline).
    AnswerEntropy,
    /// 1 − per-token probability of the greedy explanation (baseline).
    LeastConfidence,
}

impl SelectionStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionStrategy::Elad => "elad",
            SelectionStrategy::Random => "random",
            SelectionStrategy::AnswerEntropy => "answer-entropy",
            SelectionStrategy::LeastConfidence => "least-confidence",
        }
    }
}

/// How the student is probed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Sampled explanations per item (K), besides the greedy one.
    pub samples: usize,
    pub temperature: f64,
    pub max_new_tokens: usize,
    /// Step prefixes probed per explanation (the first ones).
    pub max_steps: usize,
    /// Tokens generated after "So the answer is" at each step prefix.
    pub answer_tokens: usize,
    pub batch: usize,
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            samples: 4,
            temperature: 0.7,
            max_new_tokens: 160,
            max_steps: 6,
            answer_tokens: 12,
            batch: 32,
            seed: 0,
        }
    }
}

/// Which round's student a recipe in rounds is scored with on test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestedRound {
    /// The round with the best validation accuracy (the earliest on ties): the best student.
    Best,
    /// The last round's: the student that spent the whole teacher budget. Variants compared at
    /// equal budget are compared here; with a small validation set, `best` can fall back to an
    /// early round (round 0's student is the same for every selection rule).
    Last,
}

/// Where each ELAD round's training starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retrain {
    Restart,
    Continue,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            name: RecipeName::StepByStep,
            alpha: 0.5,
            label_source: LabelSource::Gold,
            choice_label: ChoiceLabel::Letter,
            filter_correct: false,
            keep_unparseable_cots: false,
            cots_per_question: 5,
            cot_temperature: 0.7,
            evals_per_cot: 5,
            targets: CotTargets::Cot,
            self_eval_targets: SelfEvalTargets::Teacher,
            schedule: TaskSchedule::TwoStage,
            self_eval_weight: 0.5,
            review_threshold: 3.0,
            mistakes_from: MistakesFrom::Student,
            pairs_per_mistake: PairsPerMistake::One,
            feedback: true,
            review: true,
            keep_unaccepted_feedback: false,
            mining_rounds: 1,
            seed: 0,
            teacher_seed: 0,
            seed_fraction: 0.05,
            rounds: 3,
            round_budget: 16,
            selection: SelectionStrategy::Elad,
            revise: true,
            reveal_gold: false,
            retrain: Retrain::Restart,
            patience: 0,
            tested_round: TestedRound::Best,
            probe: ProbeConfig::default(),
            kd: None,
        }
    }
}

/// A teacher stage a recipe runs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeacherStage {
    /// Chains of thought: `samples` a question.
    Cots { samples: u32 },
    /// Self-evaluations of every distinct chain of thought: `per_cot` each.
    SelfEvals { per_cot: u32 },
    /// MAPD: every teacher explains each mined mistake (gold answer as a hint).
    Feedback,
    /// MAPD: every teacher writes its own rationale for each mistake's question (no hint).
    MistakeRationales,
    /// MAPD: every teacher scores every other teacher's rationale 1–5 (gold answer given).
    Reviews,
}

/// Store names of the stages' annotations: (stage, kind).
pub const COT_STAGE: (&str, &str) = ("annotate", "rationale");
pub const SELF_EVAL_STAGE: (&str, &str) = ("self-eval", "self-eval");
/// MAPD: the student's answers to the train split (source `student` or the recorded student).
pub const MINE_STAGE: (&str, &str) = ("mine", "student-answer");
pub const FEEDBACK_STAGE: (&str, &str) = ("feedback", "feedback");
pub const REVIEW_STAGE: (&str, &str) = ("review", "review");
/// ELAD: the teacher's revisions of the student's explanations (round = selection round).
pub const REVISE_STAGE: (&str, &str) = ("revise", "revision");
/// ELAD: the selection stage's name in the store's `selections` table.
pub const ELAD_SELECT_STAGE: &str = "elad-select";

impl Recipe {
    /// The teacher's sampling temperature for chains of thought (None = the teacher's default).
    pub fn cot_temperature(&self) -> Option<f64> {
        (self.name == RecipeName::MindsMirror && self.cots_per_question > 1)
            .then_some(self.cot_temperature)
    }

    /// Checks values serde cannot: `Err((dotted key, message))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (k, v) in [
            ("recipe.alpha", self.alpha),
            ("recipe.self_eval_weight", self.self_eval_weight),
            ("recipe.seed_fraction", self.seed_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err((k, format!("{v} is not in [0, 1]")));
            }
        }
        if let Some(kd) = &self.kd {
            if let Err(e) = kd.settings().check() {
                return Err(("recipe.kd", e));
            }
        }
        if self.mining_rounds == 0 {
            return Err((
                "recipe.mining_rounds",
                "must be at least 1 (the first mining pass)".into(),
            ));
        }
        Ok(())
    }
}
