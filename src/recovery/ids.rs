//! Recording ids reserved in the store, so that an id handed out by a
//! ledger that is then lost is never handed out again — even one no object
//! and no backup names (a recording taken in, linked to, never uploaded,
//! when the disk died). Before the ledger's ids run within half a block of
//! what the store records, the next block is recorded there: an object
//! `{prefix}.recvault/ids/{host}/{upto}` says every id below `upto` may have
//! been handed out. A restore or rebuild starts above the highest such
//! mark, and above it by one more block for ids handed out while the store
//! could not be written (an id can only come back if more than 1.5 blocks
//! of recordings were taken in during one store outage, and the disk then
//! died before the store came back).

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::ledger::Ledger;
use crate::store::{self, Store, StoreError};

/// Ids reserved at a time; also the margin a restore adds.
pub const BLOCK: i64 = 100_000;

/// Reservation marks kept in the store (older ones are deleted).
const KEEP: usize = 3;

/// How often the daemon looks whether a new block is needed.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The store prefix holding a host's id reservations.
pub fn prefix(store_prefix: &str, host: &str) -> String {
    format!("{store_prefix}.recvault/ids/{host}/")
}

/// The highest id reservation of `host` in the store (every id below it
/// may have been handed out); `None` if there is none.
pub async fn highest_mark(
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
) -> Result<Option<i64>, StoreError> {
    let dir = prefix(store_prefix, host);
    Ok(store
        .list(&dir)
        .await?
        .iter()
        .filter_map(|o| o.key.strip_prefix(&dir)?.parse::<i64>().ok())
        .max())
}

/// Where a restored or rebuilt ledger's ids must start: above the store's
/// highest reservation and every id in `known` (the next id of the backup,
/// the objects, a ledger being replaced), plus one [`BLOCK`] for ids handed
/// out while the store could not be written.
pub async fn floor(
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
    known: impl IntoIterator<Item = Option<i64>>,
) -> Result<i64, StoreError> {
    let mark = highest_mark(store, store_prefix, host).await?;
    let highest = known.into_iter().chain([mark]).flatten().max().unwrap_or(1);
    Ok(highest.max(1) + BLOCK)
}

/// Records the next block in the store if the ledger's ids are within half
/// a block of the reservation; returns the new mark, if one was written.
pub async fn reserve_if_due(
    ledger: &Arc<Ledger>,
    store: &dyn Store,
    store_prefix: &str,
    host: &str,
) -> Result<Option<i64>, Error> {
    let marks = ledger.call(|l| l.id_marks()).await?;
    if marks.next + BLOCK / 2 <= marks.reserved {
        return Ok(None);
    }
    let upto = marks.next + BLOCK;
    let dir = prefix(store_prefix, host);
    // Zero-padded, so the marks also sort as text.
    let key = format!("{dir}{upto:019}");
    let text = format!("recording ids below {upto} may have been handed out by {host}\n");
    // The older marks are listed while the new one is stored: one round
    // trip fewer. Marks are only ever added by this host, so the listing
    // misses nothing but the new mark, which is never deleted.
    let (put, listed) = tokio::join!(
        store::put_text(store, &key, &text, "text/plain"),
        store.list(&dir)
    );
    // Already there (a run that died before recording it): as good.
    put?;
    ledger.call(move |l| l.ids_reserved(upto)).await?;
    let mut old: Vec<String> = listed?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| *k != key)
        .collect();
    old.sort();
    old.reverse();
    let old: Vec<String> = old.into_iter().skip(KEEP - 1).collect();
    if old.is_empty() {
        // (A purge of nothing would still ask whether the bucket keeps versions.)
        return Ok(Some(upto));
    }
    for (k, result) in store.delete_all_versions(&old).await? {
        if let Err(e) = result {
            tracing::debug!(key = %k, "an old id reservation stays: {e}");
        }
    }
    Ok(Some(upto))
}

/// The daemon's chore: keeps the reservation ahead of the ledger's ids,
/// looking every [`CHECK_EVERY`]. Failures are logged (at most once an
/// hour while they last) and retried.
pub async fn keep_reserving(
    ledger: Arc<Ledger>,
    store: Arc<dyn Store>,
    store_prefix: String,
    host: String,
) {
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        match reserve_if_due(&ledger, &*store, &store_prefix, &host).await {
            Ok(Some(upto)) => tracing::debug!(upto, "recording ids reserved in the store"),
            Ok(None) => {}
            Err(e) => {
                let quiet = failing_since.is_some_and(|t| t.elapsed() < Duration::from_secs(3600));
                if !quiet {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(
                        "cannot reserve recording ids in the store (retried every minute; a lost ledger could hand out recent ids again until it works): {e}"
                    );
                }
                tokio::time::sleep(CHECK_EVERY).await;
                continue;
            }
        }
        failing_since = None;
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ledger::fixtures::{insert_plain, ledger};
    use crate::recording::State;
    use crate::store::LocalStore;

    #[tokio::test]
    async fn blocks_are_reserved_ahead_of_the_ids_and_the_highest_mark_is_found() {
        let (dir, ledger) = ledger();
        let ledger = Arc::new(ledger);
        let store = LocalStore::new(dir.path().join("store"));
        assert_eq!(highest_mark(&store, "p/", "h").await.unwrap(), None);
        let first = reserve_if_due(&ledger, &store, "p/", "h").await.unwrap();
        assert_eq!(first, Some(1 + BLOCK));
        // Far from the mark: nothing to do.
        insert_plain(&ledger, "/s/a.wav", State::Seen);
        let again = reserve_if_due(&ledger, &store, "p/", "h").await.unwrap();
        assert_eq!(again, None);
        // Within half a block: the next one, before the ids get there.
        ledger.raise_next_id(BLOCK / 2 + 10).unwrap();
        let next = reserve_if_due(&ledger, &store, "p/", "h").await.unwrap();
        assert_eq!(next, Some(BLOCK / 2 + 10 + BLOCK));
        assert_eq!(highest_mark(&store, "p/", "h").await.unwrap(), next);
        assert_eq!(highest_mark(&store, "p/", "other").await.unwrap(), None);
        assert_eq!(ledger.id_marks().unwrap().reserved, next.unwrap());
    }

    /// A local store that counts the purges asked of it (each asks whether
    /// the store keeps versions: a round trip on S3).
    struct Counting(LocalStore, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl Store for Counting {
        fn describe(&self) -> String {
            self.0.describe()
        }
        async fn put(
            &self,
            r: &crate::store::PutRequest<'_>,
        ) -> Result<crate::store::PutOutcome, StoreError> {
            self.0.put(r).await
        }
        async fn head(&self, k: &str) -> Result<Option<crate::store::ObjectInfo>, StoreError> {
            self.0.head(k).await
        }
        async fn get(&self, k: &str, d: &Path) -> Result<u64, StoreError> {
            self.0.get(k, d).await
        }
        async fn open(&self, k: &str) -> Result<Option<crate::store::ObjectReader>, StoreError> {
            self.0.open(k).await
        }
        async fn delete(&self, k: &str) -> Result<(), StoreError> {
            self.0.delete(k).await
        }
        async fn list(&self, p: &str) -> Result<Vec<crate::store::ListedObject>, StoreError> {
            self.0.list(p).await
        }
        async fn versioning(&self) -> Result<crate::store::Versioning, StoreError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.versioning().await
        }
    }

    #[tokio::test]
    async fn only_the_marks_beyond_the_kept_ones_are_deleted_and_nothing_else_is_asked() {
        let (dir, ledger) = ledger();
        let ledger = Arc::new(ledger);
        let store = Counting(LocalStore::new(dir.path().join("store")), 0.into());
        let purges = || store.1.load(std::sync::atomic::Ordering::Relaxed);
        let mut marks = Vec::new();
        for round in 0..KEEP as i64 + 1 {
            ledger.raise_next_id(1 + round * BLOCK).unwrap();
            let mark = reserve_if_due(&ledger, &store, "p/", "h").await.unwrap();
            marks.push(mark.unwrap());
            // Up to KEEP marks nothing is deleted, and no purge is asked for.
            let want = usize::from(marks.len() > KEEP);
            assert_eq!(purges(), want, "after {} marks", marks.len());
        }
        let kept: Vec<String> = store
            .list(&prefix("p/", "h"))
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        let want: Vec<String> = marks[1..]
            .iter()
            .map(|m| format!("{}{m:019}", prefix("p/", "h")))
            .collect();
        assert_eq!(kept, want, "the oldest mark went, the newest {KEEP} stay");
    }
}
