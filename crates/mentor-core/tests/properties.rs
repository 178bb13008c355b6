//! Properties of every parser of model text, over arbitrary and adversarial input: none panics,
//! and what must hold does (an answer written as the task's answer sentence reads back as itself,
//! normalisation is idempotent, an equation's value ignores whitespace). Cases per property:
//! proptest's default (256) in the ordinary suite; `PROPTEST_CASES=1000000` (scripts/fuzz.sh)
//! for long runs.

use mentor_core::equation::{evaluate, values_match};
use mentor_core::extract::{answers_match, extract, gold_answer, lm_eval_normalize};
use mentor_core::prompt::answer_sentence;
use mentor_core::review::parse_review_score;
use mentor_core::text::{split_rationale, truncate_at_follow_on, FOLLOW_ON_MARKERS};
use mentor_core::{
    normalise_self_eval, parse_verdict, Choice, Example, NumericRule, TaskKind, Verdict,
};
use proptest::prelude::*;

const KINDS: [TaskKind; 5] = [
    TaskKind::Numeric,
    TaskKind::Equation,
    TaskKind::MultipleChoice,
    TaskKind::Nli,
    TaskKind::YesNo,
];

fn example(answer: &str, choices: &[&str]) -> Example {
    Example {
        id: "1".into(),
        question: "q".into(),
        answer: answer.into(),
        choices: choices
            .iter()
            .enumerate()
            .map(|(i, t)| Choice {
                label: ((b'A' + i as u8) as char).to_string(),
                text: t.to_string(),
            })
            .collect(),
        explanation: None,
    }
}

/// Text a model might write: words, numbers, operators, brackets, answer phrases, verdict words,
/// newlines, and arbitrary Unicode.
fn modelish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z]{1,8}",
        "-?[0-9]{1,6}(\\.[0-9]{1,3})?",
        Just(" ".to_string()),
        Just("\n".to_string()),
        "[-+*/()=,.$%×÷^\\[\\]]",
        Just("The answer is ".to_string()),
        Just("So the answer is ".to_string()),
        Just("Evaluation result: the given answer is ".to_string()),
        Just("correct".to_string()),
        Just("wrong".to_string()),
        Just("#### ".to_string()),
        Just("Question:".to_string()),
        "\\PC{1,4}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn no_parser_panics_on_model_text(text in modelish()) {
        let mc = example("B", &["red", "green", "blue"]);
        for kind in KINDS {
            let ex = if kind == TaskKind::MultipleChoice { mc.clone() } else { example("7", &[]) };
            for rule in [NumericRule::Auto, NumericRule::StrictMatch, NumericRule::FlexibleExtract] {
                let _ = extract(kind, &text, &ex, rule);
            }
        }
        let _ = evaluate(&text);
        let _ = parse_verdict(&text);
        let _ = parse_review_score(&text);
        let _ = split_rationale(&text);
        let _ = truncate_at_follow_on(&text, FOLLOW_ON_MARKERS);
        let _ = normalise_self_eval(&text, Verdict::Wrong);
    }

    #[test]
    fn no_parser_panics_on_arbitrary_unicode(text in "\\PC*") {
        let ex = example("A", &["x", "y"]);
        for kind in KINDS {
            let _ = extract(kind, &text, &ex, NumericRule::Auto);
        }
        let _ = evaluate(&text);
        let _ = parse_verdict(&text);
        let _ = parse_review_score(&text);
        let _ = split_rationale(&text);
    }

    /// A numeric gold written as the answer sentence is extracted back as itself.
    #[test]
    fn numeric_answer_sentence_reads_back(n in -1_000_000i64..1_000_000, frac in 0u32..1000, dec in any::<bool>()) {
        let answer = if dec { format!("{n}.{frac:03}") } else { n.to_string() };
        let ex = example(&answer, &[]);
        let s = answer_sentence(TaskKind::Numeric, &ex);
        let got = extract(TaskKind::Numeric, &s, &ex, NumericRule::Auto).answer;
        let gold = gold_answer(TaskKind::Numeric, &ex);
        prop_assert!(got.is_some() && gold.is_some(), "{s}");
        prop_assert!(answers_match(got.as_ref().unwrap(), gold.as_ref().unwrap()), "{s} → {got:?}");
    }

    /// An equation gold written as the answer sentence is extracted back with its value.
    #[test]
    fn equation_answer_sentence_reads_back(a in 1u32..1000, b in 1u32..1000, op in prop::sample::select(vec!['+', '-', '*', '/'])) {
        let answer = format!("( {a}.0 {op} {b}.0 )");
        let ex = example(&answer, &[]);
        let s = answer_sentence(TaskKind::Equation, &ex);
        let got = extract(TaskKind::Equation, &s, &ex, NumericRule::Auto).answer;
        let gold = gold_answer(TaskKind::Equation, &ex);
        prop_assert!(got.is_some() && gold.is_some(), "{s}");
        prop_assert!(answers_match(got.as_ref().unwrap(), gold.as_ref().unwrap()), "{s} → {got:?}");
    }

    /// A choice written as the answer sentence (letter and text) reads back as that choice.
    #[test]
    fn choice_answer_sentence_reads_back(texts in prop::collection::vec("[a-z]{1,10}( [a-z]{1,8})?", 2..6), pick in 0usize..6) {
        let pick = pick % texts.len();
        let label = ((b'A' + pick as u8) as char).to_string();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ex = example(&label, &refs);
        let s = answer_sentence(TaskKind::MultipleChoice, &ex);
        let got = extract(TaskKind::MultipleChoice, &s, &ex, NumericRule::Auto).answer;
        let gold = gold_answer(TaskKind::MultipleChoice, &ex);
        prop_assert_eq!(got, gold, "{}", s);
    }

    /// NLI and yes/no labels read back.
    #[test]
    fn label_answer_sentences_read_back(i in 0usize..3, yes in any::<bool>()) {
        let nli = ["entailment", "neutral", "contradiction"][i];
        let ex = example(nli, &[]);
        let s = answer_sentence(TaskKind::Nli, &ex);
        prop_assert_eq!(extract(TaskKind::Nli, &s, &ex, NumericRule::Auto).answer, gold_answer(TaskKind::Nli, &ex));
        let yn = if yes { "yes" } else { "no" };
        let ex = example(yn, &[]);
        let s = answer_sentence(TaskKind::YesNo, &ex);
        prop_assert_eq!(extract(TaskKind::YesNo, &s, &ex, NumericRule::Auto).answer, gold_answer(TaskKind::YesNo, &ex));
    }

    /// Normalising twice changes nothing — except where lm-eval-harness itself is not
    /// idempotent: its `\.$` strips one trailing period a pass (found by this property at
    /// "..": see `lm_eval_strips_one_trailing_period_a_pass`).
    #[test]
    fn normalisation_is_idempotent(text in modelish()) {
        let once = lm_eval_normalize(&text);
        if !once.ends_with('.') {
            prop_assert_eq!(lm_eval_normalize(&once), once.clone());
        }
        for v in [Verdict::Correct, Verdict::Wrong, Verdict::Uncertain] {
            let t = normalise_self_eval(&text, v);
            prop_assert_eq!(normalise_self_eval(&t, v), t.clone());
            prop_assert_eq!(parse_verdict(&t), Some(v), "{}", t);
        }
    }

    /// An equation's value does not depend on the whitespace around its tokens.
    #[test]
    fn equation_value_ignores_whitespace(nums in prop::collection::vec(1u32..10_000, 2..6), ops in prop::collection::vec(prop::sample::select(vec!["+", "-", "*", "/"]), 5), gaps in prop::collection::vec(prop::sample::select(vec!["", " ", "  ", "\t"]), 12)) {
        let mut tight = String::new();
        let mut loose = String::new();
        for (i, n) in nums.iter().enumerate() {
            if i > 0 {
                tight += ops[i - 1];
                loose += gaps[2 * i - 1];
                loose += ops[i - 1];
            }
            tight += &n.to_string();
            loose += gaps[2 * i];
            loose += &n.to_string();
        }
        match (evaluate(&tight), evaluate(&loose)) {
            (Ok(a), Ok(b)) => prop_assert!(values_match(a, b), "{tight} = {a}, {loose:?} = {b}"),
            (a, b) => prop_assert_eq!(a.is_ok(), b.is_ok(), "{} vs {:?}", tight, loose),
        }
    }
}

/// Input no model should write, but a broken one or a hostile file can: each parser returns,
/// and the recursive equation evaluator refuses deep nesting instead of overflowing its stack.
#[test]
fn adversarial_inputs_return() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(evaluate(&deep).is_err());
    let unclosed = "(".repeat(100_000);
    assert!(evaluate(&unclosed).is_err());
    let overflow = format!("{}9", "9".repeat(400));
    assert!(
        evaluate(&format!("{overflow} * {overflow}")).is_err(),
        "not finite"
    );
    // a 10 MB line
    let big = "The answer is 4. ".repeat(600_000);
    let ex = example("4", &[]);
    for kind in KINDS {
        let _ = extract(kind, &big, &ex, NumericRule::Auto);
    }
    let _ = parse_verdict(&big);
    let _ = parse_review_score(&big);
    let _ = split_rationale(&big);
    let _ = normalise_self_eval(&big, Verdict::Correct);
    // invalid UTF-8 where bytes arrive, read lossily as the readers do
    let bytes = [0xffu8, 0xfe, b'4', 0xc3, 0x28, b' ', b'7'];
    let text = String::from_utf8_lossy(&bytes);
    let _ = extract(TaskKind::Numeric, &text, &ex, NumericRule::Auto);
}

/// Kept from the property run that found it: lm-eval-harness's `exact_match` ignores `\.$`
/// with one `re.sub`, so ".." becomes "." and only a second pass makes it "". mentor matches
/// lm-eval (scores stay comparable) rather than being idempotent here.
#[test]
fn lm_eval_strips_one_trailing_period_a_pass() {
    assert_eq!(lm_eval_normalize(".."), ".");
    assert_eq!(lm_eval_normalize("."), "");
    assert_eq!(lm_eval_normalize("#### 1,000."), "1000");
}

/// What the libFuzzer harnesses found (fuzz/fuzz_targets/extract.rs), kept: two were the
/// intended behaviour, which the harness now states; one was a bug, fixed.
#[test]
fn fuzz_findings_kept_as_cases() {
    use mentor_core::extract::{extract, lm_eval_normalize, NumericRule};
    // lm-eval-harness strips one trailing period a pass
    assert_eq!(lm_eval_normalize(".."), ".");
    assert_eq!(lm_eval_normalize("."), "");
    // an answer sentence after a follow-on marker belongs to the invented next example: cut
    let ex = mentor_core::Example {
        id: "f".into(),
        question: "q".into(),
        answer: "18".into(),
        choices: vec![],
        explanation: None,
    };
    let cut = extract(
        TaskKind::Numeric,
        "*\nQ:0\nThe answer is 18.",
        &ex,
        NumericRule::Auto,
    );
    assert!(cut.answer.is_none(), "{:?}", cut.answer);
    let whole = extract(
        TaskKind::Numeric,
        "*\nThe answer is 18.",
        &ex,
        NumericRule::Auto,
    );
    assert!(whole.answer.is_some());
    // a `#### ,` with no digit does not hide the answer sentence (fixed: Auto read "," and failed)
    let hashes = extract(
        TaskKind::Numeric,
        "(x####### ,\nThe answer is 18.",
        &ex,
        NumericRule::Auto,
    );
    let gold = gold_answer(TaskKind::Numeric, &ex).unwrap();
    assert!(
        hashes.answer.is_some_and(|a| answers_match(&a, &gold)),
        "{}",
        hashes.span
    );
}
