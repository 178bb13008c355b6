//! A teacher that answers from recorded outputs, so recipes can run on real teacher text (the
//! papers' releases) with no model at all. Requests must carry an [`ItemRef`]; the answer is the
//! `sample_index`-th recording for that item and purpose.

use crate::backend::{Backend, BoxFuture, CallError, Capabilities, Reply};
use crate::request::ChatRequest;
use std::collections::HashMap;

pub struct ReplayBackend {
    /// Name of the recorded source (e.g. `palm-540b`), used as the model name.
    pub source: String,
    /// (example id, purpose) → sample index → text.
    outputs: HashMap<(String, String), std::collections::BTreeMap<u32, String>>,
}

impl ReplayBackend {
    pub fn new(source: impl Into<String>) -> Self {
        ReplayBackend {
            source: source.into(),
            outputs: HashMap::new(),
        }
    }

    /// Adds one recorded output for `(example_id, purpose)`; repeated adds are further samples.
    pub fn add(&mut self, example_id: &str, purpose: &str, text: String) {
        let recs = self
            .outputs
            .entry((example_id.to_string(), purpose.to_string()))
            .or_default();
        let next = recs.keys().next_back().map_or(0, |k| k + 1);
        recs.insert(next, text);
    }

    /// Adds the recorded output answering sample `sample_index` of `(example_id, purpose)`.
    pub fn add_at(&mut self, example_id: &str, purpose: &str, sample_index: u32, text: String) {
        self.outputs
            .entry((example_id.to_string(), purpose.to_string()))
            .or_default()
            .insert(sample_index, text);
    }

    pub fn len(&self) -> usize {
        self.outputs.values().map(|r| r.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// How many recordings exist for an item and purpose.
    pub fn samples_for(&self, example_id: &str, purpose: &str) -> usize {
        self.outputs
            .get(&(example_id.to_string(), purpose.to_string()))
            .map_or(0, |r| r.len())
    }
}

impl Backend for ReplayBackend {
    fn model(&self) -> &str {
        &self.source
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed: true,
            logprobs: false,
            stop: false,
            free: true,
        }
    }
    fn call<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, CallError>> {
        Box::pin(async move {
            let item = req.item.as_ref().ok_or_else(|| {
                CallError::fatal(
                    "a replay teacher needs requests that name their dataset item",
                    None,
                )
            })?;
            let recs = self
                .outputs
                .get(&(item.example_id.clone(), item.purpose.clone()));
            let text = recs.and_then(|r| r.get(&req.sample_index)).ok_or_else(|| {
                CallError::fatal(
                    format!(
                        "no recorded `{}` output #{} of `{}` for example {}",
                        item.purpose, req.sample_index, self.source, item.example_id
                    ),
                    None,
                )
            })?;
            Ok(Reply {
                text: text.clone(),
                raw: serde_json::json!({ "replay": self.source, "text": text }).to_string(),
                prompt_tokens: req.estimated_prompt_tokens(),
                completion_tokens: (text.chars().count() as u64).div_ceil(4),
                tokens_estimated: true,
                finish_reason: Some("recorded".into()),
            })
        })
    }
}
