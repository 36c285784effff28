//! The leader's rounds: while this box holds the fleet's leadership
//! (`leader::Leadership`), every five heartbeats — or at once after a round
//! that deleted something — it deletes what the fleet's policy makes due of
//! forgotten and silent boxes (`leader`), erases their stored objects of
//! fleet erasures (`orphan_erasure`), reads VICIdial's GDPR purge queue for
//! the whole fleet (`purges`), and copies and mirrors the fleet's holds for
//! them (`mirror`).

use std::sync::Arc;

use super::mirror::{Mirror, Scope};
use super::{Fleet, FleetGate};
use crate::catalog::Rules;
use crate::config::Config;
use crate::store::Store;
use crate::units::now_secs;

/// Takes the fleet's leadership when it is free, and while this box leads
/// governs the forgotten and silent boxes' recordings and reads VICIdial's
/// GDPR purge queue for the whole fleet, every five heartbeats.
pub(super) async fn lead_loop(fleet: Arc<Fleet>, gate: Arc<FleetGate>, config: Arc<Config>) {
    let Some(store_config) = &config.store else {
        return;
    };
    let store = match crate::store::open(store_config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("this box cannot lead the fleet (its store does not open): {e}");
            return;
        }
    };
    let mut queue = config
        .vicidial
        .as_ref()
        .filter(|vc| vc.purge_queue.is_some())
        .map(|vc| {
            let options = crate::vicidial::db::DbOptions::from_config(vc);
            super::purges::QueueReader::new(crate::vicidial::db::VicidialDb::new(&vc.db, options))
        });
    let mut orphans = Mirror::new(
        store.clone(),
        Scope::Orphans,
        store_config.object_lock_legal_hold,
    );
    orphans.copy_to = Some(store_config.prefix.clone());
    let mut leadership = super::leader::Leadership::default();
    let (mut failing, mut n, mut busy) = (false, 0u32, false);
    loop {
        // A round that deleted something goes again at once: a backlog of
        // due orphans is a few minutes of rounds, not one per pause.
        if !std::mem::take(&mut busy) {
            tokio::time::sleep(fleet.config.heartbeat * 5).await;
        }
        if !gate.joined() || !leadership.hold(&fleet).await {
            continue;
        }
        if let Some(rules) = gate.rules() {
            busy = lead_once(&fleet, &store, &rules, &mut failing).await > 0;
        }
        busy |= erase_once(&fleet, &store).await > 0;
        if let Some(queue) = queue.as_mut() {
            queue.pass(&fleet, now_secs()).await;
        }
        n = n.wrapping_add(1);
        if let Err(e) = orphans
            .round(&fleet, now_secs(), n.is_multiple_of(12))
            .await
        {
            tracing::debug!("the fleet's holds not mirrored for silent boxes this time: {e}");
        }
    }
}

/// One leader's round of erasing forgotten and silent boxes' objects.
/// Returns how many went.
async fn erase_once(fleet: &Fleet, store: &Arc<dyn Store>) -> u64 {
    match fleet.erase_orphans(store, now_secs()).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(
                    objects = n,
                    "the fleet's leader erased stored objects of forgotten or silent boxes"
                );
            }
            n
        }
        // Tried again next round; the reservations stay.
        Err(e) => {
            tracing::debug!("the fleet's leader could not erase orphans' objects this time: {e}");
            0
        }
    }
}

/// One leader's round of retention, its outcome logged once per change.
/// Returns how many recordings went.
async fn lead_once(
    fleet: &Fleet,
    store: &Arc<dyn Store>,
    rules: &Rules,
    failing: &mut bool,
) -> u64 {
    match fleet.lead_round(store, rules, now_secs()).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(
                    recordings = n,
                    "the fleet's leader deleted forgotten or silent boxes' recordings due under the fleet's policy"
                );
            }
            *failing = false;
            n
        }
        Err(e) => {
            if !*failing {
                tracing::warn!(
                    "the fleet's leader could not govern forgotten or silent boxes' recordings this time: {e}"
                );
            }
            *failing = true;
            0
        }
    }
}
