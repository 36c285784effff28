//! Erasure in the ledger: reservation against holds, pseudonyms, redacted
//! history and audit entries, a chain that still verifies and still finds
//! tampering.

use super::*;
use crate::ledger::CompressedFacts;
use crate::ledger::fixtures::{self, spool_file};
use crate::ledger::redaction::{REDACTED, Redactions};
use crate::recording::name::Attribution;
use crate::recording::pseudonym::PseudonymKey;

const X: &str = "5551234567";
const Y: &str = "5559876543";

fn actor() -> Actor {
    Actor {
        uid: 0,
        user: "root".into(),
    }
}

/// A recording of `phone` archived (its local copy removed, audited).
fn archived(ledger: &Ledger, name: &str, phone: &str, n: u8) -> i64 {
    let call = Attribution {
        matched: true,
        phone: Some(phone.into()),
        lead_id: Some("4711".into()),
        call_time: Some(1_000 + i64::from(n)),
        ..Attribution::default()
    };
    let id = fixtures::insert(
        ledger,
        &spool_file(&format!("/s/{name}"), 0),
        &call,
        State::Settled,
    );
    let facts = CompressedFacts {
        sha256: hex::encode([n; 32]),
        object_key: format!("host/2026/{name}.zst"),
        object_size: 10,
        object_sha256: hex::encode([n + 1; 32]),
        codec: "zstd".into(),
    };
    ledger.compressed(id, &facts).unwrap();
    ledger.uploaded(id, "c").unwrap();
    ledger.verified(id).unwrap();
    ledger
        .note(id, &format!("cannot read /s/{name}: busy"))
        .unwrap();
    let rec = ledger.recording(id).unwrap();
    ledger
        .local_copy_removed(&rec, "archived", &actor())
        .unwrap();
    id
}

/// Every text and blob value of every table, as text.
fn dump(ledger: &Ledger) -> String {
    let conn = ledger.reader().unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        out.push_str(&String::from_utf8_lossy(b));
                        out.push('\n');
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn erase_all(ledger: &Ledger, key: &PseudonymKey) -> Recorded {
    let due = ledger.due_erasures(i64::MAX, 0, 100).unwrap();
    let outcomes: Vec<_> = due
        .into_iter()
        .map(|r| {
            let replacements = key.replacements(&r);
            (
                r,
                Outcome::Erased {
                    replacements,
                    what: "object deleted".into(),
                },
            )
        })
        .collect();
    ledger.record_erasures(9_000, &actor(), &outcomes).unwrap()
}

#[test]
fn an_erased_caller_leaves_no_readable_number_and_the_trail_still_verifies() {
    let (_dir, ledger) = fixtures::ledger();
    let key = PseudonymKey::new([3; 32]);
    let a = archived(&ledger, &format!("20260301-101500_{X}-all.wav"), X, 1);
    let b = archived(&ledger, &format!("20260302-101500_{X}-all.wav"), X, 2);
    let held = archived(&ledger, &format!("20260303-101500_{Y}-all.wav"), Y, 3);
    // A released hold once named X; an active one protects Y.
    ledger
        .insert_hold(&actor(), 5, "OLD", "why", &[Selector::Phone(X.into())])
        .unwrap();
    ledger.release_holds(&actor(), 6, "OLD", "done").unwrap();
    ledger
        .insert_hold(&actor(), 7, "CASE-9", "why", &[Selector::Phone(Y.into())])
        .unwrap();

    let selectors = [
        Selector::Phone(X.into()),
        Selector::Phone(Y.into()),
        Selector::Phone(key.phone(X)),
    ];
    // Refused: nothing is written.
    let (seen, reserved) = ledger
        .reserve_erasure(&selectors, "REQ-1", &actor(), 8, |_| None)
        .unwrap();
    assert_eq!((seen.len(), reserved), (3, false));
    assert!(ledger.due_erasures(i64::MAX, 0, 10).unwrap().is_empty());
    let (seen, reserved) = ledger
        .reserve_erasure(&selectors, "REQ-1", &actor(), 8, |m| {
            Some(format!("{} matched", m.len()))
        })
        .unwrap();
    assert!(reserved);
    assert_eq!(seen.iter().filter(|m| m.held()).count(), 1);
    let due: Vec<i64> = ledger
        .due_erasures(i64::MAX, 0, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, [a, b], "the held one is not reserved");

    let done = erase_all(&ledger, &key);
    assert_eq!((done.erased, done.waiting, done.failed), (2, 0, 0));
    // `status` counts the erased as remote_deleted, the held one as before.
    fixtures::assert_totals_exact(&ledger);
    assert!(
        done.redacted >= 3,
        "two local deletes and the released hold's entries: {done:?}"
    );
    let rec = ledger.recording(a).unwrap();
    assert!(rec.is_erased() && rec.state == State::RemoteDeleted);
    assert_eq!(rec.phone, Some(key.phone(X)));
    assert_eq!(rec.lead_id, Some(key.lead("4711")));
    assert!(crate::recording::pseudonym::is_pseudonym(&rec.name));
    assert!(rec.object_key.as_deref().unwrap().starts_with("erased:"));
    assert_eq!(
        rec.sha256,
        Some(hex::encode([1; 32])),
        "hashes stay, for accountability"
    );
    let all = dump(&ledger);
    assert!(!all.contains(X), "X is still readable:\n{all}");
    assert!(all.contains(Y), "the held caller is untouched");
    assert!(!ledger.recording(held).unwrap().erasure_requested());
    ledger.verify_audit_chain().unwrap();

    // The same caller asks again: found by the pseudonym, nothing to redo.
    let (seen, _) = ledger
        .reserve_erasure(&selectors, "REQ-2", &actor(), 10, |_| Some("again".into()))
        .unwrap();
    assert_eq!(seen.iter().filter(|m| m.rec.is_erased()).count(), 2);
    assert!(ledger.due_erasures(i64::MAX, 0, 10).unwrap().is_empty());
    assert_eq!(erase_all(&ledger, &key), Recorded::default());
    ledger.verify_audit_chain().unwrap();
}

/// A ledger with one erased recording: it and the id of a redacted entry.
fn erased_ledger() -> (tempfile::TempDir, Ledger, i64) {
    let (dir, ledger) = fixtures::ledger();
    archived(&ledger, &format!("20260301-101500_{X}-all.wav"), X, 1);
    ledger
        .reserve_erasure(&[Selector::Phone(X.into())], "R", &actor(), 8, |_| {
            Some("ok".into())
        })
        .unwrap();
    erase_all(&ledger, &PseudonymKey::new([4; 32]));
    ledger.verify_audit_chain().unwrap();
    let redacted = query(&ledger, "SELECT entry_id FROM audit_redactions");
    (dir, ledger, redacted)
}

fn query(ledger: &Ledger, sql: &str) -> i64 {
    ledger
        .reader()
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Runs `sql` round the triggers, then what `audit verify` says.
fn tamper(ledger: &Ledger, sql: &str) -> String {
    ledger
        .execute_raw(&format!(
            "DROP TRIGGER IF EXISTS audit_no_update; \
             DROP TRIGGER IF EXISTS audit_redactions_no_delete; {sql}"
        ))
        .unwrap();
    ledger.verify_audit_chain().unwrap_err().to_string()
}

#[test]
fn a_redacted_entry_or_a_redaction_record_edited_later_is_found() {
    let (_dir, ledger, redacted) = erased_ledger();
    // Only a redaction may change an entry...
    let refused = ledger
        .execute_raw(&format!(
            "UPDATE audit SET subject = 'x' WHERE id = {redacted}"
        ))
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    // ...and edits behind the triggers' back are found.
    let e = tamper(
        &ledger,
        &format!("UPDATE audit SET user = 'mallory' WHERE id = {redacted}"),
    );
    assert!(
        e.contains(&format!("entry {redacted}")) && e.contains("edited"),
        "{e}"
    );

    let (_dir, ledger, redacted) = erased_ledger();
    let e = tamper(
        &ledger,
        &format!("DELETE FROM audit_redactions WHERE entry_id = {redacted}"),
    );
    assert!(
        e.contains(&format!("entry {redacted}")) && e.contains("edited"),
        "{e}"
    );

    // Another entry redacted, recorded as if the erasure had done it.
    let (_dir, ledger, _) = erased_ledger();
    let other = query(
        &ledger,
        "SELECT MIN(id) FROM audit WHERE subject != '[erased]'",
    );
    let by = query(&ledger, "SELECT by_entry FROM audit_redactions");
    let entry = ledger.reader().unwrap().query_row(
        &format!(
            "SELECT {} FROM audit WHERE id = ?1",
            crate::ledger::audit::ENTRY_COLUMNS
        ),
        [other],
        crate::ledger::audit::entry_from_row,
    );
    let forged = Redactions::of(vec![entry.unwrap()], &[])
        .rest_digests()
        .remove(0);
    let e = tamper(
        &ledger,
        &format!(
            "INSERT INTO audit_redactions VALUES ({other}, {by}, '{forged}'); \
             UPDATE audit SET subject = '{REDACTED}' WHERE id = {other}"
        ),
    );
    assert!(e.contains("not the ones it recorded"), "{e}");
}

#[test]
fn a_reserved_erasure_outlives_transitions_releases_and_the_work_queue() {
    let (_dir, ledger) = fixtures::ledger();
    let call = Attribution {
        phone: Some(X.into()),
        ..Attribution::default()
    };
    let id = fixtures::insert(&ledger, &spool_file("/s/a.wav", 0), &call, State::Settled);
    assert_eq!(ledger.work_queue(i64::MAX, 1, false, 10).unwrap().len(), 1);
    ledger
        .reserve_erasure(&[Selector::Phone(X.into())], "R", &actor(), 1, |_| {
            Some("ok".into())
        })
        .unwrap();
    assert!(
        ledger
            .work_queue(i64::MAX, 1, false, 10)
            .unwrap()
            .is_empty(),
        "no new step on it"
    );
    ledger.release_reservations(&[id]).unwrap();
    ledger.gone(id, State::Settled, "removed").unwrap();
    let due = ledger.due_erasures(i64::MAX, 0, 10).unwrap();
    assert_eq!(
        due.len(),
        1,
        "still reserved after a release and a transition"
    );
    assert_eq!(due[0].erasure.as_ref().unwrap().request, "R");
    assert!(due[0].erasure_requested() && !due[0].is_erased());
    assert_eq!(
        ledger
            .reserved(crate::ledger::reservations::Deletion::Erasure)
            .unwrap()
            .len(),
        1
    );
}
