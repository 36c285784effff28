//! One box's changes: holds placed and released (then copied to the store
//! and mirrored onto Object Lock, as before the catalog), and erasures
//! previewed, confirmed and followed.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::LocalCatalog;
use super::recordings::copies_of;
use crate::catalog::{
    Actor, Aftermath, CatalogError, CopyOutcome, Coverage, Entry, ErasureConfirmation, ErasureItem,
    ErasureLine, ErasurePlan, ErasureProgress, HoldInfo, HoldPlacement, HoldRelease, Mirrored,
    NewHold, OpenHost, Selector,
};
use crate::config::Config;
use crate::error::Error;
use crate::governance::hold;
use crate::governance::requests::erase::{self, Confirmation, Plan};
use crate::ledger::Ledger;
use crate::recording::key::display_name;
use crate::recovery::hold_copy;
use crate::store::Store;
use crate::units::now_secs;

impl LocalCatalog {
    fn coverage(&self, n: u64, deleting: u64) -> Coverage {
        Coverage {
            recordings: n,
            per_host: BTreeMap::from([(self.host().to_string(), n)]),
            being_deleted: deleting,
        }
    }

    pub(super) async fn hold_list(
        &self,
        case: Option<&str>,
    ) -> Result<Vec<HoldInfo>, CatalogError> {
        let case = case.map(str::to_string);
        let holds = self
            .call(move |l| {
                let holds = match &case {
                    Some(c) => hold::of_case(l, c)?,
                    None => l.holds()?,
                };
                let mut out = Vec::new();
                for h in holds {
                    let covered = l.hold_coverage(h.id)?;
                    out.push((h, covered));
                }
                Ok(out)
            })
            .await?;
        Ok(holds
            .into_iter()
            .map(|(h, (n, d))| HoldInfo::of(h, Some(self.coverage(n, d))))
            .collect())
    }

    pub(super) async fn preview_hold(
        &self,
        selectors: &[Selector],
    ) -> Result<Coverage, CatalogError> {
        hold::check(selectors)?;
        let selectors = selectors.to_vec();
        let (n, d) = self.call(move |l| Ok(l.coverage(&selectors)?)).await?;
        Ok(self.coverage(n, d))
    }

    pub(super) async fn add_hold(
        &self,
        actor: &Actor,
        new: &NewHold,
    ) -> Result<HoldPlacement, CatalogError> {
        let (actor, h) = (actor.clone(), new.clone());
        let placed = self
            .call(move |l| hold::add(l, &actor, now_secs(), &h.case_id, &h.reason, &h.selectors))
            .await?;
        let aftermath = self.aftermath(&new.case_id).await?;
        Ok(HoldPlacement {
            id: placed.id,
            coverage: self.coverage(placed.covered, placed.being_deleted),
            aftermath,
        })
    }

    pub(super) async fn end_hold(
        &self,
        actor: &Actor,
        case: &str,
        reason: &str,
    ) -> Result<HoldRelease, CatalogError> {
        let (actor, c, r) = (actor.clone(), case.to_string(), reason.to_string());
        let released = self
            .call(move |l| hold::release(l, &actor, now_secs(), &c, &r))
            .await?;
        Ok(HoldRelease {
            released,
            aftermath: self.aftermath(case).await?,
        })
    }

    async fn aftermath(&self, case: &str) -> Result<Aftermath, CatalogError> {
        let store = match self.store().await {
            Ok(store) => store,
            Err(e) => {
                return Ok(Aftermath {
                    copied: Some(Err(e.to_string())),
                    mirror: None,
                });
            }
        };
        Ok(hold_aftermath(&self.config, &self.ledger, store.as_deref(), case).await?)
    }

    pub(super) async fn plan_erasure(
        &self,
        request: &str,
        selectors: &[Selector],
    ) -> Result<ErasurePlan, CatalogError> {
        let key = self.key_or_create()?;
        let (r, s) = (request.to_string(), selectors.to_vec());
        let plan = self.call(move |l| erase::preview(l, &key, &r, &s)).await?;
        self.plan_of(plan).await
    }

    pub(super) async fn confirm_erasure(
        &self,
        actor: &Actor,
        request: &str,
        selectors: &[Selector],
        token: Option<&str>,
    ) -> Result<ErasureConfirmation, CatalogError> {
        let key = self.key_or_create()?;
        let (a, r, s, t) = (
            actor.clone(),
            request.to_string(),
            selectors.to_vec(),
            token.map(str::to_string),
        );
        let confirmed = self
            .call(move |l| erase::confirm(l, &key, &r, &s, t.as_deref(), &a, now_secs()))
            .await?;
        Ok(match confirmed {
            Confirmation::Reserved(plan) => {
                ErasureConfirmation::Reserved(self.plan_of(plan).await?)
            }
            Confirmation::Changed(plan) => ErasureConfirmation::Changed(self.plan_of(plan).await?),
        })
    }

    async fn plan_of(&self, plan: Plan) -> Result<ErasurePlan, CatalogError> {
        let host = self.host();
        let staging = &self.config.spool.staging;
        // Every key a recording had goes too (an earlier upload): shown.
        let ids: Vec<i64> = plan.items.iter().map(|(m, _)| m.rec.id).collect();
        let keys = self.call(move |l| Ok(l.object_keys(&ids)?)).await?;
        Ok(ErasurePlan {
            items: plan
                .items
                .into_iter()
                .map(|(m, standing)| {
                    let mut copies = copies_of(host, &m.rec, staging);
                    let earlier = keys.get(&m.rec.id).into_iter().flatten();
                    let earlier = earlier.filter(|k| Some(&k.key) != m.rec.object_key.as_ref());
                    copies.extend(earlier.map(|k| crate::catalog::Copy {
                        host: host.to_string(),
                        place: crate::catalog::Place::Store { key: k.key.clone() },
                    }));
                    ErasureItem {
                        copies,
                        entry: Entry::of(host, &m.rec, m.cases),
                        standing,
                    }
                })
                .collect(),
            request: plan.request,
            selectors: plan.selectors,
            token: plan.token,
        })
    }

    pub(super) async fn erasure_state(
        &self,
        request: &str,
    ) -> Result<ErasureProgress, CatalogError> {
        let r = request.to_string();
        let recordings = self.call(move |l| Ok(l.erasure_of(&r)?)).await?;
        if recordings.is_empty() {
            return Err(CatalogError::NotFound(format!(
                "no erasure request {request} here"
            )));
        }
        let lines: Vec<ErasureLine> = recordings
            .iter()
            .filter_map(|rec| {
                let e = rec.erasure.as_ref()?;
                let why = rec.last_error.clone().unwrap_or_else(|| "under way".into());
                let outcome = match (e.erased_at, e.wait_until) {
                    (Some(at), _) => CopyOutcome::Erased { at },
                    (None, Some(until)) => CopyOutcome::Waiting { until, why },
                    (None, None) => CopyOutcome::Pending { why },
                };
                Some(ErasureLine {
                    host: self.host().to_string(),
                    id: rec.id,
                    name: display_name(&rec.name),
                    outcome,
                })
            })
            .collect();
        let left = lines
            .iter()
            .filter(|l| !matches!(l.outcome, CopyOutcome::Erased { .. }))
            .count() as u64;
        Ok(ErasureProgress {
            request: request.to_string(),
            complete: left == 0,
            open: match left {
                0 => Vec::new(),
                n => vec![OpenHost {
                    host: self.host().to_string(),
                    copies: n,
                    heartbeat: None,
                    reachable: true,
                }],
            },
            lines,
            requested_at: None,
            completed_at: None,
        })
    }
}

/// After a hold change on this box: the hold table copied to the store (so
/// holds survive a lost disk) and, with `[store] object_lock_legal_hold`,
/// the objects' legal holds set to match `case`'s. The hold stands whatever
/// these do; their outcome is reported.
pub async fn hold_aftermath(
    config: &Config,
    ledger: &Arc<Ledger>,
    store: Option<&dyn Store>,
    case: &str,
) -> Result<Aftermath, Error> {
    let (Some(store_config), Some(store)) = (config.store.as_ref(), store) else {
        return Ok(Aftermath::default());
    };
    let copied = hold_copy::publish(ledger, store, &store_config.prefix, &config.daemon.host)
        .await
        .map_err(|e| e.to_string());
    let mirror = match store_config.object_lock_legal_hold {
        false => None,
        true => {
            let r = hold::mirror(ledger, store, case).await?;
            Some(Mirrored {
                on: r.on,
                off: r.off,
                failed: r
                    .failed
                    .into_iter()
                    .map(|(k, e)| (k, e.to_string()))
                    .collect(),
            })
        }
    };
    Ok(Aftermath {
        copied: Some(copied),
        mirror,
    })
}
