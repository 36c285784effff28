//! The fleet's outbox (`fleet_outbox`, filled by triggers while publishing
//! is on): which recordings changed since this box last published them to
//! the fleet's shared database. `fleet::publish` drains it in batches; a
//! database outage only lets it grow (one row per recording at most), and
//! nothing is lost. Off (a box on its own), the triggers write nothing.

use super::holds::cases_holding_in;
use super::rows::{R_COLUMNS, from_row};
use super::{Ledger, LedgerError};
use crate::recording::Recording;

/// One recording to publish, with the seq its outbox row had.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub seq: i64,
    pub rec: Recording,
    /// Cases whose active holds in this ledger cover it.
    pub cases: Vec<String>,
}

impl Ledger {
    /// Turns publishing on. The first time, every recording of the ledger
    /// is queued (the box joins the fleet with its whole history); returns
    /// how many were queued then (`None`: it had joined before).
    pub fn start_publishing(&self, now: i64) -> Result<Option<u64>, LedgerError> {
        self.write(|tx| {
            let joined: Option<i64> = tx.query_row(
                "SELECT joined_at FROM fleet_publishing WHERE only = 1",
                [],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE fleet_publishing SET publishing = 1, joined_at = COALESCE(joined_at, ?1) WHERE only = 1",
                [now],
            )?;
            if joined.is_some() {
                return Ok(None);
            }
            let queued = tx.execute(
                "INSERT OR REPLACE INTO fleet_outbox (recording_id, seq) \
                 SELECT id, id FROM recordings",
                [],
            )?;
            Ok(Some(queued as u64))
        })
    }

    /// Turns publishing off and empties the outbox (the box left the fleet:
    /// joining again publishes everything).
    pub fn stop_publishing(&self) -> Result<(), LedgerError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE fleet_publishing SET publishing = 0, joined_at = NULL WHERE only = 1",
                [],
            )?;
            tx.execute("DELETE FROM fleet_outbox", [])?;
            Ok(())
        })
    }

    /// Whether publishing is on.
    pub fn publishing(&self) -> Result<bool, LedgerError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT publishing FROM fleet_publishing WHERE only = 1",
                [],
                |r| r.get::<_, i64>(0),
            )? == 1)
        })
    }

    /// The oldest `limit` changes waiting to be published. A row whose
    /// recording no longer exists is dropped.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<Outgoing>, LedgerError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {}, o.seq FROM fleet_outbox o JOIN recordings r ON r.id = o.recording_id \
                 ORDER BY o.seq LIMIT ?1",
                *R_COLUMNS
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let n = super::rows::COLUMN_COUNT;
            let rows = stmt.query_map([limit as i64], |row| Ok((from_row(row)?, row.get(n)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (rec, seq): (Recording, i64) = row?;
                let cases = cases_holding_in(c, rec.id)?;
                out.push(Outgoing { seq, rec, cases });
            }
            Ok(out)
        })
    }

    /// Removes published rows, each only if it did not change since (its
    /// seq is still the one published).
    pub fn outbox_done(&self, done: &[(i64, i64)]) -> Result<(), LedgerError> {
        self.write(|tx| {
            let mut stmt =
                tx.prepare_cached("DELETE FROM fleet_outbox WHERE recording_id = ?1 AND seq = ?2")?;
            for (id, seq) in done {
                stmt.execute((id, seq))?;
            }
            Ok(())
        })
    }

    /// Changes not yet published.
    pub fn outbox_len(&self) -> Result<u64, LedgerError> {
        self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM fleet_outbox", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
        })
    }
}
