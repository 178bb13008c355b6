//! Teachers: one reliable, cached, budgeted call path to any LLM.
//!
//! A [`Teacher`] wraps a [`Backend`] (OpenAI-compatible HTTP, Anthropic, replay of recorded
//! outputs; the embedded GGUF teacher implements the same trait) in the call path
//! cache → budget → rate limit → retry → backend → ledger. [`loopback`] is a real
//! OpenAI-compatible server with fault injection, for tests and benchmarks.

pub mod anthropic;
pub mod backend;
pub mod batch;
pub mod limits;
pub mod loopback;
pub mod openai;
pub mod prices;
pub mod replay;
pub mod request;
pub mod secret;
pub mod teacher;

pub use backend::{Backend, CallError, Capabilities, Reply};
pub use batch::{BatchApi, BatchPolling, BatchReport, BatchStatus};
pub use limits::{Budget, BudgetExceeded, RateLimiter, RetryPolicy};
pub use request::{ChatRequest, ItemRef, Message, Role};
pub use secret::ApiKey;
pub use teacher::{Completion, Pricing, SharedStore, Teacher, TeacherError, TeacherOptions};
