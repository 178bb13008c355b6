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
        TaskKind::MultipleChoice => "Question: {{ question }}\nAnswer Choices:\n{{ choices_block }}\n\nIn two or three short sentences, say which choice is right and why (do not discuss every choice), then end with the sentence \"So the answer is (x) choice text.\" where x is the letter of the choice.",
        TaskKind::Nli => "{{ question }}\n\nDoes the premise entail the hypothesis, contradict it, or neither? Explain step by step, then end with the sentence \"So the answer is entailment.\", \"So the answer is contradiction.\" or \"So the answer is neutral.\"",
        TaskKind::YesNo => "Question: {{ question }}\n\nExplain step by step, then end with the sentence \"So the answer is yes.\" or \"So the answer is no.\"",
    }
}

/// A set of templates: defaults, or overrides from files named in the config.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    pub system: Option<String>,
    overrides: BTreeMap<String, String>,
    /// Few-shot: worked examples put before every chain-of-thought request, `(id, block)`;
    /// one more than `few_shot`, so an exemplar's own request can leave itself out.
    shots: Vec<(String, String)>,
    few_shot: usize,
}

impl Prompts {
    /// Overrides the template named `name` (e.g. `cot`).
    pub fn set(&mut self, name: &str, template: String) {
        self.overrides.insert(name.to_string(), template);
    }

    /// Few-shot prompting: the first `n` of `exemplars` (train-split examples, in the order to
    /// use them; give `n + 1` so an exemplar's own request can skip itself) become worked
    /// examples before every `cot` request: the rendered request, then the example's shipped
    /// explanation (if any) and its answer sentence.
    pub fn set_exemplars(
        &mut self,
        kind: TaskKind,
        n: usize,
        exemplars: &[Example],
    ) -> Result<(), minijinja::Error> {
        self.few_shot = n;
        self.shots = exemplars
            .iter()
            .take(n + 1)
            .map(|ex| {
                let request = self.render("cot", default_cot_template(kind), ex, context! {})?;
                let answer = match ex.explanation.as_deref().map(str::trim) {
                    Some(e) if !e.is_empty() => format!("{e} {}", answer_sentence(kind, ex)),
                    _ => answer_sentence(kind, ex),
                };
                Ok((ex.id.clone(), format!("{request}\n\n{answer}")))
            })
            .collect::<Result<_, minijinja::Error>>()?;
        Ok(())
    }

    /// Renders the `cot` template for an example: (system, user), after the few-shot examples.
    pub fn cot(&self, kind: TaskKind, ex: &Example) -> Result<(String, String), minijinja::Error> {
        let user = self.render("cot", default_cot_template(kind), ex, context! {})?;
        let shots: Vec<&str> = self
            .shots
            .iter()
            .filter(|(id, _)| *id != ex.id)
            .take(self.few_shot)
            .map(|(_, block)| block.as_str())
            .collect();
        if shots.is_empty() {
            return Ok((self.system(), user));
        }
        Ok((self.system(), format!("{}\n\n{user}", shots.join("\n\n"))))
    }

    /// Renders the `self_eval` template (Mind's Mirror): the teacher judges a chain of thought
    /// for the question, ending in a verdict sentence. Extra variable: `solution`.
    pub fn self_eval(
        &self,
        kind: TaskKind,
        ex: &Example,
        solution: &str,
    ) -> Result<(String, String), minijinja::Error> {
        let user = self.render(
            "self_eval",
            default_self_eval_template(kind),
            ex,
            context! { solution => solution },
        )?;
        Ok((DEFAULT_JUDGE_SYSTEM.to_string(), user))
    }

    /// Renders the `feedback` template (MAPD): the teacher explains a student's mistake, the
    /// gold answer given as a hint. Extra variables: `student_output`, `student_answer`, `gold`.
    pub fn feedback(
        &self,
        ex: &Example,
        student_output: &str,
        student_answer: &str,
    ) -> Result<(String, String), minijinja::Error> {
        let extra = context! { student_output => student_output, student_answer => student_answer, gold => ex.answer };
        let user = self.render("feedback", DEFAULT_FEEDBACK, ex, extra)?;
        Ok((self.system(), user))
    }

    /// Renders the `review` template (MAPD peer review): the teacher scores another teacher's
    /// rationale 1–5 in brackets, the gold answer given. Extra variables: `solution`, `gold`.
    pub fn review(
        &self,
        ex: &Example,
        solution: &str,
    ) -> Result<(String, String), minijinja::Error> {
        let extra = context! { solution => solution, gold => ex.answer };
        let user = self.render("review", DEFAULT_REVIEW, ex, extra)?;
        Ok((DEFAULT_JUDGE_SYSTEM.to_string(), user))
    }

    /// Renders the `revise` template (ELAD): the teacher checks a student's explanation step by
    /// step, keeps the sound prefix and rewrites from the first flawed step. Extra variables:
    /// `task` (the rendered `cot` request: question and answer form), `steps` (the student's
    /// steps, numbered, one a line), `gold` (the answer, or empty when not revealed).
    pub fn revise(
        &self,
        kind: TaskKind,
        ex: &Example,
        steps: &[String],
        gold: Option<&str>,
    ) -> Result<(String, String), minijinja::Error> {
        let task = self.render("cot", default_cot_template(kind), ex, context! {})?;
        let numbered: Vec<String> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {}", i + 1, s))
            .collect();
        let extra =
            context! { task => task, steps => numbered.join("\n"), gold => gold.unwrap_or("") };
        let user = self.render("revise", DEFAULT_REVISE, ex, extra)?;
        Ok((DEFAULT_JUDGE_SYSTEM.to_string(), user))
    }

    fn system(&self) -> String {
        self.system
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM.to_string())
    }

    fn render(
        &self,
        name: &str,
        default: &str,
        ex: &Example,
        extra: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        let tpl = self
            .overrides
            .get(name)
            .map(String::as_str)
            .unwrap_or(default);
        let mut env = Environment::new();
        env.set_keep_trailing_newline(false);
        env.render_str(
            tpl,
            context! { question => ex.question, choices => ex.choices, choices_block => ex.choices_block(), ..extra },
        )
    }
}

/// MAPD's feedback request: explain the student's mistake, the gold answer given as a hint.
pub const DEFAULT_FEEDBACK: &str = "Question: {{ question }}\n\nA student answered:\n{{ student_output }}\n\nThe student's final answer, {{ student_answer }}, is wrong; the correct answer is {{ gold }}. Explain in plain English where the student's reasoning went wrong and how to reach the correct answer. Do not write code.";

/// ELAD's revision request: judge a student's explanation step by step, keep the sound prefix,
/// rewrite from the first flawed step (our operationalisation; DESIGN.md §2).
pub const DEFAULT_REVISE: &str = "{{ task }}\n\nA student wrote this explanation, one step a line:\n{{ steps }}\n\n{% if gold %}The correct answer is {{ gold }}.\n{% endif %}Check the student's steps in order. Reply with a line giving the number of the first wrong step, for example \"First flawed step: 2\" (or \"First flawed step: none\" when every step is sound), then a line \"Revised explanation:\" followed by the explanation: copy the steps before the first flawed one word for word, continue correctly from there in plain English sentences, and end with the final answer sentence the question asks for.";

/// MAPD's peer review: score another teacher's rationale 1–5, the gold answer given.
pub const DEFAULT_REVIEW: &str = "Question: {{ question }}\nCorrect answer: {{ gold }}\n\nProposed solution: {{ solution }}\n\nRate the proposed solution from 1 (wrong or useless) to 5 (correct, clear and complete reasoning). Explain briefly, then end with your score in square brackets, for example [4].";

pub const DEFAULT_JUDGE_SYSTEM: &str = "You are a careful grader. Check each step of a proposed solution in plain English. Do not write code. Finish with exactly one final line giving your verdict in the requested form.";

/// The default self-evaluation template: Mind's Mirror's value prompt in prose, ending in the
/// release's verdict line. Variables as for [`default_cot_template`] plus `solution`.
pub fn default_self_eval_template(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::MultipleChoice => "Question: {{ question }}\nAnswer Choices:\n{{ choices_block }}\n\nProposed solution: {{ solution }}\n\nEvaluate the proposed solution step by step: is its reasoning sound and is its final choice right? Then end with exactly one of these lines:\nEvaluation result: the given answer is correct.\nEvaluation result: the given answer is wrong.\nEvaluation result: the given answer is uncertain.",
        _ => "Question: {{ question }}\n\nProposed solution: {{ solution }}\n\nEvaluate the proposed solution step by step: is its reasoning sound and is its final answer right? Then end with exactly one of these lines:\nEvaluation result: the given answer is correct.\nEvaluation result: the given answer is wrong.\nEvaluation result: the given answer is uncertain.",
    }
}

/// The question as a student sees it: the question, and for multiple choice the lettered options.
pub fn question_block(kind: TaskKind, ex: &Example) -> String {
    match kind {
        TaskKind::MultipleChoice if !ex.choices.is_empty() => {
            format!("{}\nAnswer Choices:\n{}", ex.question, ex.choices_block())
        }
        _ => ex.question.clone(),
    }
}

/// The gold label written as the task's answer sentence — the sentence the CoT templates ask
/// teachers to end with, so one extractor reads labels and chains of thought alike.
pub fn answer_sentence(kind: TaskKind, ex: &Example) -> String {
    let a = ex.answer.trim();
    match kind {
        TaskKind::Numeric => format!("The answer is {a}."),
        TaskKind::Equation => {
            let inner = a.trim_start_matches('(').trim_end_matches(')').trim();
            format!("The answer is ({inner}).")
        }
        TaskKind::MultipleChoice => match ex.gold_choice() {
            Some(i) => format!(
                "So the answer is ({}) {}.",
                ex.choices[i].label.to_lowercase(),
                ex.choices[i].text
            ),
            None => format!("So the answer is {a}."),
        },
        TaskKind::Nli | TaskKind::YesNo => format!("So the answer is {}.", a.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::Choice;

    #[test]
    fn few_shot_examples_come_first_and_never_the_item_itself() {
        let ex = |id: &str, q: &str, a: &str, why: Option<&str>| Example {
            id: id.into(),
            question: q.into(),
            answer: a.into(),
            choices: vec![],
            explanation: why.map(String::from),
        };
        let pool = [
            ex("t1", "What is 2 + 2?", "4", Some("Two and two make four.")),
            ex("t2", "What is 3 + 3?", "6", None),
            ex("t3", "What is 5 + 5?", "10", None),
        ];
        let mut p = Prompts::default();
        p.set_exemplars(TaskKind::Numeric, 2, &pool).unwrap();
        let (_, user) = p
            .cot(TaskKind::Numeric, &ex("q", "What is 7 + 1?", "8", None))
            .unwrap();
        let at = |s: &str| {
            user.find(s)
                .unwrap_or_else(|| panic!("{s} missing:\n{user}"))
        };
        assert!(at("2 + 2") < at("3 + 3") && at("3 + 3") < at("7 + 1"));
        assert!(user.contains("Two and two make four. The answer is 4."));
        assert!(user.contains("The answer is 6."));
        assert!(!user.contains("5 + 5"), "two shots, not three");
        // an exemplar's own request skips itself and takes the spare
        let (_, own) = p.cot(TaskKind::Numeric, &pool[0]).unwrap();
        assert_eq!(own.matches("2 + 2").count(), 1, "{own}");
        assert!(own.contains("5 + 5"));
        // without exemplars the request is unchanged
        let bare = Prompts::default()
            .cot(TaskKind::Numeric, &pool[1])
            .unwrap()
            .1;
        assert!(bare.starts_with("Question: What is 3 + 3?"));
    }

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

    #[test]
    fn answer_sentences_score_as_the_gold_label() {
        let mk = |q: &str, a: &str, choices: Vec<Choice>| Example {
            id: "x".into(),
            question: q.into(),
            answer: a.into(),
            choices,
            explanation: None,
        };
        let mc = mk(
            "Where?",
            "B",
            vec![
                Choice {
                    label: "A".into(),
                    text: "bank".into(),
                },
                Choice {
                    label: "B".into(),
                    text: "river".into(),
                },
            ],
        );
        let cases = [
            (TaskKind::Numeric, mk("q", "18", vec![])),
            (TaskKind::Equation, mk("q", "( 762.0 - 659.0 )", vec![])),
            (TaskKind::MultipleChoice, mc.clone()),
            (TaskKind::Nli, mk("q", "contradiction", vec![])),
            (TaskKind::YesNo, mk("q", "yes", vec![])),
        ];
        for (kind, ex) in cases {
            let s = answer_sentence(kind, &ex);
            let score = crate::score_prediction(kind, &ex, &s, Default::default());
            assert!(score.correct, "{kind}: {s}");
        }
        assert_eq!(
            answer_sentence(TaskKind::MultipleChoice, &mc),
            "So the answer is (b) river."
        );
        assert_eq!(
            question_block(TaskKind::MultipleChoice, &mc),
            "Where?\nAnswer Choices:\n(a) bank\n(b) river"
        );
        let (_, user) = Prompts::default()
            .self_eval(
                TaskKind::Equation,
                &mk("How far?", "( 3 + 4 )", vec![]),
                "3 + 4 = 7. The answer is (3 + 4).",
            )
            .unwrap();
        assert!(
            user.contains("Proposed solution: 3 + 4 = 7.")
                && user.contains("Evaluation result: the given answer is uncertain."),
            "{user}"
        );
    }
}
