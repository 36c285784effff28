//! Test set-up shared by every unit test that needs a ledger with rows in it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Ledger, SpoolFile};
use crate::recording::name::Attribution;
use crate::recording::{FileIdentity, State};

/// A new ledger in a temp directory (kept alive by the returned guard).
pub(crate) fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("l.sqlite3")).unwrap();
    (dir, ledger)
}

/// A spool file at `path` (3 bytes, dev 1, inode 2) last written at `mtime_ns`.
pub(crate) fn spool_file(path: &str, mtime_ns: i64) -> SpoolFile {
    SpoolFile {
        path: PathBuf::from(path),
        name: Path::new(path).file_name().unwrap().as_bytes().to_vec(),
        identity: FileIdentity {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns,
        },
    }
}

/// Records `file` in `state` with what its call is known for. Returns its id.
pub(crate) fn insert(ledger: &Ledger, file: &SpoolFile, call: &Attribution, state: State) -> i64 {
    ledger.insert(file, call, state, "test").unwrap()
}

/// Records a recording at `path` with nothing known about its call.
pub(crate) fn insert_plain(ledger: &Ledger, path: &str, state: State) -> i64 {
    insert(
        ledger,
        &spool_file(path, 4_000_000_000),
        &Attribution::default(),
        state,
    )
}

/// Records a settled call `name` of `campaign` with `phone` (lead `L<phone>`,
/// agent `a1`) at unix time `time`. Returns its id.
pub(crate) fn insert_call(
    ledger: &Ledger,
    name: &str,
    campaign: &str,
    phone: &str,
    time: i64,
) -> i64 {
    let call = Attribution {
        matched: true,
        campaign: Some(campaign.to_string()),
        call_time: Some(time),
        phone: Some(phone.to_string()),
        agent: Some("a1".to_string()),
        lead_id: Some(format!("L{phone}")),
        ..Attribution::default()
    };
    insert(
        ledger,
        &spool_file(&format!("/s/{name}"), 0),
        &call,
        State::Settled,
    )
}

/// Asserts that the totals `status` reads (kept by triggers in
/// `recording_totals`) are what counting every recording gives, per state
/// and per codec.
pub(crate) fn assert_totals_exact(ledger: &Ledger) {
    let conn = ledger.reader().unwrap();
    let count = |sql: &str| -> Vec<(String, u64, u64, u64)> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let by_state = count(
        "SELECT state, COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(object_size), 0) \
         FROM recordings GROUP BY state ORDER BY state",
    );
    let by_codec = count(
        "SELECT codec, COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(object_size), 0) \
         FROM recordings WHERE codec IS NOT NULL AND object_size IS NOT NULL \
         AND state IN ('compressed', 'uploaded', 'verified', 'local_deleted') \
         GROUP BY codec ORDER BY codec",
    );
    drop(conn);
    let flat = |v: Vec<(String, super::StateTotals)>| -> Vec<(String, u64, u64, u64)> {
        v.into_iter()
            .map(|(s, t)| (s, t.count, t.bytes, t.object_bytes))
            .collect()
    };
    let mut kept = flat(
        ledger
            .totals()
            .unwrap()
            .into_iter()
            .map(|(s, t)| (s.as_str().to_string(), t))
            .collect(),
    );
    kept.sort();
    assert_eq!(kept, by_state, "totals per state");
    assert_eq!(
        flat(ledger.codec_totals().unwrap()),
        by_codec,
        "totals per codec"
    );
}
