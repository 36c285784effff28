-- The fleet's outbox: recordings changed since this box last published
-- them to the fleet's shared database (`fleet::publish`). Triggers fill it
-- only while `fleet_publishing.publishing` is 1 (a box with [fleet]); a box
-- on its own never writes a row here. One row per recording: `seq` grows
-- with every change, so a change made while its row was being published is
-- never lost (the row is removed only with the seq that was published).
CREATE TABLE fleet_publishing (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    publishing INTEGER NOT NULL DEFAULT 0,
    -- When this ledger first joined a fleet (its whole ledger queued then).
    joined_at INTEGER
);
INSERT INTO fleet_publishing (only, publishing) VALUES (1, 0);

CREATE TABLE fleet_outbox (
    recording_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE INDEX fleet_outbox_seq ON fleet_outbox (seq);

CREATE TRIGGER fleet_outbox_insert AFTER INSERT ON recordings
WHEN (SELECT publishing FROM fleet_publishing WHERE only = 1) = 1
BEGIN
    INSERT OR REPLACE INTO fleet_outbox (recording_id, seq)
    VALUES (NEW.id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM fleet_outbox));
END;

CREATE TRIGGER fleet_outbox_update AFTER UPDATE ON recordings
WHEN (SELECT publishing FROM fleet_publishing WHERE only = 1) = 1
BEGIN
    INSERT OR REPLACE INTO fleet_outbox (recording_id, seq)
    VALUES (NEW.id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM fleet_outbox));
END;
