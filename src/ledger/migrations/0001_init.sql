-- The life of each recording; one row per file version the daemon took on.
CREATE TABLE recordings (
    id               INTEGER PRIMARY KEY,
    path             BLOB    NOT NULL,
    name             BLOB    NOT NULL,
    dev              INTEGER NOT NULL,
    ino              INTEGER NOT NULL,
    size             INTEGER NOT NULL,
    mtime_ns         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    resume_state     TEXT,
    sha256           TEXT,
    object_key       TEXT,
    object_size      INTEGER,
    object_sha256    TEXT,
    store_checksum   TEXT,
    codec            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    retry_at         INTEGER,
    first_seen       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    verified_at      INTEGER,
    local_deleted_at INTEGER
);
-- A path is owned by at most one recording while its file is still local.
CREATE UNIQUE INDEX recordings_local_path ON recordings(path)
    WHERE state NOT IN ('local_deleted', 'remote_deleted', 'gone');
-- Never two recordings behind one object.
CREATE UNIQUE INDEX recordings_object_key ON recordings(object_key) WHERE object_key IS NOT NULL;
CREATE INDEX recordings_state_mtime ON recordings(state, mtime_ns);
CREATE INDEX recordings_name ON recordings(name);

-- Every state change, for `recvault ls`/status and for answering "why".
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    recording_id INTEGER NOT NULL REFERENCES recordings(id),
    at           INTEGER NOT NULL,
    from_state   TEXT,
    to_state     TEXT NOT NULL,
    detail       TEXT
);
CREATE INDEX events_recording ON events(recording_id);
