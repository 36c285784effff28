-- Issue 18: the per-recording cost of a state change. Three partial indexes
-- were defined with `state NOT IN (three or four constants)`. SQLite
-- evaluates such a list through a temporary b-tree that it builds and drops
-- again for every statement run, and each insert or state change of a
-- recording evaluates the predicates (old and new row): six to eight
-- temporary b-trees per step. Written as comparisons, as here and in 0017
-- and 0018, the same predicates hold the same rows and build nothing.
-- Queries meant to use these indexes repeat the predicates word for word
-- (`ledger::intake::LOCAL`, `ledger::retention::RETAINED`).
--
-- One index per migration, the new one built before the old one is dropped:
-- in one transaction, a big CREATE INDEX after another big CREATE or DROP
-- INDEX failed with "database or disk is full" (SQLite 3.50.2 with the
-- statement journal kept in memory up to 4 MiB, `schema::configure_sqlite`;
-- see `schema::tests`). Each rebuild reads every row: on a big ledger the
-- first start after the upgrade takes longer, and says so first.
CREATE UNIQUE INDEX IF NOT EXISTS recordings_local ON recordings(path)
    WHERE state <> 'local_deleted' AND state <> 'remote_deleted' AND state <> 'gone';
DROP INDEX IF EXISTS recordings_local_path;
