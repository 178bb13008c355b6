//! The kinds of task mentor can score. A task kind decides how an answer is pulled out of free
//! text and how it is compared with the gold label.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the gold answer of a dataset is shaped, and therefore how predictions are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// A single number (GSM8K). Extracted with lm-eval-harness' `strict-match` / `flexible-extract`.
    Numeric,
    /// An arithmetic expression whose value is the answer (SVAMP's `( 84.0 / 2.0 )`).
    Equation,
    /// One of several options, given as a letter or as the option's text (CQA, ARC, LogiQA).
    MultipleChoice,
    /// entailment / neutral / contradiction (ANLI, e-SNLI).
    Nli,
    /// yes / no (StrategyQA).
    YesNo,
}

impl TaskKind {
    pub const ALL: [TaskKind; 5] = [
        TaskKind::Numeric,
        TaskKind::Equation,
        TaskKind::MultipleChoice,
        TaskKind::Nli,
        TaskKind::YesNo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Numeric => "numeric",
            TaskKind::Equation => "equation",
            TaskKind::MultipleChoice => "multiple-choice",
            TaskKind::Nli => "nli",
            TaskKind::YesNo => "yes-no",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        match norm.as_str() {
            "numeric" | "number" => Ok(TaskKind::Numeric),
            "equation" => Ok(TaskKind::Equation),
            "multiple-choice" | "mc" | "choice" => Ok(TaskKind::MultipleChoice),
            "nli" => Ok(TaskKind::Nli),
            "yes-no" | "yesno" | "boolean" => Ok(TaskKind::YesNo),
            _ => Err(format!(
                "unknown task kind `{s}`; expected one of: numeric, equation, multiple-choice, nli, yes-no"
            )),
        }
    }
}
