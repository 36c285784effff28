-- Issue 13: what a failure was (so recovery decisions read a kind, not the
-- wording), deletions reserved before they start (so a hold placed after the
-- check still wins, and a crash mid-delete is finished or undone at restart),
-- and the call time a file name claimed when it disagrees with the file.

-- 'store_outage' (the store was unreachable), 'refused', 'verification',
-- 'local'; NULL for failures recorded before this column existed.
ALTER TABLE recordings ADD COLUMN failure_kind TEXT;

-- Set (unix seconds) in the same IMMEDIATE transaction that checks holds,
-- before a deletion of the recording's object or local copy starts; cleared
-- when the deletion is recorded or abandoned. `hold add` sees it.
ALTER TABLE recordings ADD COLUMN deleting_at INTEGER;
-- What is being deleted: 'retention' (object and local copy) or 'local'
-- (the local copy of a verified recording).
ALTER TABLE recordings ADD COLUMN deleting_what TEXT;

-- The call time the file name gave, when it disagreed with the file's mtime
-- by more than [retention] name_time_tolerance: call_time is then left NULL,
-- so retention counts from the mtime, and `status` flags the recording.
ALTER TABLE recordings ADD COLUMN name_time INTEGER;

CREATE INDEX recordings_deleting ON recordings(id) WHERE deleting_at IS NOT NULL;
CREATE INDEX recordings_name_time ON recordings(id) WHERE name_time IS NOT NULL;

-- Failures recorded before failure_kind existed said what they were only in
-- their wording; read it once, here.
UPDATE recordings SET failure_kind = 'store_outage'
    WHERE state = 'failed' AND last_error LIKE 'store unavailable:%';

-- The scrub's sample: random points in this index instead of sorting every
-- archived recording by RANDOM() (a full scan and sort on each scrub).
CREATE INDEX recordings_archived ON recordings(id)
    WHERE state IN ('verified', 'local_deleted') AND object_key IS NOT NULL;
