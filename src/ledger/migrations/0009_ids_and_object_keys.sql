-- Issue 20: a recording id is never handed out twice (not after a restore,
-- a rebuild, an erasure or a deletion), and every object key recvault chose
-- for a recording is kept, so erasure and retention reach every object.

-- `next`: the lowest id that may still be handed out; new rows take it
-- (`ledger::ids`), the trigger keeps it above every id ever inserted (a
-- row gone does not give its id back), and a restore or rebuild raises it
-- above every id the backup, the objects and the store's reservations
-- know. `reserved`: ids below it are recorded in the store as handed out
-- (`{prefix}.recvault/ids/{host}/`, `recovery::ids`), written before they
-- are needed.
CREATE TABLE recording_ids (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    next     INTEGER NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0
);
INSERT INTO recording_ids (id, next) SELECT 1, COALESCE(MAX(id), 0) + 1 FROM recordings;
CREATE TRIGGER recording_ids_follow AFTER INSERT ON recordings
    BEGIN UPDATE recording_ids SET next = MAX(next, NEW.id + 1) WHERE id = 1; END;

-- Every object key chosen for a recording, recorded in the transaction that
-- chose it, before any put under it. The current one is also
-- recordings.object_key; an earlier one holds an upload that failed its
-- verification, or the object of a file that changed after it was put.
-- 'chosen': a put may have happened — the object there is ours only if
-- its metadata names this host and recording; 'written': the store took
-- our object there; 'deleted': retention deleted it. An erasure deletes
-- the rows (a key holds the file name).
CREATE TABLE object_keys (
    recording_id INTEGER NOT NULL REFERENCES recordings(id),
    key          TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('chosen', 'written', 'deleted')),
    chosen_at    INTEGER NOT NULL,
    deleted_at   INTEGER,
    PRIMARY KEY (recording_id, key)
);
CREATE INDEX object_keys_key ON object_keys(key);
INSERT INTO object_keys (recording_id, key, state, chosen_at, deleted_at)
    SELECT id, object_key,
           CASE WHEN state = 'remote_deleted' THEN 'deleted'
                WHEN state IN ('uploaded', 'verified', 'local_deleted') THEN 'written'
                ELSE 'chosen' END,
           updated_at,
           CASE WHEN state = 'remote_deleted' THEN COALESCE(deleted_at, updated_at) END
    FROM recordings WHERE object_key IS NOT NULL AND erased_at IS NULL;
