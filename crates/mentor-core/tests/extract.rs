//! Answer extraction per task kind. GSM8K cases are named after the lm-eval-harness rule they
//! check (`lm-eval-harness/lm_eval/tasks/gsm8k/gsm8k.yaml`: filters `strict-match` and
//! `flexible-extract`, metric `exact_match` with `regexes_to_ignore: [",", "\$", "(?s).*#### ",
//! "\.$"]` and `ignore_case: true`).

use mentor_core::extract::{
    extract_choice, extract_equation, extract_nli, extract_numeric, extract_yes_no,
    flexible_extract, gold_answer, lm_eval_normalize, strict_match, Answer,
};
use mentor_core::{score_prediction, Choice, Example, NumericRule, TaskKind};

fn num(text: &str, rule: NumericRule) -> Option<f64> {
    match extract_numeric(text, rule).answer {
        Some(Answer::Number { value, .. }) => Some(value),
        _ => None,
    }
}

fn ex(answer: &str, choices: &[&str]) -> Example {
    Example {
        id: "x".into(),
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

// ---- lm-eval-harness gsm8k: strict-match ------------------------------------------------

#[test]
fn lm_eval_strict_match_takes_first_hashes_number() {
    assert_eq!(strict_match("So 3 + 4 = 7.\n#### 7"), Some("7"));
    assert_eq!(strict_match("#### 12\n#### 13"), Some("12"));
    assert_eq!(
        num(
            "Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18",
            NumericRule::StrictMatch
        ),
        Some(18.0)
    );
}

#[test]
fn lm_eval_strict_match_requires_space_after_hashes() {
    assert_eq!(strict_match("####18"), None);
    assert_eq!(num("The answer is 18.", NumericRule::StrictMatch), None);
}

#[test]
fn lm_eval_strict_match_keeps_sign_commas_and_dots_then_normalizes() {
    assert_eq!(strict_match("#### -1,234.50"), Some("-1,234.50"));
    assert_eq!(lm_eval_normalize("-1,234.50"), "-1234.50");
    assert_eq!(num("#### 1,000", NumericRule::StrictMatch), Some(1000.0));
    // `$` is not in strict-match's character class: "#### $5" does not match at all
    assert_eq!(strict_match("#### $5"), None);
}

#[test]
fn lm_eval_strict_match_trailing_period_is_dropped_by_regexes_to_ignore() {
    assert_eq!(strict_match("#### 72."), Some("72."));
    assert_eq!(lm_eval_normalize("72."), "72");
    assert_eq!(num("#### 72.", NumericRule::StrictMatch), Some(72.0));
}

// ---- lm-eval-harness gsm8k: flexible-extract ---------------------------------------------

#[test]
fn lm_eval_flexible_extract_takes_last_number() {
    assert_eq!(
        flexible_extract("She has 3 apples and buys 4 more, so 7."),
        Some("7.")
    );
    assert_eq!(
        num(
            "She has 3 apples and buys 4 more, so 7.",
            NumericRule::FlexibleExtract
        ),
        Some(7.0)
    );
}

#[test]
fn lm_eval_flexible_extract_matches_dollar_and_commas_in_multichar_group() {
    assert_eq!(flexible_extract("It costs $1,200 in total"), Some("$1,200"));
    assert_eq!(lm_eval_normalize("$1,200"), "1200");
    assert_eq!(
        num("It costs $1,200 in total", NumericRule::FlexibleExtract),
        Some(1200.0)
    );
}

#[test]
fn lm_eval_flexible_extract_single_digit_uses_second_group() {
    assert_eq!(flexible_extract("the result is 5 apples"), Some("5"));
    assert_eq!(flexible_extract("temperature fell to -3 today"), Some("-3"));
}

#[test]
fn lm_eval_flexible_extract_first_group_can_capture_punctuation_runs() {
    // the first alternative needs only two chars from [$0-9.,]: "..." is a "number" to lm-eval,
    // and normalisation leaves ".." — not a number, so mentor reports it unparseable.
    assert_eq!(flexible_extract("answer 12 then..."), Some("..."));
    assert_eq!(num("answer 12 then...", NumericRule::FlexibleExtract), None);
}

#[test]
fn lm_eval_flexible_extract_reads_through_hashes_line() {
    assert_eq!(num("#### 18", NumericRule::FlexibleExtract), Some(18.0));
}

#[test]
fn lm_eval_exact_match_normalization_strips_up_to_hashes_and_lowercases() {
    assert_eq!(
        lm_eval_normalize("Natalia sold 48/2 = 24 clips.\n#### 72"),
        "72"
    );
    assert_eq!(lm_eval_normalize("ABC."), "abc");
    // only one trailing period
    assert_eq!(lm_eval_normalize("5.."), "5.");
}

#[test]
fn lm_eval_no_match_is_invalid() {
    assert_eq!(num("I don't know", NumericRule::StrictMatch), None);
    assert_eq!(num("I don't know", NumericRule::FlexibleExtract), None);
    assert_eq!(num("I don't know", NumericRule::Auto), None);
}

// ---- mentor's auto rule for CoT text ------------------------------------------------------

#[test]
fn auto_prefers_hashes_then_answer_phrase_then_last_number() {
    assert_eq!(
        num("3 + 4 = 7\n#### 7\nextra 99", NumericRule::Auto),
        Some(7.0)
    );
    assert_eq!(
        num(
            "5 * 4 = 20 so 20 - 2 = 18. The answer is 18 eggs, not 20.",
            NumericRule::Auto
        ),
        Some(18.0)
    );
    assert_eq!(
        num("5 * 4 = 20 so 20 - 2 = 18", NumericRule::Auto),
        Some(18.0)
    );
}

#[test]
fn auto_cuts_an_invented_next_question() {
    assert_eq!(
        num(
            "4 + 4 = 8. The answer is 8.\n\nQ: Tom has 3 cars. A: 3 + 9 = 12.",
            NumericRule::Auto
        ),
        Some(8.0)
    );
}

#[test]
fn numeric_scoring_compares_values() {
    let e = ex("18", &[]);
    assert!(
        score_prediction(
            TaskKind::Numeric,
            &e,
            "The answer is 18.0",
            NumericRule::Auto
        )
        .correct
    );
    assert!(score_prediction(TaskKind::Numeric, &e, "#### 18", NumericRule::StrictMatch).correct);
    assert!(!score_prediction(TaskKind::Numeric, &e, "#### 19", NumericRule::StrictMatch).correct);
    let gsm_gold = ex("Natalia sold 48/2 = 24 clips.\n#### 1,072", &[]);
    assert!(
        score_prediction(
            TaskKind::Numeric,
            &gsm_gold,
            "The answer is $1,072.",
            NumericRule::Auto
        )
        .correct
    );
}

// ---- equations (SVAMP) ---------------------------------------------------------------------

fn eq(text: &str) -> Option<f64> {
    match extract_equation(text).answer {
        Some(Answer::Number { value, .. }) => Some(value),
        _ => None,
    }
}

#[test]
fn equation_from_palm_answer_sentence() {
    assert_eq!(eq("84 / 2 = 42. The answer is (84 / 2)."), Some(42.0));
    assert_eq!(eq("The answer is ((17 + 15) + 2)."), Some(34.0));
}

#[test]
fn equation_answer_is_the_group_the_span_opens() {
    // "(12 - 2) - 7." breaks the "(<equation>)." format: the opening group is the answer.
    assert_eq!(eq("The answer is (12 - 2) - 7."), Some(10.0));
    assert_eq!(eq("The answer is (10 - (3 + 6))."), Some(1.0));
}

#[test]
fn equation_from_label_head_output() {
    assert_eq!(eq("( 84.0 / 2.0 )"), Some(42.0));
    assert_eq!(eq("( ( 17.0 + 15.0 ) + 2.0 )"), Some(34.0));
}

#[test]
fn equation_falls_back_to_value_after_equals_then_last_number() {
    assert_eq!(eq("The answer is 30 - 28 = 2."), Some(2.0));
    assert_eq!(eq("The answer is 42 points."), Some(42.0));
    assert_eq!(eq("no numbers here"), None);
}

#[test]
fn equation_scoring_evaluates_both_sides() {
    let e = ex("( 84.0 / 2.0 )", &[]);
    assert!(
        score_prediction(
            TaskKind::Equation,
            &e,
            "The answer is (84 / 2).",
            NumericRule::Auto
        )
        .correct
    );
    assert!(
        score_prediction(
            TaskKind::Equation,
            &e,
            "The answer is 42.",
            NumericRule::Auto
        )
        .correct
    );
    assert!(
        !score_prediction(
            TaskKind::Equation,
            &e,
            "The answer is (84 * 2).",
            NumericRule::Auto
        )
        .correct
    );
    let bad = ex("import os", &[]);
    let s = score_prediction(TaskKind::Equation, &bad, "42", NumericRule::Auto);
    assert!(!s.correct && s.gold.is_none());
}

// ---- multiple choice (CQA, ARC, LogiQA) ------------------------------------------------------

const CQA: [&str; 5] = [
    "park",
    "coloring book",
    "garden center",
    "math problem",
    "gravity",
];

fn choice(text: &str, choices: &[&str]) -> Option<usize> {
    let e = ex("A", choices);
    match extract_choice(text, &e.choices).answer {
        Some(Answer::Choice(i)) => Some(i),
        _ => None,
    }
}

#[test]
fn choice_from_parenthesised_letter() {
    assert_eq!(
        choice(
            "Only math problem fits. So the answer is (d) math problem.",
            &CQA
        ),
        Some(3)
    );
    assert_eq!(choice("The answer is (B).", &CQA), Some(1));
    // after "the answer is", the first letter; with no answer sentence, the last one
    assert_eq!(choice("The answer is (c), not (a).", &CQA), Some(2));
    assert_eq!(
        choice("(a) does not fit and neither does (b); (e) does.", &CQA),
        Some(4)
    );
}

#[test]
fn choice_from_bare_or_leading_letter() {
    assert_eq!(choice("C", &CQA), Some(2));
    assert_eq!(choice("e.", &CQA), Some(4));
    assert_eq!(choice("The answer is: A) park", &CQA), Some(0));
}

#[test]
fn choice_letter_out_of_range_is_not_a_choice() {
    assert_eq!(choice("The answer is (z).", &CQA), None);
}

#[test]
fn choice_from_option_text_prefers_longest() {
    assert_eq!(choice("So the answer is math problem.", &CQA), Some(3));
    let banks = ["bank", "river bank", "money"];
    assert_eq!(choice("the answer is river bank", &banks), Some(1));
    // "a" as an article must not be read as option A
    assert_eq!(choice("So the answer is a garden center", &CQA), Some(2));
}

#[test]
fn choice_gold_given_as_text_or_letter() {
    let by_letter = ex("D", &CQA);
    assert_eq!(
        gold_answer(TaskKind::MultipleChoice, &by_letter),
        Some(Answer::Choice(3))
    );
    let by_text = ex("math problem", &CQA);
    assert_eq!(
        gold_answer(TaskKind::MultipleChoice, &by_text),
        Some(Answer::Choice(3))
    );
    assert!(
        score_prediction(
            TaskKind::MultipleChoice,
            &by_text,
            "So the answer is (d) math problem.",
            NumericRule::Auto
        )
        .correct
    );
}

// ---- NLI (ANLI) --------------------------------------------------------------------------------

fn nli(text: &str) -> Option<String> {
    match extract_nli(text).answer {
        Some(Answer::Label(l)) => Some(l),
        _ => None,
    }
}

#[test]
fn nli_from_answer_sentence_with_follow_on_premise() {
    let palm = "Oxford Street is not on the continent of Europe. So the answer is contradiction.\n\nPremise: The 2016–17 season…\nHypothesis: …\nAnswer: So the answer is entailment.";
    assert_eq!(nli(palm).as_deref(), Some("contradiction"));
}

#[test]
fn nli_synonyms_and_bare_labels() {
    assert_eq!(
        nli("The answer is: it is not possible to tell").as_deref(),
        Some("neutral")
    );
    assert_eq!(nli("entailment").as_deref(), Some("entailment"));
    assert_eq!(
        nli("The premise entails the hypothesis").as_deref(),
        Some("entailment")
    );
    assert_eq!(nli("maybe").as_deref(), None);
}

// ---- yes / no (StrategyQA) ----------------------------------------------------------------------

fn yn(text: &str) -> Option<String> {
    match extract_yes_no(text).answer {
        Some(Answer::Label(l)) => Some(l),
        _ => None,
    }
}

#[test]
fn yes_no_forms() {
    assert_eq!(
        yn("Hamsters are prey. So the answer is yes.").as_deref(),
        Some("yes")
    );
    assert_eq!(yn("The answer is False.").as_deref(), Some("no"));
    assert_eq!(yn("No").as_deref(), Some("no"));
    assert_eq!(yn("Is it yes or no? I think yes").as_deref(), Some("yes"));
    assert_eq!(yn("Nobody knows").as_deref(), None);
}
