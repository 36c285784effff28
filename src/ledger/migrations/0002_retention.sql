-- Campaign attribution (from the file name, see naming.rs), retention,
-- legal holds and the audit trail.

-- NULL: recorded before attribution existed; the daemon fills it in.
-- 0: the name did not match [naming] template; 1: it did.
ALTER TABLE recordings ADD COLUMN attributed INTEGER;
ALTER TABLE recordings ADD COLUMN campaign TEXT;
-- Unix seconds from the name; NULL means the mtime stands in.
ALTER TABLE recordings ADD COLUMN call_time INTEGER;
ALTER TABLE recordings ADD COLUMN phone TEXT;
ALTER TABLE recordings ADD COLUMN agent TEXT;
ALTER TABLE recordings ADD COLUMN lead_id TEXT;
-- When retention deleted it, and the rule that did (`retention.campaigns.X = 90d`).
ALTER TABLE recordings ADD COLUMN deleted_at INTEGER;
ALTER TABLE recordings ADD COLUMN deleted_by TEXT;
-- Retention counts from here: the call time where known, else the mtime.
ALTER TABLE recordings ADD COLUMN retain_from INTEGER
    GENERATED ALWAYS AS (COALESCE(call_time, mtime_ns / 1000000000)) VIRTUAL;

-- Retention selection walks only recordings that still have something to
-- delete, per campaign and by time (campaign included so the default rule's
-- "not a listed campaign" test needs no row lookups), so a sweep never scans
-- the whole ledger. Queries repeat the WHERE exactly, or SQLite ignores them.
CREATE INDEX recordings_retention_campaign ON recordings(campaign, retain_from)
    WHERE state NOT IN ('seen', 'remote_deleted', 'gone', 'quarantined');
CREATE INDEX recordings_retention_time ON recordings(retain_from, campaign)
    WHERE state NOT IN ('seen', 'remote_deleted', 'gone', 'quarantined');
CREATE INDEX recordings_unattributed ON recordings(id) WHERE attributed IS NULL;
CREATE INDEX recordings_campaign ON recordings(campaign);
CREATE INDEX recordings_phone ON recordings(phone) WHERE phone IS NOT NULL;
CREATE INDEX recordings_agent ON recordings(agent) WHERE agent IS NOT NULL;

-- A legal hold: one `recvault hold add`. A case may have several.
CREATE TABLE holds (
    id             INTEGER PRIMARY KEY,
    case_id        TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    released_at    INTEGER,
    released_by    TEXT,
    release_reason TEXT
);
CREATE INDEX holds_case ON holds(case_id);
CREATE INDEX holds_active ON holds(id) WHERE released_at IS NULL;

-- What a hold covers: a recording matches a hold if, for every kind of
-- selector the hold has, one selector of that kind matches it.
CREATE TABLE hold_selectors (
    hold_id   INTEGER NOT NULL REFERENCES holds(id),
    kind      TEXT    NOT NULL CHECK (kind IN ('recording', 'campaign', 'phone', 'agent', 'time')),
    value     TEXT,
    time_from INTEGER,
    time_to   INTEGER
);
CREATE INDEX hold_selectors_hold ON hold_selectors(hold_id, kind);

-- Append-only, hash-chained record of deletions, hold changes, restores and
-- operator actions. AUTOINCREMENT: ids are never reused, so sqlite_sequence
-- also remembers the last entry (removing it is detectable).
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    uid       INTEGER NOT NULL,
    user      TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    case_id   TEXT,
    subject   TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_case ON audit(case_id) WHERE case_id IS NOT NULL;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
