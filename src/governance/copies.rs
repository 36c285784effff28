//! Every copy recvault wrote of a recording, for the two paths that delete
//! recordings (retention and erasure): every object it may have in the
//! store — not only its current key, but an upload that failed its
//! verification or the object of a file that changed after it was put
//! (`ledger::object_keys`) — and the files it left beside the spool: the
//! staged object and its temp files, a read-back or a scrub's download, and
//! the playback server's decoded copy.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use crate::ledger::Ledger;
use crate::recording::Recording;
use crate::recording::pseudonym::is_pseudonym;
use crate::serve::cache::file_of;
use crate::store::{ObjectInfo, Purged, Store, StoreError, meta};

/// What deleting every object of one recording did: `None` if it had none.
pub type Outcome = Option<Result<Purged, StoreError>>;

/// True if `info` is an object recvault put for `rec` from host `host`.
fn is_ours(info: &ObjectInfo, rec: &Recording, host: &str) -> bool {
    let m = &info.metadata;
    if m.get(meta::HOST).map(String::as_str) != Some(host) {
        return false;
    }
    match m.get(meta::RECORDING_ID) {
        Some(id) => *id == rec.id.to_string(),
        // Objects from before ids were stored: the original's hash says.
        None => rec.sha256.is_some() && m.get(meta::ORIGINAL_SHA256) == rec.sha256.as_ref(),
    }
}

/// The keys of `rec` to delete: those whose object the store took from us,
/// and those chosen for it where the object now there names this host and
/// recording (a put that may have gone through before a crash). Another's
/// object under a chosen key is left alone, and no longer tracked for it.
async fn keys_of(
    ledger: &Arc<Ledger>,
    store: &dyn Store,
    host: &str,
    rec: &Recording,
) -> Result<Vec<String>, Error> {
    let id = rec.id;
    let mut tracked = ledger.call(move |l| l.object_keys(&[id])).await?;
    let mut tracked = tracked.remove(&id).unwrap_or_default();
    // A current key missing from the table (a ledger a bug left so) still counts.
    if let Some(current) = rec
        .object_key
        .as_ref()
        .filter(|k| !is_pseudonym(k.as_bytes()))
        && !tracked.iter().any(|t| t.key == *current)
    {
        tracked.push(crate::ledger::object_keys::TrackedKey {
            key: current.clone(),
            written: rec.may_be_stored(),
        });
    }
    let mut keys = Vec::new();
    for t in tracked {
        if t.written {
            keys.push(t.key);
            continue;
        }
        match store.head(&t.key).await? {
            None => {}
            Some(info) if is_ours(&info, rec, host) => keys.push(t.key),
            Some(_) => {
                let key = t.key.clone();
                ledger.call(move |l| l.key_found(id, &key, false)).await?;
            }
        }
    }
    Ok(keys)
}

/// Deletes every version of every object of each of `recs` (`store`:
/// `None` if none is configured). Per recording: `None` if it has no
/// object, else what deleting them all came to — the first error, or the
/// versions deleted and those Object Lock keeps.
pub async fn purge(
    ledger: &Arc<Ledger>,
    store: Option<&dyn Store>,
    host: &str,
    recs: &[&Recording],
) -> Result<HashMap<i64, Outcome>, Error> {
    let mut out = HashMap::new();
    let Some(store) = store else {
        // Nothing can be asked: what may be stored cannot be deleted now.
        let none = StoreError::Permanent("no store is configured to delete it from".into());
        let ids: Vec<i64> = recs.iter().map(|r| r.id).collect();
        let tracked = ledger.call(move |l| l.object_keys(&ids)).await?;
        for rec in recs {
            let written = tracked
                .get(&rec.id)
                .is_some_and(|k| k.iter().any(|t| t.written));
            let stored = written || rec.may_be_stored();
            out.insert(rec.id, stored.then(|| Err(none.clone())));
        }
        return Ok(out);
    };
    let mut keys_per = Vec::with_capacity(recs.len());
    for rec in recs {
        match keys_of(ledger, store, host, rec).await {
            Ok(keys) => keys_per.push((rec.id, Ok(keys))),
            // The store did not answer: this recording waits for the next run.
            Err(Error::Store(e)) => keys_per.push((rec.id, Err(e))),
            Err(e) => return Err(e),
        }
    }
    let all: Vec<String> = keys_per
        .iter()
        .filter_map(|(_, k)| k.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let results: HashMap<String, Result<Purged, StoreError>> = match all.is_empty() {
        true => HashMap::new(),
        false => match store.delete_all_versions(&all).await {
            Ok(results) => results.into_iter().collect(),
            Err(e) => all.iter().map(|k| (k.clone(), Err(e.clone()))).collect(),
        },
    };
    for (id, keys) in keys_per {
        let outcome = match keys {
            Err(e) => Some(Err(e)),
            Ok(keys) if keys.is_empty() => None,
            Ok(keys) => Some(combine(&keys, &results)),
        };
        out.insert(id, outcome);
    }
    Ok(out)
}

/// One recording's purge from its keys' results.
fn combine(
    keys: &[String],
    results: &HashMap<String, Result<Purged, StoreError>>,
) -> Result<Purged, StoreError> {
    let mut total = Purged::default();
    for key in keys {
        let p = results
            .get(key)
            .cloned()
            .unwrap_or_else(|| Ok(Purged::default()))?;
        total.versions += p.versions;
        total.locked.extend(p.locked);
    }
    Ok(total)
}

/// Removes the files recvault keeps of recording `id` beside the spool:
/// its staged object and a compression's temp file, a verification's
/// read-back, a scrub's download (a scrub killed midway leaves it), and
/// the playback server's decoded copy (`cache`: its directory).
pub fn remove_files_beside(staging: &Path, cache: Option<&Path>, id: i64) -> Result<(), String> {
    let staged = ["obj", "tmp", "readback.tmp"].map(|ext| staging.join(format!("{id}.{ext}")));
    let mut paths: Vec<_> = staged.into_iter().collect();
    paths.extend(cache.map(|dir| file_of(dir, id)));
    // `recvault verify` downloads into staging, the daemon's scrub into staging/scrub.
    let scrubbed = format!(".verify-{id}-");
    for dir in [staging.to_path_buf(), staging.join("scrub")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        paths.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&scrubbed))
                .map(|e| e.path()),
        );
    }
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot delete {}: {e}", path.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ledger::CompressedFacts;
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::recording::State;
    use crate::store::{LocalStore, PutRequest};

    async fn put(store: &LocalStore, dir: &Path, key: &str, metadata: &[(&str, &str)]) {
        let source = dir.join("object");
        std::fs::write(&source, key).unwrap();
        let sha = crate::digest::sha256(key.as_bytes());
        let metadata: BTreeMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = PutRequest {
            key,
            source: crate::store::Body::File(&source),
            size: key.len() as u64,
            sha256: sha,
            metadata: &metadata,
            content_type: "application/zstd",
        };
        store.put(&req).await.unwrap();
    }

    #[tokio::test]
    async fn every_object_of_ours_goes_and_another_s_under_a_chosen_key_stays() {
        let (dir, ledger) = ledger();
        let ledger = Arc::new(ledger);
        let store = LocalStore::new(dir.path().join("store"));
        let id = insert_plain(&ledger, "/s/a.wav", State::Settled);
        let facts = |key: &str| CompressedFacts {
            sha256: hex::encode([1; 32]),
            object_key: key.into(),
            object_size: 1,
            object_sha256: hex::encode([2; 32]),
            codec: "zstd".into(),
        };
        // First upload went through, and failed its verification: a new key.
        ledger.compressed(id, &facts("k/a.wav.zst")).unwrap();
        ledger.uploaded(id, "c").unwrap();
        ledger
            .upload_again(id, Some("k/a.wav~1.zst"), "verification failed")
            .unwrap();
        // The second key was chosen, but another host's object is there.
        let me = id.to_string();
        put(
            &store,
            dir.path(),
            "k/a.wav.zst",
            &[("host", "h"), ("recording-id", &me)],
        )
        .await;
        put(
            &store,
            dir.path(),
            "k/a.wav~1.zst",
            &[("host", "other"), ("recording-id", &me)],
        )
        .await;
        let rec = ledger.recording(id).unwrap();
        let purged = purge(&ledger, Some(&store), "h", &[&rec]).await.unwrap();
        assert!(matches!(purged[&id], Some(Ok(_))), "{purged:?}");
        assert_eq!(
            store.head("k/a.wav.zst").await.unwrap(),
            None,
            "ours: deleted"
        );
        assert!(
            store.head("k/a.wav~1.zst").await.unwrap().is_some(),
            "another's: kept"
        );
        let left = ledger.object_keys(&[id]).unwrap().remove(&id).unwrap();
        assert_eq!(
            left.len(),
            1,
            "the other host's key is no longer tracked as ours: {left:?}"
        );
        assert_eq!(left[0].key, "k/a.wav.zst");
        // Without a store, what was written cannot be deleted now.
        let none = purge(&ledger, None, "h", &[&rec]).await.unwrap();
        assert!(matches!(none[&id], Some(Err(_))), "{none:?}");
    }

    #[test]
    fn files_beside_the_spool_go_and_other_recordings_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, cache) = (dir.path().join("staging"), dir.path().join("cache"));
        std::fs::create_dir_all(staging.join("scrub")).unwrap();
        std::fs::create_dir_all(&cache).unwrap();
        let mine = [
            staging.join("7.obj"),
            staging.join("7.tmp"),
            staging.join("7.readback.tmp"),
            staging.join(".verify-7-123.tmp"),
            staging.join("scrub/.verify-7-456.tmp"),
            file_of(&cache, 7),
        ];
        let others = [
            staging.join("70.obj"),
            staging.join(".verify-70-1.tmp"),
            file_of(&cache, 70),
        ];
        for f in mine.iter().chain(&others) {
            std::fs::write(f, b"audio").unwrap();
        }
        remove_files_beside(&staging, Some(&cache), 7).unwrap();
        assert!(mine.iter().all(|f| !f.exists()));
        assert!(others.iter().all(|f| f.exists()));
    }
}
