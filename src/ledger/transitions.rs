//! Every change to a recording's row: one transaction each, which checks
//! the state the recording is in, changes it and records an event. Nothing
//! else in recvault changes a recording's state.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use rusqlite::{OptionalExtension, ToSql, params};

use super::audit::{self, Action, Actor, NewEntry};
use super::group::Change;
use super::rows::{ArchivedObject, CompressedFacts, SpoolFile};
use super::{Ledger, LedgerError, object_keys};
use crate::recording::name::Attribution;
use crate::recording::{FailureKind, FileIdentity, Recording, State};
use crate::units::now_secs;

/// The longest a failed step waits for its retry (the back-off's cap).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

impl Ledger {
    /// Records a newly found file as `seen` (or `quarantined` with a reason),
    /// with what its name says about the call.
    pub fn insert(
        &self,
        file: &SpoolFile,
        call: &Attribution,
        state: State,
        detail: &str,
    ) -> Result<i64, LedgerError> {
        let now = now_secs();
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let id = insert_row(&tx, None, file, state, Some(call), now)?;
        if state == State::Quarantined {
            // A quarantined recording says why in its row, for `status`.
            tx.execute(
                "UPDATE recordings SET last_error = ?2 WHERE id = ?1",
                params![id, detail],
            )?;
        }
        insert_event(&tx, id, None, state, detail, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// The spool file at a local recording's path is no longer the file that
    /// was seen: start over from `seen` with its new identity.
    pub fn reset_changed(
        &self,
        id: i64,
        identity: FileIdentity,
        detail: &str,
    ) -> Result<(), LedgerError> {
        self.transition(
            id,
            &[
                State::Seen,
                State::Settled,
                State::Compressed,
                State::Uploaded,
                State::Failed,
                State::Quarantined,
            ],
            State::Seen,
            &[
                ("dev", &(identity.dev as i64)),
                ("ino", &(identity.ino as i64)),
                ("size", &(identity.size as i64)),
                ("mtime_ns", &identity.mtime_ns),
                ("sha256", &None::<String>),
                ("object_sha256", &None::<String>),
                ("object_size", &None::<i64>),
                ("store_checksum", &None::<String>),
                ("resume_state", &None::<String>),
                ("last_error", &None::<String>),
                ("retry_at", &None::<i64>),
                ("attempts", &0),
            ],
            detail,
        )
    }

    /// `seen` → `settled`: the file stopped changing and nobody writes it.
    pub fn settled(&self, id: i64) -> Result<(), LedgerError> {
        self.transition(id, &[State::Seen], State::Settled, &[], "settled")
    }

    /// `settled` → `compressed`: the object is staged and both hashes are
    /// known. [`LedgerError::KeyTaken`] if another recording has the key.
    /// The key is recorded among the recording's keys before any put.
    pub fn compressed(&self, id: i64, facts: &CompressedFacts) -> Result<(), LedgerError> {
        self.write_grouped(compressed_change(id, facts.clone(), now_secs()))
    }

    /// `compressed` for several recordings in one commit (a batch of small
    /// ones); each gets its own outcome, in order.
    pub fn compressed_many(
        &self,
        items: Vec<(i64, CompressedFacts)>,
    ) -> Vec<Result<(), LedgerError>> {
        let now = now_secs();
        let changes = items
            .into_iter()
            .map(|(id, facts)| compressed_change(id, facts, now))
            .collect();
        self.write_grouped_many(changes)
    }

    /// `compressed` → `settled`: the staged object is gone or incomplete, so
    /// the recording is compressed again.
    pub fn compress_again(&self, id: i64, why: &str) -> Result<(), LedgerError> {
        self.transition(id, &[State::Compressed], State::Settled, &[], why)
    }

    /// `compressed`/`uploaded` → `compressed`: upload again, under `new_key`
    /// if given (the old key holds a different or damaged object; it stays
    /// among the recording's keys, so erasure and retention still reach it).
    pub fn upload_again(
        &self,
        id: i64,
        new_key: Option<&str>,
        why: &str,
    ) -> Result<(), LedgerError> {
        let from = [State::Compressed, State::Uploaded];
        let now = now_secs();
        match new_key {
            Some(key) => self.write(|tx| {
                let sets: [(&str, &dyn ToSql); 1] = [("object_key", &key)];
                apply(tx, id, &from, State::Compressed, &sets, why, now)
                    .map_err(|e| with_key(e, key))?;
                object_keys::track(tx, id, key, now)
            }),
            None => self.transition(id, &from, State::Compressed, &[], why),
        }
    }

    /// `compressed` → `uploaded`: the store took the object and will report
    /// `store_checksum` for it.
    pub fn uploaded(&self, id: i64, store_checksum: &str) -> Result<(), LedgerError> {
        let (now, checksum) = (now_secs(), store_checksum.to_string());
        self.write_grouped(Box::new(move |tx| record_upload(tx, id, &checksum, now)))
    }

    /// `verified` → `local_deleted` after recvault removed the local copy
    /// (`how` says what it found), audited as `actor`'s local delete.
    pub fn local_copy_removed(
        &self,
        rec: &Recording,
        how: &str,
        actor: &Actor,
    ) -> Result<(), LedgerError> {
        self.write_grouped(removed_change(
            rec.clone(),
            how.to_string(),
            actor.clone(),
            now_secs(),
        ))
    }

    /// `local_copy_removed` for several recordings in one commit (a batch
    /// of small ones), each with how; each gets its own outcome, in order.
    pub fn local_copies_removed(
        &self,
        removed: &[(Recording, &str)],
        actor: &Actor,
    ) -> Vec<Result<(), LedgerError>> {
        let now = now_secs();
        let changes = removed
            .iter()
            .map(|(rec, how)| removed_change(rec.clone(), how.to_string(), actor.clone(), now))
            .collect();
        self.write_grouped_many(changes)
    }

    /// `verified` → `local_deleted` because someone else removed or replaced
    /// the archived local copy.
    pub fn local_copy_lost(&self, id: i64, why: &str) -> Result<(), LedgerError> {
        self.transition(
            id,
            &[State::Verified],
            State::LocalDeleted,
            &[("local_deleted_at", &now_secs())],
            why,
        )
    }

    /// `from` → `gone`: the file vanished (or turned into something else)
    /// before it was archived.
    pub fn gone(&self, id: i64, from: State, why: &str) -> Result<(), LedgerError> {
        self.transition(id, &[from], State::Gone, &[], why)
    }

    /// Moves a recording from one of `from` to `to`, setting `sets`, and
    /// records the event — all in one transaction. Fails with
    /// [`LedgerError::StateConflict`] if the recording was not in `from`.
    fn transition(
        &self,
        id: i64,
        from: &[State],
        to: State,
        sets: &[(&str, &dyn ToSql)],
        detail: &str,
    ) -> Result<(), LedgerError> {
        // Only "verified" allows deleting the local file: that commit must
        // survive power loss before the delete happens.
        self.write_durable(to == State::Verified, |tx| {
            apply(tx, id, from, to, sets, detail, now_secs()).map(drop)
        })
    }

    /// Records a failed step: the recording waits in `failed` until `retry_at`,
    /// then resumes from the state it failed in.
    pub fn mark_failed(
        &self,
        rec: &Recording,
        kind: FailureKind,
        error: &str,
        retry_at: i64,
    ) -> Result<(), LedgerError> {
        let resume = rec.state.as_str();
        let attempts = rec.attempts + 1;
        self.transition(
            rec.id,
            &[rec.state],
            State::Failed,
            &[
                ("resume_state", &resume),
                ("failure_kind", &kind.as_str()),
                ("last_error", &error),
                ("retry_at", &retry_at),
                ("attempts", &attempts),
            ],
            error,
        )
    }

    /// Puts a failed recording back into the state it failed in.
    pub fn resume_failed(&self, rec: &Recording) -> Result<State, LedgerError> {
        let to = rec.resume_state.unwrap_or(State::Seen);
        self.transition(
            rec.id,
            &[State::Failed],
            to,
            &[("retry_at", &None::<i64>)],
            "retrying",
        )?;
        Ok(to)
    }

    /// After a store outage ends, recordings that failed only because the
    /// store was unreachable are due again at once.
    pub fn retry_store_failures_now(&self) -> Result<usize, LedgerError> {
        Ok(self.writer().execute(
            "UPDATE recordings SET retry_at = ?1 WHERE state = 'failed' AND failure_kind = 'store_outage'",
            [now_secs()],
        )?)
    }

    /// Records a recording rebuilt from its object, with one event saying so.
    pub fn insert_archived(&self, object: &ArchivedObject) -> Result<i64, LedgerError> {
        let now = now_secs();
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let id_free = match object.id {
            Some(id) => tx
                .query_row("SELECT 1 FROM recordings WHERE id = ?1", [id], |_| Ok(()))
                .optional()?
                .is_none(),
            None => false,
        };
        let local_deleted_at = (object.state == State::LocalDeleted).then_some(now);
        let file = SpoolFile {
            path: object.path.clone(),
            name: object.name.clone(),
            identity: object.identity,
        };
        let id = insert_row(
            &tx,
            object.id.filter(|_| id_free),
            &file,
            object.state,
            object.call.as_ref(),
            now,
        )?;
        if let Some((vicidial_id, call_length)) = object.vicidial {
            // Attributed from the database before: not asked again.
            tx.execute(
                "UPDATE recordings SET db_attribution = 'done', vicidial_recording_id = ?2, \
                 call_length = ?3 WHERE id = ?1",
                params![id, vicidial_id, call_length],
            )?;
        }
        tx.execute(
            "UPDATE recordings SET sha256 = ?2, object_key = ?3, object_size = ?4, object_sha256 = ?5, \
             store_checksum = ?6, codec = ?7, verified_at = ?8, local_deleted_at = ?9 WHERE id = ?1",
            params![
                id,
                object.sha256,
                object.object_key,
                object.object_size as i64,
                object.object_sha256,
                object.store_checksum,
                object.codec,
                now,
                local_deleted_at,
            ],
        )?;
        object_keys::track_written(&tx, id, &object.object_key, now)?;
        insert_event(
            &tx,
            id,
            None,
            object.state,
            "rebuilt from the store's object metadata",
            now,
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Adds an event to a recording's history without changing its state
    /// (e.g. what `recvault verify` found).
    pub fn note(&self, id: i64, detail: &str) -> Result<(), LedgerError> {
        let now = now_secs();
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let state: String = tx
            .query_row("SELECT state FROM recordings WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(LedgerError::NoSuchRecording(id))?;
        let state: State = state.parse().unwrap_or(State::Failed);
        insert_event(&tx, id, Some(state), state, detail, now)?;
        tx.commit()?;
        Ok(())
    }
}

/// One state change inside the caller's transaction: checks that the
/// recording is in one of `from`, moves it to `to` setting `sets`, records
/// the event. Returns the state it was in. A unique-key clash on the object
/// key is [`LedgerError::KeyTaken`] (with no key: the caller knows it).
pub(super) fn apply(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    from: &[State],
    to: State,
    sets: &[(&str, &dyn ToSql)],
    detail: &str,
    now: i64,
) -> Result<State, LedgerError> {
    let current: Option<String> = tx
        .prepare_cached("SELECT state FROM recordings WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let current = current.ok_or(LedgerError::NoSuchRecording(id))?;
    let conflict = || LedgerError::StateConflict {
        id,
        expected: from
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("|"),
    };
    let current: State = current.parse().map_err(|_| conflict())?;
    if !from.contains(&current) {
        return Err(conflict());
    }
    // A recording that moves on is no longer reserved for a deletion —
    // except for an erasure, a commitment kept until every copy is gone.
    let mut sql = String::from(
        "UPDATE recordings SET state = ?1, updated_at = ?2, \
         deleting_at = CASE WHEN deleting_what = 'erasure' THEN deleting_at END, \
         deleting_what = CASE WHEN deleting_what = 'erasure' THEN deleting_what END",
    );
    let mut values: Vec<&dyn ToSql> = vec![&to as &dyn ToSql, &now];
    for (i, (column, value)) in sets.iter().enumerate() {
        sql.push_str(&format!(", {column} = ?{}", i + 3));
        values.push(*value);
    }
    sql.push_str(&format!(" WHERE id = ?{}", values.len() + 1));
    values.push(&id);
    // Cached: each call site sets the same columns every time, so a handful
    // of statements are parsed once, not once per recording.
    match tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(values.as_slice()))
    {
        Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
            if e.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("object_key") =>
        {
            return Err(LedgerError::KeyTaken(String::new()));
        }
        other => {
            other?;
        }
    }
    insert_event(tx, id, Some(current), to, detail, now)?;
    Ok(current)
}

/// `compressed` → `uploaded` inside the caller's transaction (alone, or
/// in the `verified` commit: `ledger::verify`), the key recorded written.
pub(super) fn record_upload(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    store_checksum: &str,
    now: i64,
) -> Result<(), LedgerError> {
    let sets: [(&str, &dyn ToSql); 1] = [("store_checksum", &store_checksum)];
    apply(
        tx,
        id,
        &[State::Compressed],
        State::Uploaded,
        &sets,
        "uploaded",
        now,
    )?;
    object_keys::current_written(tx, id)
}

/// Inserts a recording's row for `file` in `state` (with `id` if given,
/// else the ledger's next id: `ledger::ids`), attributed to `call`
/// (`None`: not yet attributed). Returns its id.
pub(super) fn insert_row(
    tx: &rusqlite::Transaction<'_>,
    id: Option<i64>,
    file: &SpoolFile,
    state: State,
    call: Option<&Attribution>,
    now: i64,
) -> Result<i64, LedgerError> {
    tx.prepare_cached(
        "INSERT INTO recordings (id, path, name, dev, ino, size, mtime_ns, state, first_seen, updated_at, \
           attributed, campaign, call_time, phone, agent, lead_id, name_time) \
         VALUES (COALESCE(?1, (SELECT next FROM recording_ids WHERE id = 1)), \
           ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
            id,
            file.path.as_os_str().as_bytes(),
            file.name,
            file.identity.dev as i64,
            file.identity.ino as i64,
            file.identity.size as i64,
            file.identity.mtime_ns,
            state.as_str(),
            now,
            call.map(|c| c.matched),
            call.and_then(|c| c.campaign.as_deref()),
            call.and_then(|c| c.call_time),
            call.and_then(|c| c.phone.as_deref()),
            call.and_then(|c| c.agent.as_deref()),
            call.and_then(|c| c.lead_id.as_deref()),
            call.and_then(|c| c.name_time),
        ])?;
    Ok(tx.last_insert_rowid())
}

/// Names the key in a [`LedgerError::KeyTaken`] from [`apply`].
fn with_key(e: LedgerError, key: &str) -> LedgerError {
    match e {
        LedgerError::KeyTaken(_) => LedgerError::KeyTaken(key.to_string()),
        e => e,
    }
}

/// Records a state change in the events table (inside the caller's transaction).
pub(super) fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    from: Option<State>,
    to: State,
    detail: &str,
    now: i64,
) -> Result<(), LedgerError> {
    tx.prepare_cached(
        "INSERT INTO events (recording_id, at, from_state, to_state, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, now, from.map(|s| s.as_str()), to.as_str(), detail])?;
    Ok(())
}

/// `settled` → `compressed` of recording `id` with `facts`, its key tracked.
fn compressed_change(id: i64, facts: CompressedFacts, now: i64) -> Change {
    Box::new(move |tx| {
        let sets: [(&str, &dyn ToSql); 5] = [
            ("sha256", &facts.sha256),
            ("object_key", &facts.object_key),
            ("object_size", &(facts.object_size as i64)),
            ("object_sha256", &facts.object_sha256),
            ("codec", &facts.codec),
        ];
        apply(
            tx,
            id,
            &[State::Settled],
            State::Compressed,
            &sets,
            "compressed",
            now,
        )
        .map_err(|e| with_key(e, &facts.object_key))?;
        object_keys::track(tx, id, &facts.object_key, now)
    })
}

/// `verified` → `local_deleted` of `rec` (removed `how`), in the audit trail.
fn removed_change(rec: Recording, how: String, actor: Actor, now: i64) -> Change {
    Box::new(move |tx| {
        apply(
            tx,
            rec.id,
            &[State::Verified],
            State::LocalDeleted,
            &[("local_deleted_at", &now)],
            &how,
            now,
        )?;
        let entry = NewEntry {
            action: Action::LocalDelete,
            case_id: None,
            subject: &audit::subject(&rec),
            reason: &format!("object verified in the store; {how}"),
            recording_id: Some(rec.id),
        };
        audit::append(tx, &actor, now, &entry).map(|_| ())
    })
}
