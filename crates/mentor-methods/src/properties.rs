//! Properties of the recipe-side parsers of model text (ELAD's revision parser and step
//! splitter, the rationale parser, the student prompt of user text) over arbitrary input: none
//! panics, and their shapes hold. `scripts/fuzz.sh` runs them at 10^6 cases.

use crate::annotate::rationale_parser;
use crate::elad::{parse_revision, split_steps};
use crate::trainset::{student_prompt, StudentTask};
use mentor_core::{Example, TaskKind};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z]{1,8}",
        "[0-9]{1,25}",
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just(". ".to_string()),
        "[-+*/()=,.:!?*]",
        Just("First flawed step:".to_string()),
        Just("Revised explanation:".to_string()),
        Just("The answer is ".to_string()),
        "\\PC{1,3}",
    ];
    prop::collection::vec(piece, 0..50).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn revision_parser_never_panics_and_keeps_what_follows_the_marker(t in text()) {
        if let Some(r) = parse_revision(&t) {
            prop_assert!(!r.revised.is_empty());
            prop_assert!(t.contains(r.revised.as_str()));
            prop_assert!(t.to_ascii_lowercase().contains("revised explanation:"));
        }
    }

    #[test]
    fn a_written_revision_reads_back(step in 1usize..50, body in "[a-zA-Z][a-zA-Z ]{0,39}") {
        let body = body.trim().to_string();
        let t = format!("Step {step} is off.\nFirst flawed step: {step}\nRevised explanation:\n{body}");
        let r = parse_revision(&t).unwrap();
        prop_assert_eq!(r.first_flawed_step, Some(step));
        prop_assert_eq!(r.revised, body);
    }

    #[test]
    fn steps_are_bounded_non_empty_and_from_the_text(t in text(), max in 0usize..12) {
        let steps = split_steps(&t, max);
        prop_assert!(steps.len() <= max);
        for s in &steps {
            prop_assert!(!s.trim().is_empty());
            prop_assert!(t.contains(s.as_str()), "{s:?} not in {t:?}");
        }
    }

    #[test]
    fn rationale_parser_and_prompts_take_any_text(t in text(), q in "\\PC{0,60}") {
        let ex = Example {
            id: "1".into(),
            question: q,
            answer: "7".into(),
            choices: vec![],
            explanation: None,
        };
        for kind in [TaskKind::Numeric, TaskKind::Equation, TaskKind::Nli, TaskKind::YesNo] {
            let (_, _) = rationale_parser(kind)(&ex, &t);
        }
        for task in [StudentTask::Label, StudentTask::Rationale, StudentTask::Cot, StudentTask::SelfEval, StudentTask::Feedback] {
            let p = student_prompt(task, TaskKind::Numeric, &ex, &t);
            prop_assert!(p.starts_with(task.prompt_prefix()));
        }
    }
}
