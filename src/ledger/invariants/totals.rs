//! The totals `status` reads (`recording_totals`, kept by triggers) against
//! what the recordings add up to, counted during the one pass of `scan`:
//! a trigger dropped or a hand edit made round it would otherwise leave
//! `status` wrong with nothing to say so.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::Tally;
use crate::ledger::LedgerError;

/// The rule broken when the kept totals and the rows disagree.
pub(super) const TOTALS_RULE: &str =
    "the totals `status` shows (recording_totals) are what the recordings add up to";

/// One group of `recording_totals`: state, codec ('' for none), stored.
type Group = (Vec<u8>, Vec<u8>, bool);

/// Recordings, bytes and object bytes per group, as counted from the rows.
#[derive(Default)]
pub(super) struct Counted {
    groups: BTreeMap<Group, [i64; 3]>,
}

impl Counted {
    /// Counts one recording.
    pub(super) fn add(&mut self, group: Group, size: i64, object_size: i64) {
        let t = self.groups.entry(group).or_default();
        t[0] += 1;
        t[1] += size;
        t[2] += object_size;
    }

    /// Compares the kept totals with the counted ones: one count in the
    /// tally per group that differs (empty groups count as absent).
    pub(super) fn compare(mut self, conn: &Connection) -> Result<Tally, LedgerError> {
        let mut tally = Tally::new(TOTALS_RULE);
        let mut stmt = conn.prepare(
            "SELECT CAST(state AS BLOB), CAST(codec AS BLOB), stored, recordings, bytes, \
             object_bytes FROM recording_totals",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let group: Group = (r.get(0)?, r.get(1)?, r.get(2)?);
            let kept: [i64; 3] = [r.get(3)?, r.get(4)?, r.get(5)?];
            let counted = self.groups.remove(&group).unwrap_or_default();
            if kept != counted {
                tally.count += 1;
            }
        }
        tally.count += self.groups.len();
        Ok(tally)
    }
}
