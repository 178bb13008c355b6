//! The store's schema as an append-only list of migrations. `PRAGMA user_version` holds how many
//! have been applied; each runs in its own transaction. Never edit a shipped migration: add one.

pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    -- Every example the run uses, with the split it was assigned to.
    CREATE TABLE examples (
        dataset     TEXT NOT NULL,
        example_id  TEXT NOT NULL,
        split       TEXT NOT NULL CHECK (split IN ('train', 'valid', 'test')),
        position    INTEGER NOT NULL,
        question    TEXT NOT NULL,
        answer      TEXT NOT NULL,
        choices     TEXT NOT NULL DEFAULT '[]',
        explanation TEXT,
        PRIMARY KEY (dataset, example_id)
    );
    CREATE INDEX examples_split ON examples (dataset, split, position);

    -- How each dataset's splits were made (given by the source, or seeded).
    CREATE TABLE splits (
        dataset    TEXT PRIMARY KEY,
        method     TEXT NOT NULL,
        seed       INTEGER,
        fractions  TEXT,
        n_train    INTEGER NOT NULL,
        n_valid    INTEGER NOT NULL,
        n_test     INTEGER NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );

    -- The ledger: every teacher call, paid or failed, with its raw response, stored before parsing.
    CREATE TABLE teacher_calls (
        id                INTEGER PRIMARY KEY,
        namespace         TEXT NOT NULL,
        request_hash      TEXT NOT NULL,
        teacher           TEXT NOT NULL,
        model             TEXT NOT NULL,
        request           TEXT NOT NULL,
        status            TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
        raw_response      TEXT,
        text              TEXT,
        error             TEXT,
        prompt_tokens     INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd          REAL NOT NULL DEFAULT 0,
        latency_ms        INTEGER NOT NULL DEFAULT 0,
        attempts          INTEGER NOT NULL DEFAULT 1,
        created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    -- At most one successful answer per request: a cached call is never paid twice.
    CREATE UNIQUE INDEX teacher_calls_cache ON teacher_calls (namespace, request_hash) WHERE status = 'ok';
    CREATE INDEX teacher_calls_teacher ON teacher_calls (teacher, status);

    -- What was parsed out of teacher (or student) text, with provenance.
    CREATE TABLE annotations (
        id           INTEGER PRIMARY KEY,
        dataset      TEXT NOT NULL,
        example_id   TEXT NOT NULL,
        stage        TEXT NOT NULL,
        kind         TEXT NOT NULL,
        source       TEXT NOT NULL,
        round        INTEGER NOT NULL DEFAULT 0,
        sample_index INTEGER NOT NULL DEFAULT 0,
        call_id      INTEGER REFERENCES teacher_calls (id),
        text         TEXT NOT NULL,
        parsed       TEXT,
        parse_ok     INTEGER NOT NULL,
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        UNIQUE (dataset, example_id, stage, kind, source, round, sample_index)
    );
    CREATE INDEX annotations_stage ON annotations (stage, kind);

    -- Items chosen by a selection stage (correctness filter, uncertainty, peer review, mistakes).
    CREATE TABLE selections (
        id         INTEGER PRIMARY KEY,
        stage      TEXT NOT NULL,
        round      INTEGER NOT NULL DEFAULT 0,
        dataset    TEXT NOT NULL,
        example_id TEXT NOT NULL,
        score      REAL,
        selected   INTEGER NOT NULL,
        reason     TEXT,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        UNIQUE (stage, round, dataset, example_id)
    );

    CREATE TABLE training_runs (
        id             INTEGER PRIMARY KEY,
        name           TEXT NOT NULL,
        config         TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
        checkpoint_dir TEXT,
        best_step      INTEGER,
        best_metric    REAL,
        started_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        finished_at    TEXT
    );

    CREATE TABLE metrics (
        id              INTEGER PRIMARY KEY,
        training_run_id INTEGER REFERENCES training_runs (id),
        step            INTEGER,
        split           TEXT,
        name            TEXT NOT NULL,
        value           REAL NOT NULL,
        created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX metrics_run ON metrics (training_run_id, name, step);
    "#,
    // 2: why each reply ended (`stop`, `length` / `max_tokens` when cut at the token limit, …)
    r#"
    ALTER TABLE teacher_calls ADD COLUMN finish_reason TEXT;
    "#,
    // 3: provider batch APIs. A batch and its requests are written before it is submitted, its
    // provider id as soon as the provider answers, so a relaunched run re-attaches to it and
    // never submits a request twice. Calls answered through a batch name it.
    r#"
    CREATE TABLE teacher_batches (
        tag          TEXT PRIMARY KEY,
        teacher      TEXT NOT NULL,
        provider_id  TEXT,
        status       TEXT NOT NULL,
        requests     INTEGER NOT NULL,
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        finished_at  TEXT
    );
    CREATE TABLE teacher_batch_rows (
        tag          TEXT NOT NULL REFERENCES teacher_batches (tag),
        custom_id    TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        request      TEXT NOT NULL,
        PRIMARY KEY (tag, custom_id)
    );
    ALTER TABLE teacher_calls ADD COLUMN batch_tag TEXT;
    "#,
];
