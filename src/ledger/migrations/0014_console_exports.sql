-- Issue 17: the console's export jobs. A job is what it exports (the
-- console's search, as JSON, while it is unfinished, so a restarted daemon
-- runs it again), who asked, from where and why, how far it got, and what
-- it made. `search` is cleared when the job ends: a phone number or a lead
-- outlives the job only as the pseudonyms of `what`.
CREATE TABLE console_exports (
    id          INTEGER PRIMARY KEY,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    what        TEXT    NOT NULL,
    search      TEXT,
    state       TEXT    NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'done', 'failed', 'expired')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    done        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    bytes       INTEGER NOT NULL DEFAULT 0,
    total_bytes INTEGER NOT NULL DEFAULT 0,
    exported    INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    gone        INTEGER NOT NULL DEFAULT 0,
    zip_size    INTEGER,
    finished_at INTEGER,
    error       TEXT
);
-- The runner's question on every start: what is unfinished, oldest first.
CREATE INDEX console_exports_unfinished ON console_exports(id)
    WHERE state IN ('queued', 'running');
