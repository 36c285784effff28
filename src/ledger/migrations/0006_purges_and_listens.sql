-- VICIdial's GDPR purges (recording_log_deletion_queue) name recordings by
-- recording_log.recording_id: find them without reading every row.
CREATE INDEX recordings_vicidial ON recordings(vicidial_recording_id)
    WHERE vicidial_recording_id IS NOT NULL;

-- Listens are journaled to a file beside the ledger before they are
-- batched into the audit trail; journal files are numbered, and `applied`
-- is the last number whose listens are in the audit trail (written in the
-- same transaction), so a file left by a kill is replayed exactly once.
CREATE TABLE listen_journal (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    applied INTEGER NOT NULL
);
