-- Issue 20 (item 1 and "Also"): a listen link binds the recording it was
-- issued for (`serve::link`, v2), can be revoked alone, and survives a key
-- rotation that re-signs the locations recvault wrote into VICIdial.

-- `v1_below`: links from before v2 signed only the id. They are accepted
-- for ids below this mark, the next id this ledger would hand out when it
-- learned v2: every such link was issued for an id below it, and no id is
-- handed out twice (0009), so a row under such an id is that recording or
-- none. A ledger that learns v2 from an older copy gets a lower mark, never
-- a higher one.
CREATE TABLE link_marks (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    v1_below INTEGER NOT NULL
);
INSERT INTO link_marks (id, v1_below) SELECT 1, next FROM recording_ids;

-- Links revoked one by one (`recvault url revoke`): a digest of the
-- signature, never the signature itself.
CREATE TABLE revoked_links (
    digest       TEXT    PRIMARY KEY,
    recording_id INTEGER NOT NULL,
    revoked_at   INTEGER NOT NULL,
    revoked_by   TEXT    NOT NULL,
    what         TEXT    NOT NULL
);
CREATE INDEX revoked_links_recording ON revoked_links(recording_id);

-- A re-signed link on its way into recording_log.location (`recvault url
-- rotate-key` / `resign`): recorded durably before the compare-and-set, so
-- a kill is finished by running the command again.
ALTER TABLE locations ADD COLUMN pending_location TEXT;
