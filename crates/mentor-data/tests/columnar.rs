//! Parquet files and `datasets.save_to_disk` directories written with the Rust arrow crates load
//! like JSONL: the same field defaults, given splits from a DatasetDict, ClassLabel names, and
//! errors naming file and row. (`pyarrow_and_datasets_files_load` does the same on files written
//! by pyarrow and Hugging Face `datasets` themselves; opt-in, it builds a Python venv.)

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{Field, Fields, Schema};
use mentor_core::{Split, TaskKind};
use mentor_data::{load_dataset, DatasetSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn spec(path: &Path, task: TaskKind) -> DatasetSpec {
    DatasetSpec {
        path: Some(path.to_path_buf()),
        task: Some(task),
        ..Default::default()
    }
}

fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn string_lists(rows: &[&[&str]]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for s in *r {
            b.values().append_value(s);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn batch(columns: Vec<(&str, ArrayRef)>, metadata: HashMap<String, String>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn write_parquet(path: &Path, b: &RecordBatch) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, b.schema(), None).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
}

/// One `save_to_disk` Dataset directory: a stream-format shard and the state.json naming it.
fn write_dataset_dir(dir: &Path, b: &RecordBatch) {
    std::fs::create_dir_all(dir).unwrap();
    let shard = "data-00000-of-00001.arrow";
    let f = std::fs::File::create(dir.join(shard)).unwrap();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(f, &b.schema()).unwrap();
    w.write(b).unwrap();
    w.finish().unwrap();
    std::fs::write(
        dir.join("state.json"),
        format!(r#"{{"_data_files": [{{"filename": "{shard}"}}], "_split": null}}"#),
    )
    .unwrap();
}

#[test]
fn parquet_with_a_list_of_choices_and_an_index_answer_loads_without_a_field_map() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20;
    let qs: Vec<String> = (0..n).map(|i| format!("Which is number {i}?")).collect();
    let choice_rows: Vec<Vec<String>> = (0..n)
        .map(|i| (0..4).map(|k| format!("option {}", i + k)).collect())
        .collect();
    let choice_refs: Vec<Vec<&str>> = choice_rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let slices: Vec<&[&str]> = choice_refs.iter().map(Vec::as_slice).collect();
    let b = batch(
        vec![
            (
                "question",
                strings(&qs.iter().map(|q| Some(q.as_str())).collect::<Vec<_>>()),
            ),
            ("choices", string_lists(&slices)),
            // MMLU's shape: the answer is the 0-based index of the right choice
            (
                "answer",
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 4))),
            ),
        ],
        HashMap::new(),
    );
    let p = dir.path().join("mmlu-like.parquet");
    write_parquet(&p, &b);
    let ds = load_dataset(&spec(&p, TaskKind::MultipleChoice)).unwrap();
    assert_eq!(ds.counts().iter().sum::<usize>(), n as usize);
    assert_eq!(ds.split_method, "seeded");
    let all: Vec<_> = ds.iter().map(|(_, e)| e.clone()).collect();
    for e in &all {
        let i: usize = e.id.parse().unwrap();
        let want = ["A", "B", "C", "D"][(i - 1) % 4];
        assert_eq!(e.answer, want, "row {i}");
        assert_eq!(e.choices.len(), 4);
        assert_eq!(e.choices[0].text, format!("option {}", i - 1));
    }
    // what was guessed for each field is reported, with its row count
    assert_eq!(ds.fields["question"]["question"], n as usize);
    assert_eq!(ds.fields["choices"]["choices"], n as usize);
    assert_eq!(ds.fields["id"]["(row number)"], n as usize);
}

#[test]
fn hugging_face_shaped_parquet_with_choice_struct_and_answer_key() {
    let dir = tempfile::tempdir().unwrap();
    // CommonsenseQA on the Hub: choices = {label: [...], text: [...]}, answerKey
    let labels = string_lists(&[&["A", "B", "C"], &["A", "B", "C"]]);
    let texts = string_lists(&[&["bank", "river", "sky"], &["cat", "dog", "cow"]]);
    let choices = StructArray::new(
        Fields::from(vec![
            Field::new("label", labels.data_type().clone(), true),
            Field::new("text", texts.data_type().clone(), true),
        ]),
        vec![labels, texts],
        None,
    );
    let b = batch(
        vec![
            ("id", strings(&[Some("q1"), Some("q2")])),
            (
                "question",
                strings(&[Some("Where is money?"), Some("Which barks?")]),
            ),
            ("choices", Arc::new(choices)),
            ("answerKey", strings(&[Some("A"), Some("B")])),
        ],
        HashMap::new(),
    );
    let p = dir.path().join("csqa.parquet");
    write_parquet(&p, &b);
    let ds = load_dataset(&spec(&p, TaskKind::MultipleChoice)).unwrap();
    let mut all: Vec<_> = ds.iter().map(|(_, e)| e.clone()).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(all[0].id, "q1");
    assert_eq!(all[0].answer, "A");
    assert_eq!(all[1].answer, "B");
    assert_eq!(all[1].choices[1].text, "dog");
    assert_eq!(ds.fields["answer"]["answerKey"], 2);
    assert_eq!(ds.fields["id"]["id"], 2);
}

#[test]
fn save_to_disk_dataset_dict_gives_its_splits_and_class_label_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("anli-like");
    // datasets keeps the features in the schema's `huggingface` metadata; ClassLabel columns
    // hold integers whose names are listed there
    let meta = HashMap::from([(
        "huggingface".to_string(),
        r#"{"info": {"features": {"premise": {"dtype": "string", "_type": "Value"},
            "hypothesis": {"dtype": "string", "_type": "Value"},
            "label": {"names": ["entailment", "neutral", "contradiction"], "_type": "ClassLabel"}}}}"#
            .to_string(),
    )]);
    let make = |n: usize| {
        let qs: Vec<String> = (0..n)
            .map(|i| format!("Premise: p{i}\nHypothesis: h{i}"))
            .collect();
        batch(
            vec![
                (
                    "input",
                    strings(&qs.iter().map(|q| Some(q.as_str())).collect::<Vec<_>>()),
                ),
                (
                    "label",
                    Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 3))),
                ),
            ],
            meta.clone(),
        )
    };
    write_dataset_dir(&root.join("train"), &make(6));
    write_dataset_dir(&root.join("validation"), &make(3));
    write_dataset_dir(&root.join("test"), &make(4));
    // an unsupervised split mentor has no use for is skipped, not an error
    write_dataset_dir(&root.join("unsupervised"), &make(2));
    std::fs::write(
        root.join("dataset_dict.json"),
        r#"{"splits": ["train", "validation", "test", "unsupervised"]}"#,
    )
    .unwrap();
    let ds = load_dataset(&spec(&root, TaskKind::Nli)).unwrap();
    assert_eq!(ds.split_method, "given");
    assert_eq!(ds.counts(), [6, 3, 4]);
    let test = ds.split(Split::Test);
    assert_eq!(test[0].answer, "entailment");
    assert_eq!(test[1].answer, "neutral");
    assert_eq!(test[2].answer, "contradiction");
    // row numbers repeat across splits: ids carry the split to stay unique
    assert_eq!(test[0].id, "test-1");
    assert_eq!(ds.split(Split::Train)[0].id, "train-1");
    assert_eq!(ds.fields["question"]["input"], 13);
    assert_eq!(ds.fields["answer"]["label"], 13);
}

#[test]
fn a_bad_record_names_its_file_and_row_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(
        vec![
            ("question", strings(&[Some("1+1?"), None, Some("2+2?")])),
            ("answer", strings(&[Some("2"), Some("3"), Some("4")])),
        ],
        HashMap::new(),
    );
    let p = dir.path().join("maths.parquet");
    write_parquet(&p, &b);
    let err = load_dataset(&spec(&p, TaskKind::Numeric))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: row 2: no `question` field", p.display())),
        "{err}"
    );
    assert!(err.contains("the row has: answer"), "{err}");
    assert!(err.contains("fields = { question"), "{err}");
    let ds = load_dataset(&DatasetSpec {
        skip_bad_rows: true,
        ..spec(&p, TaskKind::Numeric)
    })
    .unwrap();
    assert_eq!(ds.counts().iter().sum::<usize>(), 2);
    assert_eq!(ds.skipped.len(), 1);
}

#[test]
fn a_file_that_is_not_parquet_or_a_directory_without_data_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.parquet");
    std::fs::write(&p, b"PAR1 this is not really parquet").unwrap();
    let err = load_dataset(&spec(&p, TaskKind::Numeric))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read", p.display())),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = load_dataset(&spec(&empty, TaskKind::Numeric))
        .unwrap_err()
        .to_string();
    assert!(err.contains("save_to_disk"), "{err}");
    let missing: PathBuf = dir.path().join("nowhere.parquet");
    let err = load_dataset(&spec(&missing, TaskKind::Numeric))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere.parquet"), "{err}");
}

#[test]
fn hub_parquet_shards_in_a_directory_take_their_split_from_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let rows = |qs: &[&str]| {
        batch(
            vec![
                (
                    "problem",
                    strings(&qs.iter().map(|q| Some(*q)).collect::<Vec<_>>()),
                ),
                (
                    "target",
                    strings(&qs.iter().map(|_| Some("1")).collect::<Vec<_>>()),
                ),
            ],
            HashMap::new(),
        )
    };
    write_parquet(
        &data.join("train-00000-of-00002.parquet"),
        &rows(&["a", "b"]),
    );
    write_parquet(&data.join("train-00001-of-00002.parquet"), &rows(&["c"]));
    write_parquet(&data.join("test-00000-of-00001.parquet"), &rows(&["d"]));
    let ds = load_dataset(&spec(&data, TaskKind::Numeric)).unwrap();
    assert_eq!(ds.counts(), [3, 0, 1]);
    let ids: Vec<&str> = ds
        .split(Split::Train)
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    // two shards of one split: the shard's name keeps the ids unique
    assert_eq!(
        ids,
        [
            "train-00000-of-00002-1",
            "train-00000-of-00002-2",
            "train-00001-of-00002-1"
        ]
    );
    assert_eq!(ds.split(Split::Test)[0].id, "test-1");
}

/// Writes the files with pyarrow and Hugging Face `datasets` (a venv in target/data-venv).
const PYTHON_WRITER: &str = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
from datasets import Dataset, DatasetDict, Features, Value, ClassLabel, Sequence
out = sys.argv[1]
# CommonsenseQA as the Hub has it: choices = {label, text}, answerKey; to_parquet keeps features
rows = [{"id": f"q{i}", "question": f"Which is option {i % 5}?",
         "choices": {"label": list("ABCDE"), "text": [f"t{k}" for k in range(5)]},
         "answerKey": "ABCDE"[i % 5]} for i in range(30)]
Dataset.from_list(rows).to_parquet(f"{out}/csqa.parquet")
# ANLI-like DatasetDict with a ClassLabel, saved to disk
feats = Features({"premise": Value("string"), "hypothesis": Value("string"),
                  "label": ClassLabel(names=["entailment", "neutral", "contradiction"])})
def split(n):
    return Dataset.from_dict({"premise": [f"p{i}" for i in range(n)],
                              "hypothesis": [f"h{i}" for i in range(n)],
                              "label": [i % 3 for i in range(n)]}, features=feats)
DatasetDict({"train": split(9), "validation": split(3), "test": split(6)}).save_to_disk(f"{out}/anli")
# MMLU-like parquet straight from pyarrow, zstd-compressed, answer as an index
t = pa.table({"question": [f"q{i}" for i in range(12)],
              "choices": [[f"c{i}{k}" for k in range(4)] for i in range(12)],
              "answer": [i % 4 for i in range(12)]})
pq.write_table(t, f"{out}/mmlu.parquet", compression="zstd")
"#;

#[test]
#[ignore = "builds a Python venv with pyarrow and datasets from PyPI; run with --ignored"]
fn pyarrow_and_datasets_files_load() {
    use std::process::Command;
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/data-venv");
    let py = venv.join("bin/python");
    if !py.is_file() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "pyarrow", "datasets"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install pyarrow datasets failed");
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new(&py)
        .args(["-c", PYTHON_WRITER])
        .arg(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "the Python writer failed");

    let csqa = load_dataset(&spec(
        &dir.path().join("csqa.parquet"),
        TaskKind::MultipleChoice,
    ))
    .unwrap();
    assert_eq!(csqa.counts().iter().sum::<usize>(), 30);
    for (_, e) in csqa.iter() {
        let i: usize = e.id[1..].parse().unwrap();
        assert_eq!(e.answer, ["A", "B", "C", "D", "E"][i % 5]);
        assert_eq!(e.choices[4].text, "t4");
    }

    let anli = load_dataset(&spec(&dir.path().join("anli"), TaskKind::Nli)).unwrap();
    assert_eq!(anli.split_method, "given");
    assert_eq!(anli.counts(), [9, 3, 6]);
    let names: Vec<&str> = anli
        .split(Split::Test)
        .iter()
        .map(|e| e.answer.as_str())
        .collect();
    assert_eq!(names[..3], ["entailment", "neutral", "contradiction"]);
    // premise and hypothesis become the question the built-in ANLI asks
    assert_eq!(
        anli.split(Split::Test)[0].question,
        "Premise: p0\nHypothesis: h0"
    );
    assert_eq!(anli.fields["question"]["premise + hypothesis"], 18);

    let mmlu = load_dataset(&DatasetSpec {
        fields: mentor_data::FieldMap {
            question: "question".into(),
            ..Default::default()
        },
        ..spec(&dir.path().join("mmlu.parquet"), TaskKind::MultipleChoice)
    })
    .unwrap();
    for (_, e) in mmlu.iter() {
        let i: usize = e.id.parse::<usize>().unwrap() - 1;
        assert_eq!(e.answer, ["A", "B", "C", "D"][i % 4]);
        assert_eq!(e.choices[0].text, format!("c{i}0"));
    }
}
