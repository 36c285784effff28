-- Issue 8: attribution from VICIdial's database, listen links written into
-- recording_log.location, and listens in the audit trail.

-- Attribution from the database (with [vicidial] on). NULL: not asked yet;
-- 'done': attributed; 'missing': no recording_log row yet, asked again
-- later; 'failed': the database could not be asked (db_reason says why);
-- 'gave_up': no row within [vicidial] attribution_wait (the file name's
-- attribution stands).
ALTER TABLE recordings ADD COLUMN db_attribution TEXT;
ALTER TABLE recordings ADD COLUMN db_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN db_retry_at INTEGER;
ALTER TABLE recordings ADD COLUMN db_reason TEXT;
-- Which VICIdial log decided the campaign: 'outbound' (vicidial_log),
-- 'inbound' (vicidial_closer_log; campaign holds the in-group), 'lead_list'
-- or 'recording_only'.
ALTER TABLE recordings ADD COLUMN db_source TEXT;
-- recording_log.recording_id: the row whose location the listen link replaces.
ALTER TABLE recordings ADD COLUMN vicidial_recording_id INTEGER;
-- The in-group of an inbound call, and the call's length in seconds.
ALTER TABLE recordings ADD COLUMN ingroup TEXT;
ALTER TABLE recordings ADD COLUMN call_length INTEGER;

CREATE INDEX recordings_db_waiting ON recordings(db_retry_at, id)
    WHERE db_attribution IS NULL OR db_attribution IN ('missing', 'failed');

-- recording_log.location of archived recordings: one row per recording
-- attributed to a recording_log row. 'waiting' for its local copy to go;
-- 'rewriting' (intent, old value recorded) before the compare-and-set in
-- VICIdial's database, 'rewritten' after; 'skipped' when the row no longer
-- pointed at the archived file; 'restoring'/'restored' for
-- `recvault vicidial restore-locations`.
CREATE TABLE locations (
    recording_id          INTEGER PRIMARY KEY REFERENCES recordings(id),
    vicidial_recording_id INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN
        ('waiting', 'rewriting', 'rewritten', 'skipped', 'restoring', 'restored')),
    old_location TEXT,
    new_location TEXT,
    detail       TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    retry_at     INTEGER,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX locations_todo ON locations(state)
    WHERE state IN ('waiting', 'rewriting', 'restoring');

-- Audit entries about one recording name it here too (for `recvault audit
-- --recording`); listens are entries with action 'listen'.
ALTER TABLE audit ADD COLUMN recording_id INTEGER;
CREATE INDEX audit_recording ON audit(recording_id, id) WHERE recording_id IS NOT NULL;
CREATE INDEX audit_action ON audit(action, at);

-- One row the daemon rewrites to prove the ledger takes writes (/healthz).
CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
