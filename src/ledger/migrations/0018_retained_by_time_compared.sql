-- Issue 18: `recordings_retention_time` with its states compared, not
-- listed (see 0016 for why, and why alone in its migration).
CREATE INDEX IF NOT EXISTS recordings_retained_by_time ON recordings(retain_from, campaign)
    WHERE state <> 'seen' AND state <> 'remote_deleted' AND state <> 'gone'
      AND state <> 'quarantined';
DROP INDEX IF EXISTS recordings_retention_time;
