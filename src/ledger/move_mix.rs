//! What `[vicidial] move_mix` did, counted for `recvault status`: how many
//! pairs of legs were mixed, how many legs went to `ORIG/` unmixed, how many
//! mixes found no `recording_log` row. Counts and times only — never a file
//! name, so nothing here names a caller an erasure must forget.

use rusqlite::params;

use super::{Ledger, LedgerError};

/// One kind of move_mix event, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MixEvent {
    /// A pair of legs mixed, moved and (where its row was found) recorded.
    Mixed,
    /// A leg moved to `ORIG/` without a mix (no partner, audio recvault
    /// cannot mix, or the mix's name taken by another recording).
    Unmixed,
    /// A mix whose `recording_log` row was not found: its location and
    /// length were not written.
    NoRow,
}

impl MixEvent {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            MixEvent::Mixed => "mixed",
            MixEvent::Unmixed => "unmixed",
            MixEvent::NoRow => "no_row",
        }
    }

    fn parse(s: &str) -> Option<MixEvent> {
        [MixEvent::Mixed, MixEvent::Unmixed, MixEvent::NoRow]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// How often one kind of event happened, and when it last did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixTally {
    pub event: MixEvent,
    pub count: u64,
    /// Unix seconds of the latest.
    pub last_at: i64,
}

impl Ledger {
    /// Counts one `event` at `at` (Unix seconds).
    pub fn count_mix_event(&self, event: MixEvent, at: i64) -> Result<(), LedgerError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO move_mix_tally (kind, count, last_at) VALUES (?1, 1, ?2) \
                 ON CONFLICT (kind) DO UPDATE SET count = count + 1, last_at = MAX(last_at, ?2)",
                params![event.as_str(), at],
            )?;
            Ok(())
        })
    }

    /// Every kind counted so far, in [`MixEvent`] order.
    pub fn mix_tally(&self) -> Result<Vec<MixTally>, LedgerError> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT kind, count, last_at FROM move_mix_tally")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (kind, count, last_at) = row?;
                // A kind a newer recvault wrote: not this one's to show.
                if let Some(event) = MixEvent::parse(&kind) {
                    out.push(MixTally {
                        event,
                        count: count.max(0) as u64,
                        last_at,
                    });
                }
            }
            out.sort_by_key(|t| t.event);
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_with_their_latest_time() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
        assert!(ledger.mix_tally().unwrap().is_empty());
        ledger.count_mix_event(MixEvent::Unmixed, 50).unwrap();
        ledger.count_mix_event(MixEvent::Mixed, 100).unwrap();
        ledger.count_mix_event(MixEvent::Mixed, 90).unwrap();
        let t = ledger.mix_tally().unwrap();
        assert_eq!(
            t,
            vec![
                MixTally {
                    event: MixEvent::Mixed,
                    count: 2,
                    last_at: 100
                },
                MixTally {
                    event: MixEvent::Unmixed,
                    count: 1,
                    last_at: 50
                },
            ]
        );
    }
}
