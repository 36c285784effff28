//! The one pass of `ledger check` over the recordings, in id order, beside
//! the tables that name recordings (events, object keys, locations) read in
//! the same order from their indexes: a merge, so each recording's history
//! and keys are known without a lookup per row, and a row naming a
//! recording that does not exist is found on the way.

use std::iter::Peekable;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

use super::Tally;
use super::totals::Counted;
use crate::ledger::LedgerError;

/// The rule broken by a row naming a recording (or a hold, an audit entry)
/// that does not exist.
pub(super) const ORPHAN_RULE: &str =
    "every event, object key, location and hold selector belongs to what it names (foreign keys)";

const KNOWN_STATES: &[&[u8]] = &[
    b"seen",
    b"settled",
    b"compressed",
    b"uploaded",
    b"verified",
    b"local_deleted",
    b"remote_deleted",
    b"failed",
    b"quarantined",
    b"gone",
];

/// The rules checked on each recording, in the order they are reported.
const RULES: [&str; 10] = [
    "every state is one recvault knows",
    "a local copy is deleted only after its object was verified \
     (local_deleted has verified_at, object key and SHA-256)",
    "verified recordings have their hashes, size, object key and verification time",
    "compressed and uploaded recordings have their hashes and object key",
    // Retention also deletes recordings that were never uploaded; those
    // never had a verified object to keep a record of.
    "archived recordings deleted by retention keep their object key and hashes",
    "a recording's object key is among the keys it is known to have chosen \
     (so erasure and retention reach its object)",
    "an erased recording keeps no object key (a key names the file)",
    "failed recordings say why, when to retry and where to resume",
    "quarantined recordings say why",
    "hashes are 64 hex digits",
];
/// Reported after [`RULES`]: found by the merge with the events.
const HISTORY_RULE: &str = "every recording has a history (at least one event)";

const RECORDINGS: &str = "SELECT id, state, verified_at IS NOT NULL, object_key, sha256, \
    object_sha256, object_size IS NOT NULL, last_error IS NOT NULL, retry_at IS NOT NULL, \
    resume_state IS NOT NULL, erased_at IS NOT NULL, CAST(COALESCE(codec, '') AS BLOB), size, \
    COALESCE(object_size, 0) FROM recordings ORDER BY id";
/// Each table naming recordings, read in recording order from an index.
const EVENTS: &str =
    "SELECT recording_id, NULL FROM events GROUP BY recording_id ORDER BY recording_id";
const OBJECT_KEYS: &str = "SELECT recording_id, key FROM object_keys ORDER BY recording_id, key";
const LOCATIONS: &str = "SELECT recording_id, NULL FROM locations ORDER BY recording_id";

/// What the pass needs of a recording's row.
struct Recording {
    id: i64,
    state: Vec<u8>,
    verified: bool,
    object_key: Option<Vec<u8>>,
    sha256: Option<Vec<u8>>,
    object_sha256: Option<Vec<u8>>,
    object_size: bool,
    last_error: bool,
    retry_at: bool,
    resume_state: bool,
    erased: bool,
    /// What `recording_totals` sums: codec ('' for none), size, object size.
    codec: Vec<u8>,
    size: i64,
    object_bytes: i64,
}

impl Recording {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Recording> {
        Ok(Recording {
            id: r.get(0)?,
            state: bytes(r.get_ref(1)?).unwrap_or_default(),
            verified: r.get(2)?,
            object_key: bytes(r.get_ref(3)?),
            sha256: bytes(r.get_ref(4)?),
            object_sha256: bytes(r.get_ref(5)?),
            object_size: r.get(6)?,
            last_error: r.get(7)?,
            retry_at: r.get(8)?,
            resume_state: r.get(9)?,
            erased: r.get(10)?,
            codec: r.get(11)?,
            size: r.get(12)?,
            object_bytes: r.get(13)?,
        })
    }

    fn is(&self, states: &[&str]) -> bool {
        states.iter().any(|s| s.as_bytes() == self.state.as_slice())
    }

    /// The rules of [`RULES`] this recording breaks, given the object keys
    /// it is known to have chosen.
    fn broken(&self, keys: &[Vec<u8>]) -> [bool; RULES.len()] {
        let hashes = self.sha256.is_some() && self.object_sha256.is_some();
        let stored = hashes && self.object_size && self.object_key.is_some();
        let untracked_key = match &self.object_key {
            Some(key) => !self.erased && !keys.contains(key),
            None => false,
        };
        let bad_hash = |h: &Option<Vec<u8>>| h.as_deref().is_some_and(|h| !is_hex_sha256(h));
        [
            !KNOWN_STATES.contains(&self.state.as_slice()),
            self.is(&["local_deleted"])
                && !(self.verified && self.object_key.is_some() && self.sha256.is_some()),
            self.is(&["verified"]) && !(stored && self.verified),
            self.is(&["compressed", "uploaded"]) && !stored,
            self.is(&["remote_deleted"])
                && self.verified
                && !(self.object_key.is_some() && self.sha256.is_some()),
            untracked_key,
            self.erased && !keys.is_empty(),
            self.is(&["failed"]) && !(self.last_error && self.retry_at && self.resume_state),
            self.is(&["quarantined"]) && !self.last_error,
            bad_hash(&self.sha256) || bad_hash(&self.object_sha256),
        ]
    }
}

/// A value as bytes (text and blobs as they are, numbers as SQLite prints
/// them); `None` for NULL.
fn bytes(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Null => None,
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(f) => Some(f.to_string().into_bytes()),
    }
}

/// True for 64 lower-case hex digits, the form every hash is kept in.
fn is_hex_sha256(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// A table naming recordings, read in recording order beside them.
struct Children<I: Iterator> {
    rows: Peekable<I>,
}

impl<I> Children<I>
where
    I: Iterator<Item = rusqlite::Result<(i64, Option<Vec<u8>>)>>,
{
    /// Takes the rows naming recordings up to `id`: those below it name
    /// none (the recordings come in order and `id` is the next one), so they
    /// are orphans; those naming `id` go to `each`.
    fn upto(
        &mut self,
        id: i64,
        orphans: &mut Tally,
        mut each: impl FnMut(Option<Vec<u8>>),
    ) -> Result<(), LedgerError> {
        loop {
            let named = match self.rows.peek() {
                None => return Ok(()),
                Some(Ok((named, _))) => *named,
                Some(Err(_)) => return self.error(),
            };
            if named > id {
                return Ok(());
            }
            if let Some(Ok((_, value))) = self.rows.next() {
                if named == id {
                    each(value);
                } else {
                    orphans.add(named);
                }
            }
        }
    }

    /// Every row left names no recording.
    fn rest(&mut self, orphans: &mut Tally) -> Result<(), LedgerError> {
        for row in self.rows.by_ref() {
            orphans.add(row?.0);
        }
        Ok(())
    }

    fn error(&mut self) -> Result<(), LedgerError> {
        match self.rows.next() {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

fn child(r: &Row<'_>) -> rusqlite::Result<(i64, Option<Vec<u8>>)> {
    Ok((r.get(0)?, bytes(r.get_ref(1)?)))
}

/// Reads every recording once, with its events, object keys and location
/// beside it; returns the tallies of [`RULES`], the history rule and
/// `orphans` (which may already hold what other tables found); adds each
/// recording to `counted`.
pub(super) fn scan(
    conn: &Connection,
    mut orphans: Tally,
    counted: &mut Counted,
) -> Result<Vec<Tally>, LedgerError> {
    let mut tallies: Vec<Tally> = RULES.iter().map(|r| Tally::new(r)).collect();
    let mut history = Tally::new(HISTORY_RULE);
    let (mut recs, mut ev, mut ok, mut loc) = (
        conn.prepare(RECORDINGS)?,
        conn.prepare(EVENTS)?,
        conn.prepare(OBJECT_KEYS)?,
        conn.prepare(LOCATIONS)?,
    );
    let mut events = Children {
        rows: ev.query_map([], child)?.peekable(),
    };
    let mut object_keys = Children {
        rows: ok.query_map([], child)?.peekable(),
    };
    let mut locations = Children {
        rows: loc.query_map([], child)?.peekable(),
    };
    let mut keys = Vec::new();
    for rec in recs.query_map([], Recording::from_row)? {
        let rec = rec?;
        let mut has_event = false;
        events.upto(rec.id, &mut orphans, |_| has_event = true)?;
        keys.clear();
        object_keys.upto(rec.id, &mut orphans, |k| keys.extend(k))?;
        locations.upto(rec.id, &mut orphans, |_| {})?;
        for (tally, broken) in tallies.iter_mut().zip(rec.broken(&keys)) {
            if broken {
                tally.add(rec.id);
            }
        }
        if !has_event {
            history.add(rec.id);
        }
        counted.add(
            (rec.state, rec.codec, rec.object_size),
            rec.size,
            rec.object_bytes,
        );
    }
    events.rest(&mut orphans)?;
    object_keys.rest(&mut orphans)?;
    locations.rest(&mut orphans)?;
    tallies.push(history);
    tallies.insert(0, orphans);
    Ok(tallies)
}
