//! Pulling an answer out of model text, per task kind.
//!
//! Numeric extraction follows lm-eval-harness' GSM8K task (`gsm8k.yaml`): the `strict-match`
//! filter (regex `#### (\-?[0-9\.\,]+)`, first match), the `flexible-extract` filter (regex
//! `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match), and its `exact_match` normalisation (drop `,` and
//! `$`, drop everything up to `#### `, drop one trailing `.`, lower-case). Other kinds read the span
//! after the last "the answer is" and fall back to the whole text.

use crate::equation;
use crate::example::Example;
use crate::task::TaskKind;
use crate::text::{split_rationale, truncate_at_follow_on, FOLLOW_ON_MARKERS};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// A parsed answer, comparable with a parsed gold label of the same task kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum Answer {
    /// A number (numeric and equation tasks). `text` keeps lm-eval's normalised string.
    Number { value: f64, text: String },
    /// Index into the example's choices.
    Choice(usize),
    /// A canonical label word: `entailment` / `neutral` / `contradiction` / `yes` / `no`.
    Label(String),
}

/// The result of extraction: the answer (None = unparseable) and the text it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extracted {
    pub answer: Option<Answer>,
    /// The span the answer was read from, for error reports.
    pub span: String,
}

impl Extracted {
    fn none(span: &str) -> Self {
        Extracted {
            answer: None,
            span: span.to_string(),
        }
    }
}

/// Which numeric extraction rule to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NumericRule {
    /// lm-eval-harness `strict-match`: the first `#### N`.
    StrictMatch,
    /// lm-eval-harness `flexible-extract`: the last number-like token.
    FlexibleExtract,
    /// mentor's default for CoT text: `#### N` if present, else the number after the last
    /// "the answer is", else `flexible-extract`.
    #[default]
    Auto,
}

impl std::str::FromStr for NumericRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict-match" | "strict" => Ok(NumericRule::StrictMatch),
            "flexible-extract" | "flexible" => Ok(NumericRule::FlexibleExtract),
            "auto" => Ok(NumericRule::Auto),
            _ => Err(format!(
                "unknown numeric rule `{s}`; expected strict-match, flexible-extract or auto"
            )),
        }
    }
}

static STRICT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#### (\-?[0-9\.\,]+)").unwrap());
static FLEXIBLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").unwrap());
static UP_TO_HASHES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s).*#### ").unwrap());

/// lm-eval-harness' GSM8K `exact_match` normalisation, in its order.
pub fn lm_eval_normalize(s: &str) -> String {
    let s = s.replace([',', '$'], "");
    let s = UP_TO_HASHES.replace(&s, "").into_owned();
    let s = s.strip_suffix('.').unwrap_or(&s);
    s.to_lowercase()
}

/// lm-eval-harness `strict-match` filter: first `#### N`, before normalisation.
pub fn strict_match(text: &str) -> Option<&str> {
    STRICT
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// lm-eval-harness `flexible-extract` filter: the last match, whichever group matched.
pub fn flexible_extract(text: &str) -> Option<&str> {
    FLEXIBLE
        .captures_iter(text)
        .last()
        .and_then(|c| c.get(1).or_else(|| c.get(2)))
        .map(|m| m.as_str())
}

fn number_answer(raw: &str) -> Option<Answer> {
    let text = lm_eval_normalize(raw);
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(Answer::Number { value, text })
}

/// Extracts a number with the given rule. The completion is first cut at a follow-on example.
pub fn extract_numeric(text: &str, rule: NumericRule) -> Extracted {
    let text = truncate_at_follow_on(text, FOLLOW_ON_MARKERS);
    let raw = match rule {
        NumericRule::StrictMatch => strict_match(text),
        NumericRule::FlexibleExtract => flexible_extract(text),
        // a `#### ,` with no digit (lm-eval's class takes commas and dots) is not an answer:
        // read on (a fuzzer finding)
        NumericRule::Auto => strict_match(text)
            .filter(|m| m.chars().any(|ch| ch.is_ascii_digit()))
            .or_else(|| {
                split_rationale(text)
                    .answer_span
                    .and_then(flexible_extract_first)
            })
            .or_else(|| flexible_extract(text)),
    };
    match raw {
        Some(r) => Extracted {
            answer: number_answer(r),
            span: r.to_string(),
        },
        None => Extracted::none(text),
    }
}

/// The first number-like token of an answer span ("42 apples, not 40" → 42).
fn flexible_extract_first(span: &str) -> Option<&str> {
    FLEXIBLE
        .captures_iter(span)
        .find_map(|c| {
            c.get(1)
                .or_else(|| c.get(2))
                .filter(|m| m.as_str().chars().any(|ch| ch.is_ascii_digit()))
        })
        .map(|m| m.as_str())
}

/// The balanced `( … )` group that opens `s`, without its outer parentheses.
fn leading_group(s: &str) -> Option<&str> {
    if !s.starts_with('(') {
        return None;
    }
    let mut depth = 0i32;
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[1..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Extracts the value of an equation answer.
///
/// The SVAMP CoT format is "The answer is (<equation>).": when the answer span opens with `(`,
/// the balanced group it opens *is* the answer (so "(12 - 2) - 7." reads as 10, as a strict
/// reader of the format would). Otherwise the whole span, then the value after the last `=`, then
/// the last number. A bare label-head output `( 84.0 / 2.0 )` is one group and evaluates whole.
pub fn extract_equation(text: &str) -> Extracted {
    let text = truncate_at_follow_on(text, FOLLOW_ON_MARKERS);
    let span = split_rationale(text).answer_span.unwrap_or(text);
    let cleaned = span.trim().trim_end_matches(['.', '!', ';']).trim();
    let candidates = leading_group(cleaned)
        .into_iter()
        .chain(std::iter::once(cleaned))
        .chain(cleaned.rsplit('=').next().map(str::trim));
    for c in candidates {
        if let Ok(value) = equation::evaluate(c) {
            return Extracted {
                answer: Some(Answer::Number {
                    value,
                    text: c.to_string(),
                }),
                span: cleaned.into(),
            };
        }
    }
    match flexible_extract(cleaned) {
        Some(r) => Extracted {
            answer: number_answer(r),
            span: cleaned.into(),
        },
        None => Extracted::none(cleaned),
    }
}

static PAREN_LETTER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\(([A-Za-z])\)").unwrap());
static LEAD_LETTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*([A-Za-z])(?:[).:]|\s*$)").unwrap());
static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[a-z]+").unwrap());

fn normalize_words(s: &str) -> String {
    WORD.find_iter(&s.to_lowercase())
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Extracts a choice index: a letter in parentheses (`(d)`), a bare or leading letter (`D`, `d.`),
/// or the text of an option (longest option text found wins, so "bank" loses to "river bank").
pub fn extract_choice(text: &str, choices: &[crate::example::Choice]) -> Extracted {
    let text = truncate_at_follow_on(text, FOLLOW_ON_MARKERS);
    let answer_span = split_rationale(text).answer_span;
    let span = answer_span.unwrap_or(text).trim();
    let by_label = |l: &str| choices.iter().position(|c| c.label.eq_ignore_ascii_case(l));
    // After "the answer is" the first "(x)" is the answer; in text with no answer sentence the
    // last one is (reasoning mentions options on the way: "(a) is wrong, so (c)").
    let paren = if answer_span.is_some() {
        PAREN_LETTER.captures(span)
    } else {
        PAREN_LETTER.captures_iter(span).last()
    };
    let letter = paren
        .or_else(|| LEAD_LETTER.captures(span))
        .and_then(|c| by_label(c.get(1).unwrap().as_str()));
    if let Some(i) = letter {
        return Extracted {
            answer: Some(Answer::Choice(i)),
            span: span.into(),
        };
    }
    let span_words = format!(" {} ", normalize_words(span));
    let by_text = choices
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let t = normalize_words(&c.text);
            (!t.is_empty() && span_words.contains(&format!(" {t} "))).then_some((i, t.len()))
        })
        .max_by_key(|&(_, len)| len)
        .map(|(i, _)| i);
    Extracted {
        answer: by_text.map(Answer::Choice),
        span: span.into(),
    }
}

static NLI_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(entailment|entails|entailed|neutral|not possible to tell|cannot be determined|contradiction|contradicts|contradicted)\b").unwrap()
});

fn canonical_nli(w: &str) -> &'static str {
    let w = w.to_ascii_lowercase();
    if w.starts_with("entail") {
        "entailment"
    } else if w.starts_with("contradict") {
        "contradiction"
    } else {
        "neutral"
    }
}

/// Extracts an NLI label: the first label word after "the answer is", else the last in the text.
pub fn extract_nli(text: &str) -> Extracted {
    let text = truncate_at_follow_on(text, FOLLOW_ON_MARKERS);
    let found = match split_rationale(text).answer_span {
        Some(span) => NLI_WORD.find(span),
        None => NLI_WORD.find_iter(text).last(),
    };
    match found {
        Some(m) => Extracted {
            answer: Some(Answer::Label(canonical_nli(m.as_str()).into())),
            span: m.as_str().into(),
        },
        None => Extracted::none(text),
    }
}

static YES_NO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(yes|no|true|false)\b").unwrap());

/// Extracts yes/no (`true`/`false` accepted): the first after "the answer is", else the last.
pub fn extract_yes_no(text: &str) -> Extracted {
    let text = truncate_at_follow_on(text, FOLLOW_ON_MARKERS);
    let found = match split_rationale(text).answer_span {
        Some(span) => YES_NO.find(span),
        None => YES_NO.find_iter(text).last(),
    };
    match found {
        Some(m) => {
            let w = m.as_str().to_ascii_lowercase();
            let label = if w == "yes" || w == "true" {
                "yes"
            } else {
                "no"
            };
            Extracted {
                answer: Some(Answer::Label(label.into())),
                span: m.as_str().into(),
            }
        }
        None => Extracted::none(text),
    }
}

/// Extracts an answer from model text for `example`'s task kind.
pub fn extract(kind: TaskKind, text: &str, example: &Example, rule: NumericRule) -> Extracted {
    match kind {
        TaskKind::Numeric => extract_numeric(text, rule),
        TaskKind::Equation => extract_equation(text),
        TaskKind::MultipleChoice => extract_choice(text, &example.choices),
        TaskKind::Nli => extract_nli(text),
        TaskKind::YesNo => extract_yes_no(text),
    }
}

/// Parses the gold label of `example`. None means the dataset row itself is unusable.
pub fn gold_answer(kind: TaskKind, example: &Example) -> Option<Answer> {
    let a = example.answer.trim();
    match kind {
        TaskKind::Numeric => {
            number_answer(a).or_else(|| extract_numeric(a, NumericRule::Auto).answer)
        }
        TaskKind::Equation => equation::evaluate(a).ok().map(|value| Answer::Number {
            value,
            text: a.to_string(),
        }),
        TaskKind::MultipleChoice => example
            .gold_choice()
            .or_else(|| {
                let t = normalize_words(a);
                example
                    .choices
                    .iter()
                    .position(|c| normalize_words(&c.text) == t)
            })
            .map(Answer::Choice),
        TaskKind::Nli => NLI_WORD
            .find(a)
            .map(|m| Answer::Label(canonical_nli(m.as_str()).into())),
        TaskKind::YesNo => extract_yes_no(a).answer,
    }
}

/// Whether a predicted answer matches the gold one. Numbers match when lm-eval's normalised
/// strings are equal or their values agree to 1e-4 (so `18.0` matches `18`, unlike lm-eval's
/// plain string comparison).
pub fn answers_match(pred: &Answer, gold: &Answer) -> bool {
    match (pred, gold) {
        (Answer::Number { value: a, text: ta }, Answer::Number { value: b, text: tb }) => {
            ta == tb || equation::values_match(*a, *b)
        }
        (Answer::Choice(a), Answer::Choice(b)) => a == b,
        (Answer::Label(a), Answer::Label(b)) => a == b,
        _ => false,
    }
}
