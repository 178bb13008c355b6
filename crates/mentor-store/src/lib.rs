//! The run store: one SQLite file per run (WAL) that holds everything a run paid for or produced.
//!
//! Examples and their splits, the teacher-call ledger (raw responses stored before any parsing),
//! parsed annotations with provenance, selections, training runs and metrics. Every write is one
//! transaction, so a process killed at any instant leaves a file that opens and holds every row
//! that was committed. The schema is versioned by [`schema::MIGRATIONS`].

mod schema;

use mentor_core::{Example, Split};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rusqlite;

/// File name of the store inside a run directory.
pub const STORE_FILE: &str = "mentor.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // `cause`, not `source`: the messages already say it, and a `source` would print it twice
    #[error("run store {path}: {cause}")]
    Sqlite {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("run store {path} has schema version {found}, newer than this mentor understands ({known}); upgrade mentor")]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("cannot create the run directory for {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("run store {path}: bad JSON in column {column}: {cause}")]
    Json {
        path: PathBuf,
        column: &'static str,
        cause: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An open run store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// One teacher call as the ledger records it. `raw_response` is whatever the backend returned,
/// kept verbatim so a parser bug never costs a second payment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub namespace: String,
    pub request_hash: String,
    pub teacher: String,
    pub model: String,
    /// The fully rendered request (JSON), without credentials.
    pub request: String,
    pub ok: bool,
    pub raw_response: Option<String>,
    /// The completion text, when the backend returned one.
    pub text: Option<String>,
    pub error: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub attempts: u32,
    /// Why the reply ended, as the backend said (`stop`, `length`, `max_tokens`, …).
    pub finish_reason: Option<String>,
    /// The provider batch that answered it (`teacher_batches.tag`); `None` for an online call.
    pub batch_tag: Option<String>,
}

/// One provider batch a run submitted (or is about to).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub tag: String,
    pub teacher: String,
    /// `None` until the provider accepted it.
    pub provider_id: Option<String>,
    /// `submitting`, `submitted`, then the provider's final status (`completed`, `expired`, …).
    pub status: String,
    pub requests: u64,
}

/// One request of a provider batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    /// The id the provider echoes back with the result (derived from the cache key).
    pub custom_id: String,
    pub request_hash: String,
    /// The rendered request, as the ledger keeps it.
    pub request: String,
}

impl CallRecord {
    /// The reply was cut at the token limit (OpenAI's `length`, Anthropic's `max_tokens`).
    pub fn truncated(&self) -> bool {
        is_truncation(self.finish_reason.as_deref())
    }
}

/// Whether a finish reason says the reply was cut at the token limit.
pub fn is_truncation(finish_reason: Option<&str>) -> bool {
    matches!(finish_reason, Some("length" | "max_tokens"))
}

/// Parsed teacher (or student) output tied to an example, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub dataset: String,
    pub example_id: String,
    /// Pipeline stage that produced it (`annotate`, `self-eval`, `peer-review`, …).
    pub stage: String,
    /// What it is (`rationale`, `verdict`, `feedback`, `peer-review`, `revision`, `label`).
    pub kind: String,
    /// Teacher name, `recorded:<origin>` for replayed data, or `student`.
    pub source: String,
    pub round: u32,
    pub sample_index: u32,
    pub call_id: Option<i64>,
    pub text: String,
    /// Parser output as JSON; None with `parse_ok = false` when the text could not be parsed.
    pub parsed: Option<serde_json::Value>,
    pub parse_ok: bool,
}

/// A selection stage's decision about one example (ELAD's rounds), with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub example_id: String,
    pub score: Option<f64>,
    pub selected: bool,
    /// Free text (JSON for ELAD: the score's parts and the student's explanation).
    pub reason: Option<String>,
}

/// How a dataset's splits were made, recorded so a rerun uses the same ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRecord {
    pub dataset: String,
    /// `given` (the source's own splits) or `seeded`.
    pub method: String,
    pub seed: Option<u64>,
    pub fractions: Option<[f64; 3]>,
    pub counts: [usize; 3],
}

/// Calls, tokens and cost for one teacher.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TeacherLedger {
    pub teacher: String,
    pub calls_ok: u64,
    pub calls_failed: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub mean_latency_ms: f64,
    /// Successful replies cut at the token limit.
    pub calls_truncated: u64,
    /// Successful replies that came through a provider batch, and what they cost.
    pub calls_batch: u64,
    pub cost_usd_batch: f64,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            cause: source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    cause: source,
                })?;
            }
        }
        let conn = Connection::open(&path).map_err(wrap)?;
        // WAL: readers never block the writer; NORMAL sync survives a killed process (not power
        // loss of the last few commits), which is the failure we design for.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(wrap)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(wrap)?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// Opens the store of a run directory (`DIR/mentor.sqlite`).
    pub fn open_run_dir(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open(dir.as_ref().join(STORE_FILE))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            cause: source,
        }
    }

    /// The schema version this store is at.
    pub fn schema_version(&self) -> Result<usize> {
        let v: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(v as usize)
    }

    fn migrate(&mut self) -> Result<()> {
        let current = self.schema_version()?;
        let known = schema::MIGRATIONS.len();
        if current > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current) {
            self.transaction(|tx| {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)
            })?;
        }
        Ok(())
    }

    /// Runs `f` in one immediate transaction: all of its writes land, or none do.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let path = self.path.clone();
        let wrap = |source| StoreError::Sqlite {
            path: path.clone(),
            cause: source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let out = f(&tx).map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(out)
    }

    /// Direct access for read-only queries the typed API does not cover.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    // ---- meta -------------------------------------------------------------------------------

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
        })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    // ---- examples and splits ----------------------------------------------------------------

    /// Stores a dataset's examples with their splits and how the splits were made, in one
    /// transaction. Idempotent: rows already present are left as they are.
    pub fn insert_examples<'a>(
        &mut self,
        dataset: &str,
        examples: impl IntoIterator<Item = (Split, &'a Example)>,
        split: &SplitRecord,
    ) -> Result<usize> {
        let rows: Vec<(Split, &Example)> = examples.into_iter().collect();
        self.transaction(|tx| {
            let mut inserted = 0;
            let mut stmt = tx.prepare(
                "INSERT OR IGNORE INTO examples (dataset, example_id, split, position, question, answer, choices, explanation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (pos, (sp, ex)) in rows.iter().enumerate() {
                let choices = serde_json::to_string(&ex.choices).expect("choices serialise");
                inserted += stmt.execute(params![
                    dataset,
                    ex.id,
                    sp.as_str(),
                    pos as i64,
                    ex.question,
                    ex.answer,
                    choices,
                    ex.explanation
                ])?;
            }
            let fractions = split.fractions.map(|f| serde_json::to_string(&f).unwrap());
            tx.execute(
                "INSERT OR IGNORE INTO splits (dataset, method, seed, fractions, n_train, n_valid, n_test)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    dataset,
                    split.method,
                    split.seed.map(|s| s as i64),
                    fractions,
                    split.counts[0] as i64,
                    split.counts[1] as i64,
                    split.counts[2] as i64
                ],
            )?;
            Ok(inserted)
        })
    }

    /// The examples of one split, in their stored order.
    pub fn examples(&self, dataset: &str, split: Split) -> Result<Vec<Example>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT example_id, question, answer, choices, explanation FROM examples
                 WHERE dataset = ?1 AND split = ?2 ORDER BY position",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![dataset, split.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, question, answer, choices, explanation) = row.map_err(|e| self.err(e))?;
            let choices = serde_json::from_str(&choices).map_err(|source| StoreError::Json {
                path: self.path.clone(),
                column: "examples.choices",
                cause: source,
            })?;
            out.push(Example {
                id,
                question,
                answer,
                choices,
                explanation,
            });
        }
        Ok(out)
    }

    /// How a dataset's splits were made, if it was stored.
    pub fn split_record(&self, dataset: &str) -> Result<Option<SplitRecord>> {
        self.conn
            .query_row(
                "SELECT method, seed, fractions, n_train, n_valid, n_test FROM splits WHERE dataset = ?1",
                params![dataset],
                |r| {
                    let fractions: Option<String> = r.get(2)?;
                    Ok(SplitRecord {
                        dataset: dataset.to_string(),
                        method: r.get(0)?,
                        seed: r.get::<_, Option<i64>>(1)?.map(|s| s as u64),
                        fractions: fractions.and_then(|f| serde_json::from_str(&f).ok()),
                        counts: [r.get::<_, i64>(3)? as usize, r.get::<_, i64>(4)? as usize, r.get::<_, i64>(5)? as usize],
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    // ---- the teacher-call ledger ------------------------------------------------------------

    /// The successful call cached under `(namespace, request_hash)`, if any.
    pub fn cached_call(
        &self,
        namespace: &str,
        request_hash: &str,
    ) -> Result<Option<(i64, CallRecord)>> {
        self.conn
            .query_row(
                "SELECT id, namespace, request_hash, teacher, model, request, status, raw_response, text, error,
                        prompt_tokens, completion_tokens, cost_usd, latency_ms, attempts, finish_reason, batch_tag
                 FROM teacher_calls WHERE namespace = ?1 AND request_hash = ?2 AND status = 'ok'",
                params![namespace, request_hash],
                |r| Ok((r.get(0)?, call_from_row(r, 1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Appends a call to the ledger and returns its id. A second successful call for the same
    /// request returns the id of the first (the unique cache index makes this race-free).
    pub fn record_call(&mut self, call: &CallRecord) -> Result<i64> {
        self.transaction(|tx| insert_call(tx, call))
    }

    /// Per-teacher totals for `mentor ledger`.
    pub fn ledger(&self) -> Result<Vec<TeacherLedger>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT teacher,
                        SUM(status = 'ok'), SUM(status = 'failed'),
                        SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), AVG(latency_ms),
                        SUM(status = 'ok' AND finish_reason IN ('length', 'max_tokens')),
                        SUM(status = 'ok' AND batch_tag IS NOT NULL),
                        SUM(CASE WHEN status = 'ok' AND batch_tag IS NOT NULL THEN cost_usd ELSE 0 END)
                 FROM teacher_calls GROUP BY teacher ORDER BY teacher",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TeacherLedger {
                    teacher: r.get(0)?,
                    calls_ok: r.get::<_, i64>(1)? as u64,
                    calls_failed: r.get::<_, i64>(2)? as u64,
                    prompt_tokens: r.get::<_, i64>(3)? as u64,
                    completion_tokens: r.get::<_, i64>(4)? as u64,
                    cost_usd: r.get(5)?,
                    mean_latency_ms: r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
                    calls_truncated: r.get::<_, Option<i64>>(7)?.unwrap_or(0) as u64,
                    calls_batch: r.get::<_, Option<i64>>(8)?.unwrap_or(0) as u64,
                    cost_usd_batch: r.get::<_, Option<f64>>(9)?.unwrap_or(0.0),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    // ---- provider batches --------------------------------------------------------------------

    /// Writes a batch about to be submitted (`submitting`, no provider id) with its rows
    /// (custom id, request hash, request JSON for the ledger), before anything is sent.
    pub fn open_batch(&mut self, tag: &str, teacher: &str, rows: &[BatchRow]) -> Result<()> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO teacher_batches (tag, teacher, status, requests) VALUES (?1, ?2, 'submitting', ?3)",
                params![tag, teacher, rows.len() as i64],
            )?;
            let mut st = tx.prepare(
                "INSERT INTO teacher_batch_rows (tag, custom_id, request_hash, request) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in rows {
                st.execute(params![tag, r.custom_id, r.request_hash, r.request])?;
            }
            Ok(())
        })
    }

    /// The provider accepted the batch as `provider_id`.
    pub fn batch_submitted(&mut self, tag: &str, provider_id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE teacher_batches SET provider_id = ?2, status = 'submitted' WHERE tag = ?1",
                params![tag, provider_id],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The batch ended with the provider's `status`; its rows are in the ledger.
    pub fn batch_finished(&mut self, tag: &str, status: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE teacher_batches SET status = ?2, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE tag = ?1",
                params![tag, status],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// `teacher`'s batches not yet finished (submitting or submitted), oldest first.
    pub fn open_batches(&self, teacher: &str) -> Result<Vec<BatchRecord>> {
        self.batches_where("teacher = ?1 AND finished_at IS NULL", teacher)
    }

    /// All of `teacher`'s batches, oldest first.
    pub fn batches(&self, teacher: &str) -> Result<Vec<BatchRecord>> {
        self.batches_where("teacher = ?1", teacher)
    }

    fn batches_where(&self, filter: &str, teacher: &str) -> Result<Vec<BatchRecord>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT tag, teacher, provider_id, status, requests FROM teacher_batches WHERE {filter} ORDER BY rowid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![teacher], |r| {
                Ok(BatchRecord {
                    tag: r.get(0)?,
                    teacher: r.get(1)?,
                    provider_id: r.get(2)?,
                    status: r.get(3)?,
                    requests: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// A batch's rows, in submission order.
    pub fn batch_rows(&self, tag: &str) -> Result<Vec<BatchRow>> {
        let mut st = self
            .conn
            .prepare("SELECT custom_id, request_hash, request FROM teacher_batch_rows WHERE tag = ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![tag], |r| {
                Ok(BatchRow {
                    custom_id: r.get(0)?,
                    request_hash: r.get(1)?,
                    request: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    // ---- annotations, selections ------------------------------------------------------------

    /// Stores an annotation; returns false when the same (example, stage, kind, source, round,
    /// sample) is already there, which makes re-running a stage idempotent.
    pub fn add_annotation(&mut self, a: &Annotation) -> Result<bool> {
        self.transaction(|tx| insert_annotation(tx, a))
    }

    /// Records a call and the annotation parsed from it in one transaction.
    pub fn record_call_with_annotation(
        &mut self,
        call: &CallRecord,
        a: &Annotation,
    ) -> Result<i64> {
        self.transaction(|tx| {
            let id = insert_call(tx, call)?;
            let mut a = a.clone();
            a.call_id = Some(id);
            insert_annotation(tx, &a)?;
            Ok(id)
        })
    }

    /// Forgets the annotations made from replies cut at the token limit (`parsed.truncated`), so
    /// that the next annotation pass asks for them again; the calls stay in the ledger (they
    /// were paid). Returns how many were forgotten.
    pub fn forget_truncated_annotations(&mut self) -> Result<usize> {
        self.transaction(|tx| {
            tx.execute(
                "DELETE FROM annotations WHERE json_extract(parsed, '$.truncated') = 1",
                [],
            )
        })
    }

    pub fn annotations(&self, stage: &str, kind: &str) -> Result<Vec<Annotation>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT dataset, example_id, stage, kind, source, round, sample_index, call_id, text, parsed, parse_ok
                 FROM annotations WHERE stage = ?1 AND kind = ?2 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![stage, kind], |r| {
                let parsed: Option<String> = r.get(9)?;
                Ok(Annotation {
                    dataset: r.get(0)?,
                    example_id: r.get(1)?,
                    stage: r.get(2)?,
                    kind: r.get(3)?,
                    source: r.get(4)?,
                    round: r.get::<_, i64>(5)? as u32,
                    sample_index: r.get::<_, i64>(6)? as u32,
                    call_id: r.get(7)?,
                    text: r.get(8)?,
                    parsed: parsed.and_then(|p| serde_json::from_str(&p).ok()),
                    parse_ok: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Records that a selection stage chose (or rejected) an example, with its score.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument a column of `selections`"
    )]
    pub fn record_selection(
        &mut self,
        stage: &str,
        round: u32,
        dataset: &str,
        example_id: &str,
        score: Option<f64>,
        selected: bool,
        reason: Option<&str>,
    ) -> Result<()> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO selections (stage, round, dataset, example_id, score, selected, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (stage, round, dataset, example_id)
                 DO UPDATE SET score = excluded.score, selected = excluded.selected, reason = excluded.reason",
                params![stage, round, dataset, example_id, score, selected, reason],
            )
            .map(|_| ())
        })
    }

    /// Records a whole round of a selection stage in one transaction.
    pub fn record_selections(
        &mut self,
        stage: &str,
        round: u32,
        dataset: &str,
        rows: &[Selection],
    ) -> Result<()> {
        self.transaction(|tx| {
            for s in rows {
                tx.execute(
                    "INSERT INTO selections (stage, round, dataset, example_id, score, selected, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (stage, round, dataset, example_id)
                     DO UPDATE SET score = excluded.score, selected = excluded.selected, reason = excluded.reason",
                    params![stage, round, dataset, s.example_id, s.score, s.selected, s.reason],
                )?;
            }
            Ok(())
        })
    }

    /// Every decision of a selection stage's round, highest score first (ties by example id).
    pub fn selections(&self, stage: &str, round: u32) -> Result<Vec<Selection>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT example_id, score, selected, reason FROM selections
                 WHERE stage = ?1 AND round = ?2 ORDER BY score DESC, example_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![stage, round], |r| {
                Ok(Selection {
                    example_id: r.get(0)?,
                    score: r.get(1)?,
                    selected: r.get(2)?,
                    reason: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    // ---- training runs and metrics -----------------------------------------------------------

    pub fn start_training_run(&mut self, name: &str, config_json: &str) -> Result<i64> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO training_runs (name, config, status) VALUES (?1, ?2, 'running')",
                params![name, config_json],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    pub fn finish_training_run(
        &mut self,
        id: i64,
        ok: bool,
        checkpoint_dir: Option<&str>,
        best_step: Option<u64>,
        best_metric: Option<f64>,
    ) -> Result<()> {
        self.transaction(|tx| {
            tx.execute(
                "UPDATE training_runs SET status = ?2, checkpoint_dir = ?3, best_step = ?4, best_metric = ?5,
                        finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                params![id, if ok { "finished" } else { "failed" }, checkpoint_dir, best_step.map(|s| s as i64), best_metric],
            )
            .map(|_| ())
        })
    }

    pub fn log_metric(
        &mut self,
        run: Option<i64>,
        step: Option<u64>,
        split: Option<&str>,
        name: &str,
        value: f64,
    ) -> Result<()> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO metrics (training_run_id, step, split, name, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run, step.map(|s| s as i64), split, name, value],
            )
            .map(|_| ())
        })
    }

    /// `(step, value)` of one metric of one training run, in step order.
    pub fn metric_series(
        &self,
        run: i64,
        name: &str,
        split: Option<&str>,
    ) -> Result<Vec<(u64, f64)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT step, value FROM metrics WHERE training_run_id = ?1 AND name = ?2
                 AND (?3 IS NULL OR split = ?3) AND step IS NOT NULL ORDER BY step, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run, name, split], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Row counts per table, for summaries and tests.
    pub fn counts(&self) -> Result<Vec<(String, u64)>> {
        let tables = [
            "examples",
            "teacher_calls",
            "annotations",
            "selections",
            "training_runs",
            "metrics",
        ];
        tables
            .iter()
            .map(|t| {
                self.conn
                    .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map(|n| (t.to_string(), n as u64))
                    .map_err(|e| self.err(e))
            })
            .collect()
    }

    /// SQLite's own consistency check; "ok" on a healthy file.
    pub fn integrity_check(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

fn insert_call(tx: &rusqlite::Transaction<'_>, call: &CallRecord) -> rusqlite::Result<i64> {
    if call.ok {
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM teacher_calls WHERE namespace = ?1 AND request_hash = ?2 AND status = 'ok'",
                params![call.namespace, call.request_hash],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    tx.execute(
        "INSERT INTO teacher_calls (namespace, request_hash, teacher, model, request, status, raw_response, text, error,
                                    prompt_tokens, completion_tokens, cost_usd, latency_ms, attempts, finish_reason, batch_tag)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            call.namespace,
            call.request_hash,
            call.teacher,
            call.model,
            call.request,
            if call.ok { "ok" } else { "failed" },
            call.raw_response,
            call.text,
            call.error,
            call.prompt_tokens as i64,
            call.completion_tokens as i64,
            call.cost_usd,
            call.latency_ms as i64,
            call.attempts as i64,
            call.finish_reason,
            call.batch_tag
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn insert_annotation(tx: &rusqlite::Transaction<'_>, a: &Annotation) -> rusqlite::Result<bool> {
    let parsed = a.parsed.as_ref().map(|p| p.to_string());
    let n = tx.execute(
        "INSERT OR IGNORE INTO annotations (dataset, example_id, stage, kind, source, round, sample_index, call_id, text, parsed, parse_ok)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![a.dataset, a.example_id, a.stage, a.kind, a.source, a.round, a.sample_index, a.call_id, a.text, parsed, a.parse_ok],
    )?;
    Ok(n == 1)
}

fn call_from_row(r: &rusqlite::Row<'_>, o: usize) -> rusqlite::Result<CallRecord> {
    Ok(CallRecord {
        namespace: r.get(o)?,
        request_hash: r.get(o + 1)?,
        teacher: r.get(o + 2)?,
        model: r.get(o + 3)?,
        request: r.get(o + 4)?,
        ok: r.get::<_, String>(o + 5)? == "ok",
        raw_response: r.get(o + 6)?,
        text: r.get(o + 7)?,
        error: r.get(o + 8)?,
        prompt_tokens: r.get::<_, i64>(o + 9)? as u64,
        completion_tokens: r.get::<_, i64>(o + 10)? as u64,
        cost_usd: r.get(o + 11)?,
        latency_ms: r.get::<_, i64>(o + 12)? as u64,
        attempts: r.get::<_, i64>(o + 13)? as u32,
        finish_reason: r.get(o + 14)?,
        batch_tag: r.get(o + 15)?,
    })
}
