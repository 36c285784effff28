//! Consistent copies of the ledger file (SQLite's online backup), for
//! ledger backups in the store.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::LedgerError;

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
