-- Issue 9: data-subject requests (find, export, erase).

-- One form for phone numbers (recording::phone::normalize: digits, without a
-- NANP country code). The stored numbers of recordings and of phone hold
-- selectors are rewritten by the Rust step that runs with this migration
-- (schema.rs), so the rule is written once.

-- `find --lead` (phone, agent, campaign and name have their indexes).
CREATE INDEX recordings_lead ON recordings(lead_id) WHERE lead_id IS NOT NULL;

-- Erasure (`recvault erase`, VICIdial's deletion queue). A recording whose
-- erasure is confirmed is reserved (deleting_what = 'erasure', set in the
-- IMMEDIATE transaction that checks the holds) with the request's
-- reference; the reservation stays until every copy is gone — through
-- restarts, and through every other transition. Then the row moves to
-- remote_deleted with erased_at set, and its personal data (phone, lead id,
-- name, path, an object key holding the name) is replaced by keyed
-- pseudonyms (HMAC under <ledger dir>/pseudonym.key).
ALTER TABLE recordings ADD COLUMN erase_request TEXT;
ALTER TABLE recordings ADD COLUMN erased_at INTEGER;
-- Object Lock retention keeps a version of its object until then (unix
-- seconds): the daemon finishes the erasure after it.
ALTER TABLE recordings ADD COLUMN erase_wait_until INTEGER;
CREATE INDEX recordings_erase_request ON recordings(erase_request) WHERE erase_request IS NOT NULL;

-- Audit entries that named an erased recording (or its number) have their
-- subject (and a reason naming it) replaced by '[erased]'. Their hash can no
-- longer be recomputed, so each redaction is recorded here: the digest of
-- every other field as it stands (hash and prev_hash included), and the
-- erase entry whose reason carries the digest of all its redactions. `audit
-- verify` checks both, so a redaction is as tamper-evident as an entry.
CREATE TABLE audit_redactions (
    entry_id    INTEGER PRIMARY KEY REFERENCES audit(id),
    by_entry    INTEGER NOT NULL REFERENCES audit(id),
    rest_digest TEXT    NOT NULL
);
CREATE INDEX audit_redactions_by ON audit_redactions(by_entry);
CREATE TRIGGER audit_redactions_no_update BEFORE UPDATE ON audit_redactions
    BEGIN SELECT RAISE(ABORT, 'audit redactions are append-only'); END;
CREATE TRIGGER audit_redactions_no_delete BEFORE DELETE ON audit_redactions
    BEGIN SELECT RAISE(ABORT, 'audit redactions are append-only'); END;
-- The trail stays append-only, but for that one change: a subject (and a
-- reason) becoming '[erased]', with its redaction recorded first.
DROP TRIGGER audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    WHEN NOT (NEW.subject = '[erased]' AND NEW.reason IN (OLD.reason, '[erased]')
        AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.uid = OLD.uid AND NEW.user = OLD.user
        AND NEW.action = OLD.action AND NEW.case_id IS OLD.case_id
        AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
        AND NEW.recording_id IS OLD.recording_id
        AND EXISTS (SELECT 1 FROM audit_redactions WHERE entry_id = OLD.id))
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
