//! The listen journal: every listen is appended to `listens.journal` beside
//! the ledger (one `write`, in the page cache: a `kill -9` cannot lose it)
//! before the audit writer gathers it into a batch. When a batch is
//! gathered the journal is renamed to `listens.<n>.journal` and a new one
//! begins; the batch's transaction records that files up to `n` are in the
//! audit trail (`Ledger::listens_journaled`), and then the file is removed.
//! At start, files a killed daemon left are replayed — those already
//! recorded are only removed — so each listen lands exactly once.
//!
//! A line about a recording the ledger knows is journaled without its
//! subject (which names the file, and so often the caller's number): the
//! journal holds nothing an erasure would have to find, and the replay
//! names the recording as the ledger has it then — an erased one as
//! `[erased]`, like the entries the erasure redacted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;
use crate::ledger::audit::{Actor, subject};
use crate::ledger::listens::ListenEntry;

/// The journal being written.
const ACTIVE: &str = "listens.journal";

/// One request for a recording, as journaled and counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Line {
    pub at: i64,
    pub recording_id: Option<i64>,
    /// The recording's audit subject, or the link that was asked for.
    /// Not journaled with a `recording_id` (the replay asks the ledger).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The VICIdial user who authenticated, if any.
    pub user: Option<String>,
    pub client: IpAddr,
    pub user_agent: String,
    /// One of `metrics::PLAYBACK_OUTCOMES`.
    pub outcome: String,
    pub status: u16,
    pub bytes: u64,
    /// Where the bytes came from: `local copy`, `store`, `redirect`, `-`.
    pub via: String,
    /// Why a request was refused (what the client was told), else empty.
    pub note: String,
}

/// The journal of one running server.
pub struct Journal {
    dir: PathBuf,
    /// The number the next rotated file gets.
    next: u64,
    file: Option<File>,
    /// Whether a write failed and was logged (logged once until one works).
    failing: bool,
}

impl Journal {
    /// The journal in `dir`, whose next rotated file is number `next`.
    fn new(dir: &Path, next: u64) -> Journal {
        Journal {
            dir: dir.to_path_buf(),
            next,
            file: None,
            failing: false,
        }
    }

    /// Appends one line. A journal that cannot be written is logged once;
    /// the listen still reaches the audit writer (only a kill could lose it).
    pub fn append(&mut self, line: &Line) {
        let on_disk = match line.recording_id {
            Some(_) => &Line {
                subject: String::new(),
                ..line.clone()
            },
            None => line,
        };
        let mut text = serde_json::to_vec(on_disk).unwrap_or_default();
        text.push(b'\n');
        let result = match &mut self.file {
            Some(f) => f.write_all(&text),
            None => open(&self.dir.join(ACTIVE)).and_then(|mut f| {
                f.write_all(&text)?;
                self.file = Some(f);
                Ok(())
            }),
        };
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("the listen journal is written again");
            }
            Ok(()) => {}
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::error!(dir = %self.dir.display(), "cannot write the listen journal (listens still go to the audit trail, but a crash now could lose some): {e}");
            }
            Err(_) => {}
        }
    }

    /// Closes the journal written since the last call, under its number:
    /// `None` if nothing was written.
    pub fn rotate(&mut self) -> Option<u64> {
        self.file.take()?;
        let n = self.next;
        match fs::rename(self.dir.join(ACTIVE), file_of(&self.dir, n)) {
            Ok(()) => {
                self.next += 1;
                Some(n)
            }
            Err(e) => {
                tracing::error!("cannot rotate the listen journal: {e}");
                None
            }
        }
    }

    /// Removes journal `n`, whose listens are in the audit trail.
    pub fn remove(&self, n: u64) {
        if let Err(e) = fs::remove_file(file_of(&self.dir, n))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove listen journal {n} (its listens are in the audit trail): {e}"
            );
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn file_of(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("listens.{n}.journal"))
}

/// The numbered journal files in `dir`, by number.
fn rotated(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name
                .to_str()?
                .strip_prefix("listens.")?
                .strip_suffix(".journal")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    files
}

/// The lines of a journal file; a line torn by a crash mid-write is skipped.
fn read(path: &Path) -> io::Result<Vec<Line>> {
    let mut lines = Vec::new();
    for text in BufReader::new(File::open(path)?).split(b'\n') {
        match serde_json::from_slice(&text?) {
            Ok(line) => lines.push(line),
            Err(e) => {
                tracing::warn!(path = %path.display(), "a listen journal line could not be read (torn by a crash?): {e}")
            }
        }
    }
    Ok(lines)
}

/// Gives each journaled line about a recording its subject as the ledger
/// names the recording now (`record_listens` redacts an erased one's).
fn name_recordings(ledger: &Ledger, lines: &mut [Line]) {
    for line in lines.iter_mut().filter(|l| l.subject.is_empty()) {
        if let Some(id) = line.recording_id {
            line.subject = match ledger.recording(id) {
                Ok(rec) => subject(&rec),
                Err(_) => format!("recording {id} (link)"),
            };
        }
    }
}

/// Replays what a killed daemon left in `dir` into the audit trail (each
/// file once), then returns the journal to write from now on.
pub fn recover(
    ledger: &Ledger,
    actor: &Actor,
    dir: &Path,
    entries: impl Fn(Vec<Line>) -> Vec<ListenEntry>,
) -> Result<Journal, crate::error::Error> {
    let applied = ledger.listens_journaled()?;
    let mut files = rotated(dir);
    let last = files.last().map_or(0, |(n, _)| *n);
    let mut journal = Journal::new(dir, applied.max(last) + 1);
    let active = dir.join(ACTIVE);
    if active.exists() {
        let n = journal.next;
        fs::rename(&active, file_of(dir, n)).map_err(crate::error::Error::io(&active))?;
        files.push((n, file_of(dir, n)));
        journal.next += 1;
    }
    for (n, path) in files {
        if n > applied {
            let mut lines = read(&path).map_err(crate::error::Error::io(&path))?;
            name_recordings(ledger, &mut lines);
            let count = lines.len();
            ledger.record_listens(actor, &entries(lines), Some(n))?;
            tracing::info!(
                journal = n,
                listens = count,
                "listens a stopped run had journaled are in the audit trail"
            );
        }
        journal.remove(n);
    }
    Ok(journal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerError;
    use crate::ledger::audit::AuditFilter;
    use crate::ledger::fixtures::{insert_call, ledger};

    fn line(recording_id: Option<i64>, subject: String) -> Line {
        Line {
            at: 5,
            recording_id,
            subject,
            user: None,
            client: "10.0.0.7".parse().unwrap(),
            user_agent: "player/1".into(),
            outcome: "served".into(),
            status: 200,
            bytes: 10,
            via: "store".into(),
            note: String::new(),
        }
    }

    fn entries(lines: Vec<Line>) -> Vec<ListenEntry> {
        lines
            .into_iter()
            .map(|l| ListenEntry {
                at: l.at,
                recording_id: l.recording_id,
                subject: l.subject,
                user: "anonymous".into(),
                reason: l.outcome,
            })
            .collect()
    }

    #[test]
    fn the_journal_never_holds_a_recording_s_name_and_an_erased_one_replays_redacted() {
        let (dir, ledger) = ledger();
        let kept = insert_call(
            &ledger,
            "20260301-101500_5551234567-all.wav",
            "S",
            "5551234567",
            1,
        );
        let erased = insert_call(
            &ledger,
            "20260301-111500_5559876543-all.wav",
            "S",
            "5559876543",
            1,
        );
        let mut journal = Journal::new(dir.path(), 1);
        for id in [kept, erased] {
            journal.append(&line(Some(id), subject(&ledger.recording(id).unwrap())));
        }
        journal.append(&line(None, "link /r/x".into()));
        drop(journal);
        // What a kill -9 leaves on disk: no name, no number.
        let text = fs::read_to_string(dir.path().join(ACTIVE)).unwrap();
        assert!(!text.contains("555") && !text.contains(".wav"), "{text}");
        assert!(text.contains("link /r/x"), "{text}");
        // Erased before the daemon came back (pseudonymised by then).
        ledger
            .execute_raw(&format!(
                "UPDATE recordings SET erase_request = 'R-1', erased_at = 2, name = x'00', phone = NULL \
                 WHERE id = {erased}"
            ))
            .unwrap();
        let actor = Actor {
            uid: 1,
            user: "recvault".into(),
        };
        recover(&ledger, &actor, dir.path(), entries).unwrap();
        let mut subjects = Vec::new();
        ledger
            .audit_entries::<LedgerError>(&AuditFilter::default(), |e| {
                subjects.push((e.recording_id, e.subject.clone()));
                Ok(())
            })
            .unwrap();
        assert_eq!(subjects.len(), 3, "{subjects:?}");
        assert!(
            subjects[0].1.contains("20260301-101500_5551234567-all.wav"),
            "{subjects:?}"
        );
        assert_eq!(subjects[1], (Some(erased), "[erased]".to_string()));
        assert_eq!(subjects[2].1, "link /r/x");
        assert_eq!(ledger.verify_audit_chain().unwrap().entries, 3);
    }
}
