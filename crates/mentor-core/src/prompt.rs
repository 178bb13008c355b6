//! Prompt templates (minijinja), with defaults per task kind that small teachers follow: prose
//! reasoning (the Qwen2.5-Coder teachers otherwise answer in Python) ending in the task's answer
//! sentence, which the extractors in [`crate::extract`] read.

use crate::example::Example;
use crate::task::TaskKind;
use minijinja::{context, Environment};
use std::collections::BTreeMap;

pub const DEFAULT_SYSTEM: &str = "You are a patient teacher. Reason step by step in plain English sentences. Do not write code. Finish with exactly one final sentence giving the answer in the requested form.";

/// The default chain-of-thought template of a task kind. Variables: `question`, `choices`
/// (list of `{label, text}`), `choices_block`.
pub fn default_cot_template(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Numeric => "Question: {{ question }}\n\nExplain step by step how to solve it, then end with the sentence \"The answer is N.\" where N is a single number.",
        TaskKind::Equation => "Question: {{ question }}\n\nExplain step by step how to solve it, then end with the sentence \"The answer is (E).\" where E is one arithmetic expression over the numbers in the question whose value is the answer, for example \"The answer is (84 / 2).\"",
        TaskKind::MultipleChoice => "Question: {{ question }}\nAnswer Choices:\n{{ choices_block }}\n\nExplain step by step which choice is right, then end with the sentence \"So the answer is (x) choice text.\" where x is the letter of the choice.",
        TaskKind::Nli => "{{ question }}\n\nDoes the premise entail the hypothesis, contradict it, or neither? Explain step by step, then end with the sentence \"So the answer is entailment.\", \"So the answer is contradiction.\" or \"So the answer is neutral.\"",
        TaskKind::YesNo => "Question: {{ question }}\n\nExplain step by step, then end with the sentence \"So the answer is yes.\" or \"So the answer is no.\"",
    }
}

/// A set of templates: defaults, or overrides from files named in the config.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    pub system: Option<String>,
    overrides: BTreeMap<String, String>,
}

impl Prompts {
    /// Overrides the template named `name` (e.g. `cot`).
    pub fn set(&mut self, name: &str, template: String) {
        self.overrides.insert(name.to_string(), template);
    }

    /// Renders the `cot` template for an example: (system, user).
    pub fn cot(&self, kind: TaskKind, ex: &Example) -> Result<(String, String), minijinja::Error> {
        let tpl = self
            .overrides
            .get("cot")
            .map(String::as_str)
            .unwrap_or(default_cot_template(kind));
        let mut env = Environment::new();
        env.set_keep_trailing_newline(false);
        let user = env.render_str(tpl, context! { question => ex.question, choices => ex.choices, choices_block => ex.choices_block() })?;
        Ok((
            self.system
                .clone()
                .unwrap_or_else(|| DEFAULT_SYSTEM.to_string()),
            user,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::Choice;

    #[test]
    fn renders_choices_and_overrides() {
        let ex = Example {
            id: "1".into(),
            question: "Where?".into(),
            answer: "B".into(),
            choices: vec![
                Choice {
                    label: "A".into(),
                    text: "bank".into(),
                },
                Choice {
                    label: "B".into(),
                    text: "river".into(),
                },
            ],
            explanation: None,
        };
        let (sys, user) = Prompts::default()
            .cot(TaskKind::MultipleChoice, &ex)
            .unwrap();
        assert!(sys.contains("Do not write code"));
        assert!(
            user.contains("(a) bank\n(b) river") && user.contains("So the answer is (x)"),
            "{user}"
        );
        let mut p = Prompts::default();
        p.set(
            "cot",
            "Q: {{ question }} [{% for c in choices %}{{ c.label }}{% endfor %}]".into(),
        );
        assert_eq!(
            p.cot(TaskKind::MultipleChoice, &ex).unwrap().1,
            "Q: Where? [AB]"
        );
        p.set("cot", "{{ unclosed".into());
        assert!(p.cot(TaskKind::MultipleChoice, &ex).is_err());
    }
}
