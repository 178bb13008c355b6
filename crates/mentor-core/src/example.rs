//! One question of a dataset, as every stage sees it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The partition an example belongs to. Model selection uses `Valid`; `Test` is reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "valid" | "validation" | "dev" | "val" => Ok(Split::Valid),
            "test" => Ok(Split::Test),
            other => Err(format!(
                "unknown split `{other}`; expected train, valid or test"
            )),
        }
    }
}

/// One option of a multiple-choice question. `label` is what a model writes ("A", "(b)").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub label: String,
    pub text: String,
}

/// A question with its gold answer.
///
/// `answer` is the canonical gold string for the task kind: a number for numeric tasks, an
/// expression for equation tasks, the choice *label* for multiple choice, the label word for NLI,
/// `yes`/`no` for yes-no.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub question: String,
    pub answer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
    /// A human-written explanation shipped with the dataset, if any (CoS-E, ANLI reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl Example {
    /// Options rendered the way the step-by-step release wrote them: `(a) park\n(b) …`.
    pub fn choices_block(&self) -> String {
        self.choices
            .iter()
            .map(|c| format!("({}) {}", c.label.to_ascii_lowercase(), c.text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Index of the gold choice, for multiple-choice examples.
    pub fn gold_choice(&self) -> Option<usize> {
        self.choices
            .iter()
            .position(|c| c.label.eq_ignore_ascii_case(self.answer.trim()))
    }
}

/// Letters used to label options when a dataset gives only the option texts.
pub fn choice_labels(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| ((b'A' + i as u8) as char).to_string())
        .collect()
}
