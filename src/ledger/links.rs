//! What the listen server and `recvault url` need from the ledger about
//! links: the row a link's id names with whether that link was revoked, the
//! mark below which links from before v2 are accepted (`serve::link`), the
//! revocations themselves, and the locations re-signed by a key rotation
//! (each new link recorded durably before VICIdial's database is changed).

use rusqlite::{OptionalExtension, params};

use super::locations::Rewritten;
use super::queries::recording_in;
use super::transitions::insert_event;
use super::{Ledger, LedgerError};
use crate::recording::{Recording, State};
use crate::units::now_secs;

/// What a request for a link needs, read in one go.
#[derive(Debug, Clone)]
pub struct LinkTarget {
    /// The row the link's id names, if any.
    pub recording: Option<Recording>,
    /// Whether this very link (its signature) was revoked.
    pub revoked: bool,
    /// Links from before v2 are accepted for ids below this.
    pub v1_below: i64,
}

/// A revocation to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// `serve::link::revocation_digest` of the signature.
    pub digest: String,
    pub recording_id: i64,
    /// What was revoked, for people (never the link itself).
    pub what: String,
}

impl Ledger {
    /// The row `id` names, whether the link whose signature digests to
    /// `digest` was revoked, and the v1 mark.
    pub fn link_target(&self, id: i64, digest: &str) -> Result<LinkTarget, LedgerError> {
        let conn = self.reader()?;
        let recording = recording_in(&conn, id)?;
        let revoked = conn
            .prepare_cached("SELECT 1 FROM revoked_links WHERE digest = ?1")?
            .query_row([digest], |_| Ok(()))
            .optional()?
            .is_some();
        let v1_below = conn
            .query_row("SELECT v1_below FROM link_marks WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        Ok(LinkTarget {
            recording,
            revoked,
            v1_below,
        })
    }

    /// Records revocations (those already recorded stay as they were);
    /// returns how many are new.
    pub fn revoke_links(&self, all: &[Revocation], by: &str) -> Result<usize, LedgerError> {
        self.write_durable(true, |tx| {
            let now = now_secs();
            let mut new = 0;
            for r in all {
                new += tx.execute(
                    "INSERT OR IGNORE INTO revoked_links (digest, recording_id, revoked_at, revoked_by, what) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![r.digest, r.recording_id, now, by, r.what],
                )?;
            }
            Ok(new)
        })
    }

    /// Whether the link whose signature digests to `digest` was revoked.
    pub fn link_revoked(&self, digest: &str) -> Result<bool, LedgerError> {
        Ok(self
            .reader()?
            .query_row(
                "SELECT 1 FROM revoked_links WHERE digest = ?1",
                [digest],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Locations recvault wrote and still owns (`rewritten`), with the link
    /// a re-signing left on its way in, for `url rotate-key` / `url resign`.
    pub fn locations_to_resign(&self) -> Result<Vec<Rewritten>, LedgerError> {
        self.locations_in("'rewritten'")
    }

    /// Locations a rewrite or restore left half done (they must be
    /// finished before the key changes).
    pub fn locations_unfinished(&self) -> Result<u64, LedgerError> {
        let n: i64 = self.reader()?.query_row(
            "SELECT COUNT(*) FROM locations WHERE state IN ('rewriting', 'restoring')",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Records, durably, that `link` is on its way into recording `id`'s
    /// location (VICIdial's database is changed only after this commit).
    pub fn location_resigning(&self, id: i64, link: &str) -> Result<(), LedgerError> {
        self.write_durable(true, |tx| {
            tx.execute(
                "UPDATE locations SET pending_location = ?2, updated_at = ?3 \
                 WHERE recording_id = ?1 AND state = 'rewritten'",
                params![id, link, now_secs()],
            )?;
            Ok(())
        })
    }

    /// The location holds the pending link now.
    pub fn location_resigned(&self, id: i64) -> Result<(), LedgerError> {
        self.write(|tx| {
            let now = now_secs();
            let changed = tx.execute(
                "UPDATE locations SET new_location = pending_location, pending_location = NULL, \
                 updated_at = ?2 WHERE recording_id = ?1 AND pending_location IS NOT NULL",
                params![id, now],
            )?;
            if changed > 0 {
                let state: Option<String> = tx
                    .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                let state = state.and_then(|s| s.parse().ok()).unwrap_or(State::Gone);
                insert_event(
                    tx,
                    id,
                    Some(state),
                    state,
                    "recording_log.location re-signed",
                    now,
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::recording::State;

    use super::Revocation;

    #[test]
    fn a_link_target_names_the_row_the_revocation_and_the_v1_mark() {
        let (_dir, ledger) = ledger();
        // A new ledger learned v2 before any id was handed out.
        assert_eq!(ledger.link_target(1, "d").unwrap().v1_below, 1);
        let id = insert_plain(&ledger, "/s/a.wav", State::Seen);
        let t = ledger.link_target(id, "d").unwrap();
        assert_eq!(t.recording.map(|r| r.id), Some(id));
        assert!(!t.revoked);
        assert!(ledger.link_target(id + 1, "d").unwrap().recording.is_none());
        let r = Revocation {
            digest: "d".into(),
            recording_id: id,
            what: "permanent link".into(),
        };
        assert_eq!(
            ledger
                .revoke_links(std::slice::from_ref(&r), "root")
                .unwrap(),
            1
        );
        assert_eq!(ledger.revoke_links(&[r], "root").unwrap(), 0, "once");
        assert!(ledger.link_target(id, "d").unwrap().revoked);
        assert!(ledger.link_revoked("d").unwrap());
        assert!(!ledger.link_revoked("e").unwrap());
    }
}
