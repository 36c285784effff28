//! The fleet's retention policy (`recvault_policy`, one row): the rules
//! every box follows, over its own sweep schedule. The first `fleet init`
//! takes them from that box's `[retention]`; `recvault retention set` and
//! `unset` change them (previewed first), each change a new version.

use sqlx::Row as _;

use super::Fleet;
use crate::catalog::Rules;
use crate::vicidial::db::DbError;

/// The policy as the fleet keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetPolicy {
    pub rules: Rules,
    pub version: i64,
    pub set_by: String,
    pub set_at: i64,
}

impl Fleet {
    /// The fleet's policy; `None` before any was set.
    pub async fn policy(&self) -> Result<Option<FleetPolicy>, DbError> {
        let row = self
            .run("reading the fleet's retention policy", |c| {
                Box::pin(async move {
                    sqlx::query(
                        "SELECT rules, version, set_by, set_at FROM recvault_policy WHERE id = 1",
                    )
                    .fetch_optional(&mut *c)
                    .await
                })
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let read = || -> Result<FleetPolicy, sqlx::Error> {
            let rules: String = row.try_get(0)?;
            Ok(FleetPolicy {
                rules: serde_json::from_str(&rules).map_err(|e| {
                    sqlx::Error::Protocol(format!("recvault_policy.rules is not a policy: {e}"))
                })?,
                version: row.try_get(1)?,
                set_by: row.try_get(2)?,
                set_at: row.try_get(3)?,
            })
        };
        read()
            .map(Some)
            .map_err(|e| self.db.error("reading the fleet's retention policy", e))
    }

    /// Sets the policy to `rules` if it is still at `expected` version
    /// (`None`: no policy yet). `Ok(false)`: someone changed it meanwhile.
    pub async fn set_policy(
        &self,
        rules: &Rules,
        expected: Option<i64>,
        by: &str,
        now: i64,
    ) -> Result<bool, DbError> {
        let json = serde_json::to_string(rules).expect("rules serialize");
        let by = by.to_string();
        self.run("changing the fleet's retention policy", move |c| {
            Box::pin(async move {
                let done = match expected {
                    None => sqlx::query(
                        "INSERT IGNORE INTO recvault_policy (id, version, rules, set_by, set_at) \
                             VALUES (1, 1, ?, ?, ?)",
                    )
                    .bind(json)
                    .bind(by)
                    .bind(now)
                    .execute(&mut *c)
                    .await?,
                    Some(v) => sqlx::query(
                        "UPDATE recvault_policy SET version = version + 1, rules = ?, set_by = ?, \
                             set_at = ? WHERE id = 1 AND version = ?",
                    )
                    .bind(json)
                    .bind(by)
                    .bind(now)
                    .bind(v)
                    .execute(&mut *c)
                    .await?,
                };
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }
}

const DAY: i64 = 86_400;

/// One day's recordings of one box and campaign, as the preview counts them.
struct DayGroup {
    host: String,
    campaign: Option<String>,
    day: i64,
    recordings: u64,
    bytes: u64,
    held: u64,
}

fn keep_secs(rules: &Rules, campaign: Option<&str>) -> Option<i64> {
    campaign
        .and_then(|c| rules.campaigns.get(c))
        .unwrap_or(&rules.default)
        .secs()
}

/// Adds `g`, due at `at`, to the row of its (box, campaign, due day).
fn add(
    rows: &mut std::collections::BTreeMap<
        (String, Option<String>, Option<i64>),
        crate::catalog::ImpactRow,
    >,
    g: &DayGroup,
    at: i64,
    now: i64,
) {
    let due = (at > now).then(|| at - at.rem_euclid(DAY));
    let row = rows
        .entry((g.host.clone(), g.campaign.clone(), due))
        .or_insert_with(|| crate::catalog::ImpactRow {
            host: g.host.clone(),
            campaign: g.campaign.clone(),
            due,
            ..Default::default()
        });
    row.recordings += g.recordings;
    row.bytes += g.bytes;
    row.held += g.held;
}

impl Fleet {
    /// What changing the fleet's rules from `before` to `after` would do to
    /// every box's recordings over the next year: deleted sooner (or at
    /// all), and spared, by box, campaign and day. Changes nothing.
    pub async fn retention_impact(
        &self,
        before: &Rules,
        after: &Rules,
        now: i64,
    ) -> Result<crate::catalog::RetentionImpact, DbError> {
        let groups = self
            .run("previewing a retention change across the fleet", |c| {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT r.host, r.campaign, r.time - MOD(r.time, {DAY}) AS day, COUNT(*), \
                         CAST(COALESCE(SUM(r.size), 0) AS SIGNED), CAST(COALESCE(SUM({}), 0) AS SIGNED) FROM recvault_recordings r \
                         WHERE r.state NOT IN ('remote_deleted', 'gone') AND r.erase_request IS NULL \
                         GROUP BY r.host, r.campaign, day",
                        super::select::held()
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut *c)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(DayGroup {
                                host: r.try_get(0)?,
                                campaign: r.try_get(1)?,
                                day: r.try_get(2)?,
                                recordings: r.try_get::<i64, _>(3)? as u64,
                                bytes: r.try_get::<i64, _>(4)? as u64,
                                held: r.try_get::<i64, _>(5)? as u64,
                            })
                        })
                        .collect::<Result<Vec<_>, sqlx::Error>>()
                })
            })
            .await?;
        let horizon = now + crate::catalog::local::HORIZON;
        let (mut sooner, mut spared) = (Default::default(), Default::default());
        for g in &groups {
            let b = keep_secs(before, g.campaign.as_deref()).map(|s| g.day + s);
            let a = keep_secs(after, g.campaign.as_deref()).map(|s| g.day + s);
            match (b, a) {
                (b, Some(a)) if a <= horizon && b.is_none_or(|b| a < b) => {
                    add(&mut sooner, g, a, now)
                }
                (Some(b), a) if b <= horizon && a.is_none_or(|a| a > b) => {
                    add(&mut spared, g, b, now)
                }
                _ => {}
            }
        }
        Ok(crate::catalog::RetentionImpact {
            before: before.summary(),
            after: after.summary(),
            sooner: sooner.into_values().collect(),
            spared: spared.into_values().collect(),
            horizon,
        })
    }
}
