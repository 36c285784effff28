-- Issue 18: `recvault status` on a ledger of 10 M recordings. Its counts
-- and bytes per state and per codec were a GROUP BY over every row, twice
-- (seconds at 10 M, growing with the ledger). This table holds them,
-- kept exact by the triggers below in the very transaction that inserts,
-- changes or removes a recording, so no code path (transitions, erasure,
-- restores, migrations to come) can leave it behind.
--
-- One row per (state, codec, stored): `codec` is '' for none, `stored` is
-- 1 when the recording has an object size (what `status` sums per codec).
-- Rows that fall to 0 recordings stay; readers skip them.
CREATE TABLE recording_totals (
    state        TEXT    NOT NULL,
    codec        TEXT    NOT NULL,
    stored       INTEGER NOT NULL,
    recordings   INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    object_bytes INTEGER NOT NULL,
    PRIMARY KEY (state, codec, stored)
) WITHOUT ROWID;

INSERT INTO recording_totals (state, codec, stored, recordings, bytes, object_bytes)
SELECT state, COALESCE(codec, ''), object_size IS NOT NULL, COUNT(*), COALESCE(SUM(size), 0),
       COALESCE(SUM(object_size), 0)
FROM recordings
GROUP BY state, COALESCE(codec, ''), object_size IS NOT NULL;

CREATE TRIGGER recording_totals_insert AFTER INSERT ON recordings
BEGIN
    INSERT INTO recording_totals (state, codec, stored, recordings, bytes, object_bytes)
    VALUES (NEW.state, COALESCE(NEW.codec, ''), NEW.object_size IS NOT NULL, 1, NEW.size,
            COALESCE(NEW.object_size, 0))
    ON CONFLICT (state, codec, stored) DO UPDATE SET
        recordings = recordings + 1,
        bytes = bytes + excluded.bytes,
        object_bytes = object_bytes + excluded.object_bytes;
END;

CREATE TRIGGER recording_totals_delete AFTER DELETE ON recordings
BEGIN
    UPDATE recording_totals SET
        recordings = recordings - 1,
        bytes = bytes - OLD.size,
        object_bytes = object_bytes - COALESCE(OLD.object_size, 0)
    WHERE state = OLD.state AND codec = COALESCE(OLD.codec, '')
      AND stored = (OLD.object_size IS NOT NULL);
END;

-- Only updates that name a counted column fire this, and only a change of
-- one moves anything: the daemon's other updates (retries, attribution,
-- erasure's rewrites of names) cost nothing here.
CREATE TRIGGER recording_totals_update AFTER UPDATE OF state, codec, size, object_size ON recordings
WHEN OLD.state IS NOT NEW.state OR OLD.codec IS NOT NEW.codec OR OLD.size IS NOT NEW.size
  OR OLD.object_size IS NOT NEW.object_size
BEGIN
    UPDATE recording_totals SET
        recordings = recordings - 1,
        bytes = bytes - OLD.size,
        object_bytes = object_bytes - COALESCE(OLD.object_size, 0)
    WHERE state = OLD.state AND codec = COALESCE(OLD.codec, '')
      AND stored = (OLD.object_size IS NOT NULL);
    INSERT INTO recording_totals (state, codec, stored, recordings, bytes, object_bytes)
    VALUES (NEW.state, COALESCE(NEW.codec, ''), NEW.object_size IS NOT NULL, 1, NEW.size,
            COALESCE(NEW.object_size, 0))
    ON CONFLICT (state, codec, stored) DO UPDATE SET
        recordings = recordings + 1,
        bytes = bytes + excluded.bytes,
        object_bytes = object_bytes + excluded.object_bytes;
END;

-- `status` also counts the recordings whose name did not match the naming
-- template (`attributed = 0`): a scan of every row until now (1.5 s at
-- 10 M). Few rows are in this index, so the count costs nothing.
CREATE INDEX recordings_unmatched_name ON recordings(id) WHERE attributed = 0;
