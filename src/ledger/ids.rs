//! Recording ids are never handed out twice: not after a restore, a
//! rebuild, an erasure or a deletion. New rows take `recording_ids.next`,
//! which a trigger keeps above every id ever inserted; a restore or rebuild
//! raises it above every id anything still knows (the backup, the objects'
//! metadata, the ids reserved in the store, the ledger it replaces); and
//! `reserved` says how far the store's record of handed-out ids reaches
//! (`recovery::ids` writes it there before the ids are needed).

use std::path::Path;

use rusqlite::{OpenFlags, OptionalExtension, params};

use super::{Ledger, LedgerError};

/// Where the ledger's id counter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMarks {
    /// The id the next new recording gets.
    pub next: i64,
    /// Ids below this are recorded in the store as handed out.
    pub reserved: i64,
}

impl Ledger {
    /// The id counter and how far the store's reservation reaches.
    pub fn id_marks(&self) -> Result<IdMarks, LedgerError> {
        Ok(self.reader()?.query_row(
            "SELECT next, reserved FROM recording_ids WHERE id = 1",
            [],
            |r| {
                Ok(IdMarks {
                    next: r.get(0)?,
                    reserved: r.get(1)?,
                })
            },
        )?)
    }

    /// Raises the next id to at least `floor` (never lowers it). Returns
    /// the next id now.
    pub fn raise_next_id(&self, floor: i64) -> Result<i64, LedgerError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE recording_ids SET next = MAX(next, ?1) WHERE id = 1",
                [floor],
            )?;
            Ok(
                tx.query_row("SELECT next FROM recording_ids WHERE id = 1", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    /// Records that the store now holds a reservation of every id below `upto`.
    pub fn ids_reserved(&self, upto: i64) -> Result<(), LedgerError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE recording_ids SET reserved = MAX(reserved, ?1) WHERE id = 1",
                params![upto],
            )?;
            Ok(())
        })
    }
}

/// The lowest id the ledger file at `path` would still hand out (above
/// every id it knows), read without changing the file; `None` if there is
/// no ledger there or it cannot be read (a damaged ledger being replaced).
pub fn next_id_in(path: &Path) -> Option<i64> {
    if !path.exists() {
        return None;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).ok()?;
    let max: i64 = conn
        .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM recordings", [], |r| {
            r.get(0)
        })
        .ok()?;
    // A ledger from before the counter existed has only its rows to go by.
    let next: Option<i64> = conn
        .query_row("SELECT next FROM recording_ids WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .ok()
        .flatten();
    Some(max.max(next.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::recording::State;

    #[test]
    fn ids_of_rows_gone_are_never_handed_out_again_and_a_floor_holds() {
        let (dir, ledger) = ledger();
        assert_eq!(insert_plain(&ledger, "/s/a.wav", State::Seen), 1);
        let b = insert_plain(&ledger, "/s/b.wav", State::Seen);
        assert_eq!(b, 2);
        // A row removed by hand (or a bug): its id stays used.
        ledger
            .execute_raw(&format!(
                "DELETE FROM events WHERE recording_id = {b}; DELETE FROM recordings WHERE id = {b}"
            ))
            .unwrap();
        assert_eq!(insert_plain(&ledger, "/s/c.wav", State::Seen), 3);
        assert_eq!(ledger.raise_next_id(100).unwrap(), 100);
        assert_eq!(ledger.raise_next_id(50).unwrap(), 100, "never lowered");
        assert_eq!(insert_plain(&ledger, "/s/d.wav", State::Seen), 100);
        assert_eq!(ledger.id_marks().unwrap().next, 101);
        ledger.ids_reserved(500).unwrap();
        ledger.ids_reserved(400).unwrap();
        assert_eq!(ledger.id_marks().unwrap().reserved, 500);
        let path = ledger.path().to_path_buf();
        drop(ledger);
        assert_eq!(super::next_id_in(&path), Some(101));
        assert_eq!(super::next_id_in(&dir.path().join("none")), None);
    }
}
