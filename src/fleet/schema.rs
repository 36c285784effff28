//! recvault's own tables in the fleet's MariaDB, all `recvault_*`, InnoDB:
//! the migrations `recvault fleet init` prints and applies (counted in
//! `recvault_schema`, each statement idempotent, so an init cut short is
//! simply run again), and the GRANTs the daemon needs afterwards.

/// Each table in one place, so the GRANTs name exactly these.
pub const TABLES: [&str; 11] = [
    "recvault_schema",
    "recvault_boxes",
    "recvault_recordings",
    "recvault_holds",
    "recvault_hold_selectors",
    "recvault_gate",
    "recvault_deletions",
    "recvault_policy",
    "recvault_erasures",
    "recvault_erasure_items",
    "recvault_governed",
];

const OPTIONS: &str = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// The table counting migrations; created before anything is read.
pub fn schema_table() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS recvault_schema (\n  version INT NOT NULL PRIMARY KEY,\n  \
         applied_at BIGINT NOT NULL,\n  applied_by VARCHAR(255) NOT NULL\n) {OPTIONS}"
    )
}

/// The migrations in order: migration `i` (from 1) is `MIGRATIONS[i - 1]`,
/// a list of statements.
pub fn migrations() -> Vec<Vec<String>> {
    vec![first(), erasures(), governed()]
}

/// What the leader deleted of a box that was silent (or forgotten): the
/// box reads its rows when it is heard from again, brings its ledger to
/// agree and removes them; until then its sweep and its publishing leave
/// those recordings alone.
fn governed() -> Vec<String> {
    vec![format!(
        "CREATE TABLE IF NOT EXISTS recvault_governed (
  host VARCHAR(255) NOT NULL,
  id BIGINT NOT NULL,
  what VARCHAR(16) NOT NULL,
  request VARCHAR(255) NULL,
  deleted_by VARCHAR(255) NOT NULL,
  deleted_at BIGINT NOT NULL,
  PRIMARY KEY (host, id)
) {OPTIONS}"
    )]
}

/// Erasure across boxes: a request, and each recording it covers on each
/// box, done when that box has erased it (or was forgotten).
fn erasures() -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS recvault_erasures (
  request VARCHAR(255) NOT NULL PRIMARY KEY,
  selectors TEXT NOT NULL,
  requested_by VARCHAR(255) NOT NULL,
  requested_at BIGINT NOT NULL,
  completed_at BIGINT NULL
) {OPTIONS}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS recvault_erasure_items (
  request VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  id BIGINT NOT NULL,
  name VARCHAR(1024) NOT NULL,
  erased_at BIGINT NULL,
  PRIMARY KEY (request, host, id),
  KEY recvault_erasure_items_host (host, erased_at)
) {OPTIONS}"
        ),
    ]
}

// One long list of DDL, each table with why it exists: splitting it would
// scatter the schema.
fn first() -> Vec<String> {
    let t = |body: &str| body.replace("{OPTIONS}", OPTIONS);
    vec![
        // Every box: who it is (a random identity kept beside its ledger,
        // so a second box with the same name is refused), its heartbeat and
        // its overview (JSON), and whether an operator forgot it.
        t("CREATE TABLE IF NOT EXISTS recvault_boxes (
  host VARCHAR(255) NOT NULL PRIMARY KEY,
  identity CHAR(32) NOT NULL,
  version VARCHAR(64) NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL,
  backlog BIGINT NOT NULL DEFAULT 0,
  outbox BIGINT NOT NULL DEFAULT 0,
  last_error TEXT NULL,
  overview MEDIUMTEXT NULL,
  forgotten_at BIGINT NULL,
  forgotten_by VARCHAR(255) NULL
) {OPTIONS}"),
        // The catalog: every recording of every box, its search columns and
        // the whole entry (JSON of `catalog::Entry`).
        t("CREATE TABLE IF NOT EXISTS recvault_recordings (
  host VARCHAR(255) NOT NULL,
  id BIGINT NOT NULL,
  name VARCHAR(1024) NOT NULL,
  state VARCHAR(32) NOT NULL,
  time BIGINT NOT NULL,
  campaign VARCHAR(255) NULL,
  agent VARCHAR(255) NULL,
  phone VARCHAR(255) NULL,
  lead_id VARCHAR(255) NULL,
  size BIGINT NOT NULL,
  object_key VARCHAR(1024) NULL,
  erase_request VARCHAR(255) NULL,
  erased_at BIGINT NULL,
  entry MEDIUMTEXT NOT NULL,
  published_at BIGINT NOT NULL,
  PRIMARY KEY (host, id),
  KEY recvault_recordings_phone (phone),
  KEY recvault_recordings_time (time),
  KEY recvault_recordings_campaign (campaign, time),
  KEY recvault_recordings_agent (agent),
  KEY recvault_recordings_lead (lead_id),
  KEY recvault_recordings_name (name(191)),
  KEY recvault_recordings_key (object_key(191))
) {OPTIONS}"),
        // Legal holds of the fleet; a box's own holds merged when it joined
        // keep their origin and ledger id (merged once).
        t("CREATE TABLE IF NOT EXISTS recvault_holds (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  case_id VARCHAR(255) NOT NULL,
  reason TEXT NOT NULL,
  created_by VARCHAR(255) NOT NULL,
  created_at BIGINT NOT NULL,
  origin VARCHAR(255) NOT NULL,
  origin_hold_id BIGINT NULL,
  released_at BIGINT NULL,
  released_by VARCHAR(255) NULL,
  release_reason TEXT NULL,
  UNIQUE KEY recvault_holds_origin (origin, origin_hold_id),
  KEY recvault_holds_case (case_id)
) {OPTIONS}"),
        t("CREATE TABLE IF NOT EXISTS recvault_hold_selectors (
  hold_id BIGINT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  value VARCHAR(1024) NULL,
  time_from BIGINT NULL,
  time_to BIGINT NULL,
  KEY recvault_hold_selectors_hold (hold_id)
) {OPTIONS}"),
        // One row every hold change and every deletion reservation locks
        // (FOR UPDATE): whichever commits first wins, as in one ledger.
        t("CREATE TABLE IF NOT EXISTS recvault_gate (
  id TINYINT NOT NULL PRIMARY KEY,
  holds_version BIGINT NOT NULL DEFAULT 0
) {OPTIONS}"),
        "INSERT IGNORE INTO recvault_gate (id, holds_version) VALUES (1, 0)".to_string(),
        // Deletions reserved in the fleet, checked against the holds in the
        // transaction that reserved them.
        t("CREATE TABLE IF NOT EXISTS recvault_deletions (
  host VARCHAR(255) NOT NULL,
  id BIGINT NOT NULL,
  what VARCHAR(16) NOT NULL,
  reserved_at BIGINT NOT NULL,
  PRIMARY KEY (host, id)
) {OPTIONS}"),
        // The fleet's retention rules (JSON of `catalog::Rules`), one row.
        t("CREATE TABLE IF NOT EXISTS recvault_policy (
  id TINYINT NOT NULL PRIMARY KEY,
  version BIGINT NOT NULL,
  rules TEXT NOT NULL,
  set_by VARCHAR(255) NOT NULL,
  set_at BIGINT NOT NULL
) {OPTIONS}"),
    ]
}

/// The GRANTs the daemon's user needs on `database` after `fleet init`
/// (which itself needs CREATE on it): rows in recvault's tables only.
pub fn grants(database: &str, user: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|t| {
            let privileges = match *t {
                "recvault_schema" => "SELECT",
                _ => "SELECT, INSERT, UPDATE, DELETE",
            };
            format!("GRANT {privileges} ON `{database}`.`{t}` TO '{user}'@'%'")
        })
        .collect()
}

/// MariaDB's "table doesn't exist".
const NO_SUCH_TABLE: u16 = 1146;

/// True when `e` is MariaDB's "table doesn't exist".
pub(super) fn is_missing_table(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| m.number() == NO_SUCH_TABLE),
        _ => false,
    }
}

impl super::Fleet {
    /// The migrations applied (0: `fleet init` never ran here).
    pub async fn schema_version(&self) -> Result<i64, crate::vicidial::db::DbError> {
        self.run("reading recvault_schema", |c| {
            Box::pin(async move {
                let row: Result<(Option<i64>,), sqlx::Error> =
                    sqlx::query_as("SELECT MAX(version) FROM recvault_schema")
                        .fetch_one(&mut *c)
                        .await;
                match row {
                    Ok((v,)) => Ok(v.unwrap_or(0)),
                    Err(e) if is_missing_table(&e) => Ok(0),
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }

    /// Applies the migrations after `from`, in order, each recorded in
    /// `recvault_schema` once its statements ran (each is idempotent: an
    /// init cut short is run again). Serialized by a named lock.
    pub async fn migrate(&self, by: &str, now: i64) -> Result<i64, crate::vicidial::db::DbError> {
        let by = by.to_string();
        self.run("applying recvault's table migrations", move |c| {
            Box::pin(async move {
                let (got,): (Option<i64>,) =
                    sqlx::query_as("SELECT GET_LOCK('recvault_fleet_init', 3)")
                        .fetch_one(&mut *c)
                        .await?;
                if got != Some(1) {
                    return Err(sqlx::Error::Protocol(
                        "another `recvault fleet init` holds the init lock".into(),
                    ));
                }
                let result = apply(c, &by, now).await;
                sqlx::query("SELECT RELEASE_LOCK('recvault_fleet_init')")
                    .execute(&mut *c)
                    .await?;
                result
            })
        })
        .await
    }
}

async fn apply(c: &mut sqlx::MySqlConnection, by: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(schema_table()))
        .execute(&mut *c)
        .await?;
    let (done,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM recvault_schema")
        .fetch_one(&mut *c)
        .await?;
    let done = done.unwrap_or(0);
    let all = migrations();
    for (i, statements) in all.iter().enumerate().skip(done as usize) {
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&mut *c)
                .await?;
        }
        sqlx::query(
            "INSERT INTO recvault_schema (version, applied_at, applied_by) VALUES (?, ?, ?)",
        )
        .bind(i as i64 + 1)
        .bind(now)
        .bind(by)
        .execute(&mut *c)
        .await?;
    }
    Ok(all.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_created_and_granted() {
        let sql = std::iter::once(schema_table())
            .chain(migrations().concat())
            .collect::<Vec<_>>()
            .join("\n");
        for t in TABLES {
            assert!(
                sql.contains(&format!("CREATE TABLE IF NOT EXISTS {t} (")),
                "{t}"
            );
        }
        assert!(!sql.contains("{OPTIONS}"));
        let grants = grants("asterisk", "cron").join("\n");
        assert!(grants.contains("GRANT SELECT ON `asterisk`.`recvault_schema` TO 'cron'@'%'"));
        assert!(grants.contains("UPDATE, DELETE ON `asterisk`.`recvault_deletions`"));
    }
}
