//! Consistent copies of the ledger file, for ledger backups in the store:
//! its pages streamed as they are read, or SQLite's online backup into a
//! scratch file where this SQLite cannot read pages.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::LedgerError;

/// Writes the pages of one consistent snapshot of the ledger at `path` to
/// `out`, in order: the bytes of a SQLite database file, the ledger as it
/// stands (its WAL's commits included), with no copy written to disk on
/// the way. One statement, so one read transaction: the daemon writes on
/// meanwhile. `None` when this SQLite was built without the
/// `sqlite_dbpage` table (`.cargo/config.toml` asks for it): use
/// [`backup_file`]. Blocking: call it off the async runtime.
pub fn write_pages(path: &Path, out: &mut impl Write) -> io::Result<Option<u64>> {
    let conn = super::schema::connect_reader(path).map_err(io::Error::other)?;
    let mut stmt = match conn.prepare("SELECT pgno, data FROM sqlite_dbpage") {
        Ok(stmt) => stmt,
        Err(e) if e.to_string().contains("no such table") => return Ok(None),
        Err(e) => return Err(io::Error::other(LedgerError::Sql(e))),
    };
    let sql = |e: rusqlite::Error| io::Error::other(LedgerError::Sql(e));
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut pages = 0u64;
    while let Some(row) = rows.next().map_err(sql)? {
        let pgno: u64 = row.get(0).map_err(sql)?;
        if pgno != pages + 1 {
            return Err(io::Error::other(format!(
                "ledger {}: page {pgno} read after page {pages}",
                path.display()
            )));
        }
        let data = row.get_ref(1).map_err(sql)?;
        out.write_all(data.as_blob().map_err(io::Error::other)?)?;
        pages += 1;
    }
    Ok(Some(pages))
}

/// Writes a consistent copy of the ledger at `path` to `dest` with SQLite's
/// online backup, from a connection of its own, so the daemon's connection
/// is not held up (blocking: call it off the async runtime).
pub fn backup_file(path: &Path, dest: &Path) -> Result<(), LedgerError> {
    let source = super::schema::connect_reader(path)?;
    let mut copy = Connection::open(dest).map_err(|source| LedgerError::Open {
        path: dest.to_path_buf(),
        source,
    })?;
    // A scratch file, read once by whoever asked for it and synced by them
    // if it is kept: no journal, no fsync of its own.
    copy.pragma_update(None, "journal_mode", "OFF")?;
    copy.pragma_update(None, "synchronous", "OFF")?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let backup = Backup::new(&source, &mut copy)?;
        // All pages in one step: one read transaction, one consistent snapshot.
        while backup.step(-1)? != StepResult::Done {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::recording::State;

    /// What the daemon committed last is still in the WAL, not the file:
    /// the pages written are the ledger as it stands, not the file's bytes.
    #[test]
    fn the_pages_written_are_the_ledger_with_its_wal() {
        let (dir, ledger) = ledger();
        insert_plain(&ledger, "/s/a.wav", State::Seen);
        // Folded into the file; the next commits stay in the WAL.
        ledger
            .execute_raw("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let ids: Vec<i64> = (0..50)
            .map(|i| insert_plain(&ledger, &format!("/s/w{i}.wav"), State::Settled))
            .collect();
        let wal = std::fs::metadata(format!("{}-wal", ledger.path().display())).unwrap();
        assert!(wal.len() > 0, "the test needs commits in the WAL");
        let copy = dir.path().join("copy.sqlite3");
        let mut out = std::fs::File::create(&copy).unwrap();
        let pages = write_pages(ledger.path(), &mut out)
            .unwrap()
            .expect("this build reads pages (sqlite_dbpage)");
        drop(out);
        let page_size = 4096;
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), pages * page_size);
        let copied = crate::ledger::Ledger::open(&copy).unwrap();
        assert_eq!(copied.check().unwrap(), vec![]);
        let last = ids.last().copied().unwrap();
        // The WAL's last commit is in the copy.
        assert_eq!(copied.recording(last).unwrap().state, State::Settled);
        drop(dir);
    }
}
