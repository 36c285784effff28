//! The boxes of a fleet: each one's name (`[daemon] host`, unique: a live
//! box with another identity keeps it), its heartbeat, what it last said
//! about itself (an overview, as JSON), and `recvault fleet forget`.

use sqlx::Row as _;

use super::Fleet;
use crate::catalog::BoxOverview;
use crate::vicidial::db::DbError;

/// Why a box may not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Another live box uses this name.
    #[error(
        "[daemon] host `{host}` is already used by another live box of the fleet (last heartbeat \
         {ago}s ago, recvault {version}); give this box a unique [daemon] host, or if that box is \
         gone for good, wait {timeout}s or run `recvault fleet forget {host}` first"
    )]
    Taken {
        host: String,
        ago: i64,
        version: String,
        timeout: u64,
    },
    /// `recvault fleet init` has not created (or migrated) the tables.
    #[error(
        "the fleet database {target} has recvault's tables at version {found}, this recvault needs \
         {needed}: run `recvault fleet init` (it prints the SQL and GRANTs first)"
    )]
    Schema {
        target: String,
        found: i64,
        needed: i64,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl JoinError {
    /// True when trying again later can help (the database did not answer).
    pub fn is_retryable(&self) -> bool {
        matches!(self, JoinError::Db(e) if e.is_retryable())
    }
}

/// One box as the fleet's database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRow {
    pub host: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub backlog: i64,
    pub outbox: i64,
    pub last_error: Option<String>,
    pub overview: Option<BoxOverview>,
    pub forgotten_at: Option<i64>,
    pub forgotten_by: Option<String>,
}

/// What this box writes with each heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Beat {
    /// Recordings not yet archived.
    pub backlog: u64,
    /// Changes not yet published to the catalog.
    pub outbox: u64,
    pub last_error: Option<String>,
    /// Its overview, when a new one was made (every few heartbeats).
    pub overview: Option<BoxOverview>,
}

impl Fleet {
    /// Takes this box's name in the fleet (refused if a live box with
    /// another identity has it) and writes its first heartbeat.
    pub async fn join(&self, now: i64) -> Result<(), JoinError> {
        let needed = super::schema::migrations().len() as i64;
        let found = self.schema_version().await?;
        if found < needed {
            return Err(JoinError::Schema {
                target: self.target().to_string(),
                found,
                needed,
            });
        }
        let (host, identity) = (self.host.clone(), self.identity.clone());
        let alive_since = self.alive_since(now);
        let taken = self
            .run("joining the fleet", move |c| {
                Box::pin(async move {
                    let mut tx = sqlx::Connection::begin(&mut *c).await?;
                    let row = sqlx::query(
                        "SELECT identity, heartbeat_at, version, forgotten_at FROM recvault_boxes \
                         WHERE host = ? FOR UPDATE",
                    )
                    .bind(&host)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = row {
                        let other: String = row.try_get(0)?;
                        let beat: i64 = row.try_get(1)?;
                        let forgotten: Option<i64> = row.try_get(3)?;
                        if other != identity && beat >= alive_since && forgotten.is_none() {
                            let version: String = row.try_get(2)?;
                            return Ok(Some((now - beat, version)));
                        }
                    }
                    sqlx::query(
                        "INSERT INTO recvault_boxes (host, identity, version, started_at, heartbeat_at) \
                         VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE identity = VALUES(identity), \
                         version = VALUES(version), started_at = VALUES(started_at), \
                         heartbeat_at = VALUES(heartbeat_at), forgotten_at = NULL, forgotten_by = NULL",
                    )
                    .bind(&host)
                    .bind(&identity)
                    .bind(env!("CARGO_PKG_VERSION"))
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(None)
                })
            })
            .await?;
        match taken {
            None => Ok(()),
            Some((ago, version)) => Err(JoinError::Taken {
                host: self.host.clone(),
                ago,
                version,
                timeout: self.config.host_timeout.as_secs(),
            }),
        }
    }

    /// Writes this box's heartbeat. `Ok(false)`: the row is no longer this
    /// box's (another box took the name after this one went silent, or it
    /// was forgotten): the caller joins again.
    pub async fn heartbeat(&self, now: i64, beat: &Beat) -> Result<bool, DbError> {
        let (host, identity) = (self.host.clone(), self.identity.clone());
        let overview = beat
            .overview
            .as_ref()
            .and_then(|o| serde_json::to_string(o).ok());
        let beat = beat.clone();
        self.run("writing this box's heartbeat", move |c| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE recvault_boxes SET heartbeat_at = ?, backlog = ?, outbox = ?, \
                     last_error = ?, overview = COALESCE(?, overview) \
                     WHERE host = ? AND identity = ? AND forgotten_at IS NULL",
                )
                .bind(now)
                .bind(beat.backlog as i64)
                .bind(beat.outbox as i64)
                .bind(beat.last_error)
                .bind(overview)
                .bind(host)
                .bind(identity)
                .execute(&mut *c)
                .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }

    /// Every box the fleet has heard of, by name.
    pub async fn boxes(&self) -> Result<Vec<BoxRow>, DbError> {
        let rows = self
            .run("reading the fleet's boxes", |c| {
                Box::pin(async move {
                    sqlx::query(
                        "SELECT host, version, started_at, heartbeat_at, backlog, outbox, last_error, \
                         overview, forgotten_at, forgotten_by FROM recvault_boxes ORDER BY host",
                    )
                    .fetch_all(&mut *c)
                    .await
                })
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let parse = || -> Result<BoxRow, sqlx::Error> {
                let overview: Option<String> = row.try_get(7)?;
                Ok(BoxRow {
                    host: row.try_get(0)?,
                    version: row.try_get(1)?,
                    started_at: row.try_get(2)?,
                    heartbeat_at: row.try_get(3)?,
                    backlog: row.try_get(4)?,
                    outbox: row.try_get(5)?,
                    last_error: row.try_get(6)?,
                    overview: overview.and_then(|o| serde_json::from_str(&o).ok()),
                    forgotten_at: row.try_get(8)?,
                    forgotten_by: row.try_get(9)?,
                })
            };
            out.push(parse().map_err(|e| self.db.error("reading the fleet's boxes", e))?);
        }
        Ok(out)
    }

    /// `recvault fleet forget HOST`: the operator says the box is wiped.
    /// Its recordings stay in the catalog, governed by the leader. `false`:
    /// no such box.
    pub async fn forget(&self, host: &str, by: &str, now: i64) -> Result<bool, DbError> {
        let (host, by) = (host.to_string(), by.to_string());
        self.run("forgetting a box", move |c| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE recvault_boxes SET forgotten_at = ?, forgotten_by = ? WHERE host = ?",
                )
                .bind(now)
                .bind(by)
                .bind(host)
                .execute(&mut *c)
                .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }
}
