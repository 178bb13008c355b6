use mentor_core::{extract::gold_answer, Split, TaskKind};
use mentor_data::{load_dataset, shared_data_dir, DataError, DatasetSpec, FieldMap};
use std::io::Write;

fn file_spec(path: &std::path::Path, task: TaskKind) -> DatasetSpec {
    DatasetSpec {
        path: Some(path.to_path_buf()),
        task: Some(task),
        ..Default::default()
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn jsonl_with_default_fields_splits_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..50)
        .map(|i| format!("{{\"question\": \"{i}+1?\", \"answer\": {}}}\n", i + 1))
        .collect();
    let p = write(&dir, "toy.jsonl", &rows);
    let ds = load_dataset(&file_spec(&p, TaskKind::Numeric)).unwrap();
    assert_eq!(ds.counts(), [40, 5, 5]);
    assert_eq!(ds.split_method, "seeded");
    assert_eq!(ds.name, "toy");
    // numbers become text, ids default to the line number
    let all: Vec<_> = ds.iter().map(|(_, e)| e.clone()).collect();
    let e = all.iter().find(|e| e.id == "3").unwrap();
    assert_eq!((e.question.as_str(), e.answer.as_str()), ("2+1?", "3"));
}

/// `limit` cuts every split; `train_limit` / `valid_limit` / `test_limit` cut one, so a
/// train-size curve keeps one fixed test set.
#[test]
fn per_split_limits_keep_the_test_set_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..200)
        .map(|i| format!("{{\"question\": \"{i}+1?\", \"answer\": {}}}\n", i + 1))
        .collect();
    let p = write(&dir, "toy.jsonl", &rows);
    let ids = |ds: &mentor_data::Dataset, s: Split| -> Vec<String> {
        ds.split(s).iter().map(|e| e.id.clone()).collect()
    };
    let full = load_dataset(&file_spec(&p, TaskKind::Numeric)).unwrap();
    assert_eq!(full.counts(), [160, 20, 20]);
    let small = load_dataset(&DatasetSpec {
        train_limit: Some(10),
        ..file_spec(&p, TaskKind::Numeric)
    })
    .unwrap();
    assert_eq!(small.counts(), [10, 20, 20]);
    assert_eq!(ids(&small, Split::Test), ids(&full, Split::Test));
    assert_eq!(ids(&small, Split::Train), ids(&full, Split::Train)[..10]);
    // `limit` applies where no per-split limit is given
    let mixed = load_dataset(&DatasetSpec {
        limit: Some(8),
        test_limit: Some(15),
        ..file_spec(&p, TaskKind::Numeric)
    })
    .unwrap();
    assert_eq!(mixed.counts(), [8, 8, 15]);
    assert_eq!(ids(&mixed, Split::Test), ids(&full, Split::Test)[..15]);
}

/// The most common shape of a user's multiple-choice file loads as it is: its `id` and
/// `choices` are read without a `fields` table.
#[test]
fn common_multiple_choice_rows_load_without_a_field_map() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..20)
        .map(|i| {
            format!(
                "{{\"id\": \"mc-{i}\", \"question\": \"Pick {i}\", \"choices\": [\"one\", \"two\", \"three\"], \"answer\": \"C\"}}\n"
            )
        })
        .collect();
    let p = write(&dir, "mc.jsonl", &rows);
    let ds = load_dataset(&file_spec(&p, TaskKind::MultipleChoice)).unwrap();
    let all: Vec<_> = ds.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(all.len(), 20);
    let e = all.iter().find(|e| e.id == "mc-7").unwrap();
    assert_eq!(e.choices.len(), 3);
    assert_eq!(e.answer, "C");
    assert_eq!(e.gold_choice(), Some(2));
}

#[test]
fn malformed_jsonl_row_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "bad.jsonl", "{\"question\": \"a\", \"answer\": 1}\n\n{\"question\": \"b\"\n{\"question\": \"c\", \"answer\": 3}\n");
    let err = load_dataset(&file_spec(&p, TaskKind::Numeric)).unwrap_err();
    assert!(matches!(err, DataError::BadRow { line: 3, .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!("{}:3:", p.display())),
        "{err}"
    );
}

#[test]
fn missing_field_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "miss.jsonl",
        "{\"question\": \"a\", \"answer\": 1}\n{\"question\": \"b\"}\n",
    );
    let err = load_dataset(&file_spec(&p, TaskKind::Numeric))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("miss.jsonl:2:") && err.contains("`answer`"),
        "{err}"
    );
}

#[test]
fn skip_bad_rows_counts_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "mixed.jsonl", "{\"question\": \"a\", \"answer\": 1}\nnot json\n{\"question\": \"b\"}\n{\"question\": \"c\", \"answer\": 3}\n");
    let mut spec = file_spec(&p, TaskKind::Numeric);
    spec.skip_bad_rows = true;
    spec.fractions = [1.0, 0.0, 0.0];
    let ds = load_dataset(&spec).unwrap();
    assert_eq!(ds.counts(), [2, 0, 0]);
    assert_eq!(ds.skipped.len(), 2);
    assert!(
        ds.skipped[0].contains("mixed.jsonl:2:") && ds.skipped[1].contains("mixed.jsonl:3:"),
        "{:?}",
        ds.skipped
    );
}

#[test]
fn json_array_rows_carry_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "arr.json", "[\n  {\"q\": \"a\", \"a\": \"yes\"},\n  {\"q\": \"b\", \"a\": \"no\"},\n  {\"q\": \"c\"}\n]\n");
    let mut spec = file_spec(&p, TaskKind::YesNo);
    spec.fields = FieldMap {
        question: "q".into(),
        answer: "a".into(),
        ..Default::default()
    };
    let err = load_dataset(&spec).unwrap_err().to_string();
    assert!(err.contains("arr.json:4:"), "{err}");
}

#[test]
fn dotted_fields_choices_and_given_splits() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "mc.jsonl.gz", "");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::fast(),
    );
    for (i, split) in ["train", "validation", "test", "train"].iter().enumerate() {
        writeln!(
            gz,
            "{{\"doc\": {{\"id\": \"d{i}\", \"q\": \"where?\", \"opts\": {{\"label\": [\"A\",\"B\"], \"text\": [\"bank\",\"river\"]}}, \"key\": \"river\"}}, \"part\": \"{split}\"}}"
        )
        .unwrap();
    }
    gz.finish().unwrap();
    let mut spec = file_spec(&p, TaskKind::MultipleChoice);
    spec.fields = FieldMap {
        id: Some("doc.id".into()),
        question: "doc.q".into(),
        answer: "doc.key".into(),
        choices: Some("doc.opts".into()),
        split: Some("part".into()),
        ..Default::default()
    };
    let ds = load_dataset(&spec).unwrap();
    assert_eq!(ds.counts(), [2, 1, 1]);
    assert_eq!(ds.split_method, "given");
    let e = &ds.split(Split::Valid)[0];
    assert_eq!(
        (e.id.as_str(), e.answer.as_str(), e.choices[1].text.as_str()),
        ("d1", "B", "river")
    );
}

#[test]
fn file_dataset_requires_a_task_kind_and_one_source() {
    let spec = DatasetSpec {
        path: Some("x.jsonl".into()),
        ..Default::default()
    };
    assert!(load_dataset(&spec)
        .unwrap_err()
        .to_string()
        .contains("task = "));
    let spec = DatasetSpec {
        dataset: Some("svamp".into()),
        path: Some("x.jsonl".into()),
        ..Default::default()
    };
    assert!(load_dataset(&spec)
        .unwrap_err()
        .to_string()
        .contains("choose one"));
    let err = load_dataset(&DatasetSpec::builtin("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("svamp") && err.contains("gsm8k"), "{err}");
}

#[test]
fn missing_asset_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY of env mutation: this is the only test in this binary that reads MENTOR_HOME.
    unsafe { std::env::set_var("MENTOR_HOME", dir.path()) };
    let err = load_dataset(&DatasetSpec::builtin("gsm8k"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mentor fetch-assets gsm8k"), "{err}");
}

// ---- the recorded step-by-step release files (skip with a message when absent) --------------

fn shared() -> bool {
    let ok = shared_data_dir().is_some_and(|d| d.join("dss").is_dir());
    if !ok {
        mentor_data::skip::skip_test(
            "datasets",
            "shared reference data (dss/) not found; set MENTOR_SHARED_DATA",
            "MENTOR_REQUIRE_SHARED_DATA",
        );
    }
    ok
}

#[test]
fn svamp_release_720_80_200_with_palm_cots() {
    if !shared() {
        return;
    }
    let ds = load_dataset(&DatasetSpec::builtin("svamp")).unwrap();
    assert_eq!(ds.counts(), [720, 80, 200]);
    assert_eq!(ds.task, TaskKind::Equation);
    assert_eq!(ds.recorded.len(), 1000);
    for (_, e) in ds.iter() {
        assert!(
            gold_answer(TaskKind::Equation, e).is_some(),
            "gold of {} unparseable",
            e.id
        );
    }
    // same seed, same valid split
    let again = load_dataset(&DatasetSpec::builtin("svamp")).unwrap();
    assert_eq!(ds.split(Split::Valid), again.split(Split::Valid));
}

#[test]
fn fair_svamp_is_scored_on_svamp_valid_and_test_without_its_own_questions() {
    if !shared() || !shared_data_dir().unwrap().join("fair").is_dir() {
        return;
    }
    let spec = DatasetSpec {
        eval_dataset: Some("svamp".into()),
        ..DatasetSpec::builtin("fair-svamp")
    };
    let ds = load_dataset(&spec).unwrap();
    let svamp = load_dataset(&DatasetSpec::builtin("svamp")).unwrap();
    let [tr, va, te] = ds.counts();
    assert_eq!(tr, 387);
    // 82 of SVAMP's 200 test questions are among FAIR's train mistakes (measured); none is kept
    assert!(va < 80 && te < 200 && te > 100, "{:?}", ds.counts());
    assert_eq!(ds.task, TaskKind::Numeric);
    let key = |q: &str| -> String {
        q.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let train: std::collections::HashSet<String> = ds
        .split(Split::Train)
        .iter()
        .map(|e| key(&e.question))
        .collect();
    for s in [Split::Valid, Split::Test] {
        assert!(ds
            .split(s)
            .iter()
            .all(|e| !train.contains(&key(&e.question))));
    }
    // gold equations became numbers: "( 10.0 * 45.0 )" → "450"
    let first = &ds.split(Split::Test)[0];
    let orig = svamp
        .split(Split::Test)
        .iter()
        .find(|e| e.question == first.question)
        .unwrap();
    let v = mentor_core::equation::evaluate(&orig.answer).unwrap();
    assert_eq!(first.answer.parse::<f64>().unwrap(), v);
    assert!(ds.source.contains("also in train"), "{}", ds.source);
    // `eval_pool = "all"`: SVAMP's train questions that are not FAIR mistakes score too
    let all = load_dataset(&DatasetSpec {
        eval_pool: mentor_data::EvalPool::All,
        ..spec.clone()
    })
    .unwrap();
    let [_, va_all, te_all] = all.counts();
    assert_eq!(va_all, va);
    assert!(te_all > 500 && va_all + te_all <= 613, "{:?}", all.counts());
    for s in [Split::Valid, Split::Test] {
        assert!(all
            .split(s)
            .iter()
            .all(|e| !train.contains(&key(&e.question))));
    }
    let ids: std::collections::HashSet<&str> = all
        .split(Split::Test)
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids.len(), te_all, "test ids are unique");
    assert!(ds
        .split(Split::Test)
        .iter()
        .all(|e| ids.contains(e.id.as_str())));
    // a task that cannot be converted is refused
    let bad = DatasetSpec {
        eval_dataset: Some("cqa".into()),
        ..DatasetSpec::builtin("fair-svamp")
    };
    assert!(load_dataset(&bad).is_err());
}

#[test]
fn cqa_and_anli_release_counts() {
    if !shared() {
        return;
    }
    let cqa = load_dataset(&DatasetSpec::builtin("cqa")).unwrap();
    assert_eq!(cqa.counts().iter().sum::<usize>(), 9741 + 1221);
    assert_eq!(cqa.split(Split::Test).len(), 1221);
    assert_eq!(cqa.recorded.len(), 9741 + 1221);
    assert!(cqa.iter().all(|(_, e)| e.gold_choice().is_some()));
    let anli = load_dataset(&DatasetSpec::builtin("anli1")).unwrap();
    assert_eq!(anli.counts(), [800, 200, 1000]);
    assert_eq!(anli.recorded.len(), 2000);
}

#[test]
fn palm_label_accuracy_on_svamp_snapshot_within_half_a_point_of_the_published_figure() {
    // The data README gives PaLM-540B's SVAMP label accuracy as 73.5% train / 74.0% test
    // (588/800, 148/200). No plain reading of the format reproduces both exactly (the lenient
    // whole-span reading gives 594/155); mentor's "(<equation>)." reading (with its fallbacks) gives 590/149,
    // within 0.5 points of each. A snapshot of our reading, not the published figure: pinned so
    // any parser change shows up here.
    if !shared() {
        return;
    }
    let ds = load_dataset(&DatasetSpec::builtin("svamp")).unwrap();
    let by_id: std::collections::HashMap<_, _> =
        ds.iter().map(|(_, e)| (e.id.clone(), e.clone())).collect();
    let (mut train_ok, mut train_n, mut test_ok, mut test_n) = (0, 0, 0, 0);
    for r in &ds.recorded {
        let e = &by_id[&r.example_id];
        let s = mentor_core::score_prediction(TaskKind::Equation, e, &r.text, Default::default());
        if r.example_id.starts_with("train") {
            train_n += 1;
            train_ok += s.correct as usize;
        } else {
            test_n += 1;
            test_ok += s.correct as usize;
        }
    }
    let (tr, te) = (
        train_ok as f64 / train_n as f64,
        test_ok as f64 / test_n as f64,
    );
    eprintln!("PaLM SVAMP label accuracy: train {tr:.4} ({train_ok}/{train_n}), test {te:.4} ({test_ok}/{test_n})");
    assert_eq!((train_ok, train_n, test_ok, test_n), (590, 800, 149, 200));
    assert!((tr - 0.735).abs() <= 0.0051 && (te - 0.740).abs() <= 0.0051);
}

// ---- recorded committees and self-evaluations ---------------------------------------------------

#[test]
fn fair_release_loads_387_svamp_mistakes_with_three_teachers() {
    if !shared() {
        return;
    }
    let dir = shared_data_dir().unwrap().join("fair");
    let m = mentor_data::recorded::load_fair(&dir, "Llama-2-7b-chat-hf", "svamp").unwrap();
    assert_eq!(m.len(), 387);
    for x in &m {
        assert_eq!(x.teachers.len(), 3);
        for (t, o) in &x.teachers {
            assert!(
                o.feedback.is_some() && o.rationale.is_some(),
                "{} {t}",
                x.id
            );
            assert_eq!(o.peer_scores.len(), 2);
            assert!(
                o.peer_scores.iter().all(|(r, _)| r != t),
                "a teacher never reviews itself"
            );
        }
    }
    // StrategyQA has mistakes only (no feedback / rationale files in the release)
    let s = mentor_data::recorded::load_fair(&dir, "Llama-2-7b-chat-hf", "strategyQA").unwrap();
    assert_eq!(s.len(), 825);
    assert!(s[0].teachers["gpt"].rationale.is_none());
}

#[test]
fn minds_mirror_release_has_5_cots_with_5_self_evaluations_each() {
    if !shared() {
        return;
    }
    let dir = shared_data_dir().unwrap().join("minds-mirror");
    for split in ["train", "test"] {
        let items = mentor_data::recorded::load_minds_mirror(&dir, split).unwrap();
        assert_eq!(items.len(), 2, "{split}");
        for it in &items {
            assert_eq!(it.cots.len(), 5);
            assert!(it.evaluations.iter().all(|e| e.len() == 5));
            assert!(it.gold.is_some(), "gold equation for {}", it.id);
            assert!(it.prompt_tokens > 5000 && it.cost_usd > 0.0);
            assert!(it
                .evaluations
                .iter()
                .flatten()
                .all(|e| e.contains("the given answer is")));
        }
    }
}

/// With no `fields` table the names people use are found: `input` / `prompt` / `problem` for
/// the question, `options` for the choices, `answerKey` / `label` / `target` for the answer, and
/// Hugging Face's `choices: {text, label}`; a field found nowhere is an error naming the row's
/// fields and the key to set.
#[test]
fn common_field_names_load_without_a_field_map_and_a_missing_one_says_what_to_map() {
    let dir = tempfile::tempdir().unwrap();
    let mc = write(
        &dir,
        "mc.jsonl",
        &[
            r#"{"id": "a", "input": "Where do you keep money?", "options": ["park", "bank", "zoo"], "answerKey": "B"}"#,
            r#"{"id": "b", "question": "Where are lions?", "choices": {"text": ["park", "bank", "zoo"], "label": ["A", "B", "C"]}, "answerKey": "C"}"#,
            r#"{"id": "c", "prompt": "Where do kids play?", "options": ["park", "bank", "zoo"], "label": "park"}"#,
        ]
        .join("\n"),
    );
    let spec = DatasetSpec {
        fractions: [1.0, 0.0, 0.0],
        ..file_spec(&mc, TaskKind::MultipleChoice)
    };
    let ds = load_dataset(&spec).unwrap();
    let mut rows = ds.split(Split::Train).to_vec();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(rows[0].question, "Where do you keep money?");
    assert_eq!((rows[0].answer.as_str(), rows[0].choices.len()), ("B", 3));
    assert_eq!(
        (rows[1].answer.as_str(), rows[1].choices[2].text.as_str()),
        ("C", "zoo")
    );
    assert_eq!(
        rows[2].answer, "A",
        "an answer given as the option's text becomes its label"
    );

    let num = write(
        &dir,
        "num.jsonl",
        "{\"problem\": \"2 + 2?\", \"target\": 4}\n",
    );
    let ds = load_dataset(&DatasetSpec {
        fractions: [1.0, 0.0, 0.0],
        ..file_spec(&num, TaskKind::Numeric)
    })
    .unwrap();
    assert_eq!(ds.split(Split::Train)[0].answer, "4");

    let bad = write(&dir, "bad.jsonl", "{\"text\": \"2 + 2?\", \"answer\": 4}\n");
    let err = load_dataset(&file_spec(&bad, TaskKind::Numeric))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.jsonl:1:"), "{err}");
    assert!(err.contains("the row has: answer, text"), "{err}");
    assert!(err.contains("fields = { question = "), "{err}");
    // a mapped field is not second-guessed
    let spec = DatasetSpec {
        fields: FieldMap {
            question: "body".into(),
            ..FieldMap::default()
        },
        ..file_spec(&num, TaskKind::Numeric)
    };
    let err = load_dataset(&spec).unwrap_err().to_string();
    assert!(
        err.contains("no `body` field (the row has: problem, target)"),
        "{err}"
    );
}
