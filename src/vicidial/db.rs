//! The client for VICIdial's MariaDB/MySQL database: a small lazy pool,
//! prepared statements (sqlx caches one per statement text and connection),
//! and a deadline on every call, so a dead or slow database costs the caller
//! at most the configured timeouts and an error it can retry later.
//!
//! The queries themselves live beside their concern: [`super::attribution`],
//! [`super::archive`], [`super::location`], [`super::deletion_queue`],
//! [`super::users`], [`super::servers`], [`super::recording_access`].
//! Everything is read-only except the location rewrite, the deletion-queue
//! mark, login attempts in `vicidial_users` (as VICIdial's login counts
//! them) and listens in `vicidial_recording_access_log`.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::Executor;
use sqlx::mysql::{
    MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlSslMode,
};

use super::archive::ArchiveTables;
use super::settings::{DbSettings, Secret};

/// Where MariaDB and MySQL put their socket on Debian, RHEL and openSUSE (ViciBox).
const SOCKETS: [&str; 4] = [
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/var/lib/mysql/mysql.sock",
    "/run/mysql/mysql.sock",
];

/// A pooled connection idle longer than this is pinged before use.
const IDLE_PING: Duration = Duration::from_secs(5);

/// Pool size and deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbOptions {
    /// Connections at most (1–4; VICIdial's database serves the dialer first).
    pub pool_size: u32,
    /// How long to wait for a connection (connect + login, or a free pooled one).
    pub connect_timeout: Duration,
    /// How long one call may take once connected; plus a second, also the
    /// server-side `lock_wait_timeout` and, on MariaDB, `max_statement_time`.
    pub query_timeout: Duration,
}

impl DbOptions {
    /// The pool and deadlines `[vicidial]` configures.
    pub fn from_config(config: &crate::config::VicidialConfig) -> DbOptions {
        DbOptions {
            pool_size: config.pool_size,
            connect_timeout: config.connect_timeout,
            query_timeout: config.query_timeout,
        }
    }
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            pool_size: 2,
            connect_timeout: Duration::from_secs(3),
            query_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Down, unreachable, slow, busy or restarting: try later.
    Retryable,
    /// Wrong credentials, a missing table or column, a value of an unexpected
    /// type: an operator has to act.
    Permanent,
}

/// A database call that failed. Names the database (`user@host:port/db`) and
/// what recvault was doing; never holds the password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{label} {target}: {action}: {detail}")]
pub struct DbError {
    kind: ErrorKind,
    label: &'static str,
    target: String,
    action: &'static str,
    detail: String,
}

impl DbError {
    /// Retryable or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when trying again later can help.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }

    /// What recvault was doing (`"attributing recordings"`, …).
    pub fn action(&self) -> &'static str {
        self.action
    }
}

impl From<DbError> for crate::error::Error {
    fn from(e: DbError) -> crate::error::Error {
        crate::error::Error::Database {
            retryable: e.is_retryable(),
            message: e.to_string(),
        }
    }
}

/// A boxed future borrowing one connection, as the query closures return.
pub(crate) type ConnFuture<'c, T> =
    Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// VICIdial's database, as seen from one server (`server_ip`).
pub struct VicidialDb {
    pool: MySqlPool,
    /// What errors call it (`VICIdial database`, `fleet database`).
    label: &'static str,
    target: String,
    password: Secret,
    server_ip: String,
    options: DbOptions,
    /// Which archive tables exist, and when that was asked (`archive`).
    archives: Mutex<Option<(Instant, ArchiveTables)>>,
}

impl fmt::Debug for VicidialDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VicidialDb")
            .field("target", &self.target)
            .field("server_ip", &self.server_ip)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl VicidialDb {
    /// Sets up the pool without connecting: a database that is down now
    /// costs nothing until the first call, which then fails retryably.
    /// Must be called inside a tokio runtime.
    pub fn new(settings: &DbSettings, options: DbOptions) -> VicidialDb {
        let options = DbOptions {
            pool_size: options.pool_size.clamp(1, 4),
            ..options
        };
        let pool = MySqlPoolOptions::new()
            .max_connections(options.pool_size)
            .min_connections(0)
            .acquire_timeout(options.connect_timeout)
            .idle_timeout(Some(Duration::from_secs(60)))
            .max_lifetime(Some(Duration::from_secs(30 * 60)))
            // sqlx pings every connection it takes back; ping again only one
            // that sat idle long enough for the server to have restarted.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(server_limits(options.query_timeout)))
                        .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(connect_options(settings));
        VicidialDb {
            pool,
            label: "VICIdial database",
            target: settings.to_string(),
            password: settings.password.clone(),
            server_ip: settings.server_ip.clone(),
            options,
            archives: Mutex::new(None),
        }
    }

    /// The same client, named `label` in its errors (the fleet's tables
    /// live in the same database, but an operator reads which use failed).
    pub fn named(mut self, label: &'static str) -> VicidialDb {
        self.label = label;
        self
    }

    /// The archive tables last seen (see [`VicidialDb::archive_tables`]).
    pub(crate) fn archives(&self) -> MutexGuard<'_, Option<(Instant, ArchiveTables)>> {
        self.archives.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This server's `server_ip`, as the queries filter on it.
    pub fn server_ip(&self) -> &str {
        &self.server_ip
    }

    /// `user@host:port/database`, for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// One round trip: what `/healthz` and `check` ask.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run("checking the connection", |c| {
            Box::pin(async move {
                sqlx::query("SELECT 1").execute(&mut *c).await?;
                Ok(())
            })
        })
        .await
    }

    /// The limits the server enforces on recvault's sessions:
    /// `lock_wait_timeout` in seconds and, on MariaDB, `max_statement_time`
    /// (what `recvault check` can show).
    pub async fn session_limits(&self) -> Result<(u64, Option<f64>), DbError> {
        self.run("reading session limits", |c| {
            Box::pin(async move {
                let lock: (u64,) = sqlx::query_as("SELECT @@SESSION.lock_wait_timeout")
                    .fetch_one(&mut *c)
                    .await?;
                // MySQL has no max_statement_time: the query fails there.
                let statement: Option<(f64,)> =
                    sqlx::query_as("SELECT @@SESSION.max_statement_time")
                        .fetch_one(&mut *c)
                        .await
                        .ok();
                Ok((lock.0, statement.map(|s| s.0)))
            })
        })
        .await
    }

    /// A connection of its own, outside the pool: what a named lock
    /// (`GET_LOCK`) lives on, released by the server when it closes.
    pub async fn dedicated(&self, action: &'static str) -> Result<MySqlConnection, DbError> {
        use sqlx::ConnectOptions as _;
        let options = self.pool.connect_options();
        match tokio::time::timeout(self.options.connect_timeout, options.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.error(action, e)),
            Err(_) => Err(self.unreachable(action)),
        }
    }

    /// How long one call may take (for calls on a dedicated connection).
    pub fn query_timeout(&self) -> Duration {
        self.options.query_timeout
    }

    /// Closes every pooled connection (on shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `query` on a pooled connection under the two deadlines. A call
    /// that outlives `query_timeout` loses its connection (closed, never
    /// reused mid-result); the server ends the statement through
    /// `max_statement_time`/`lock_wait_timeout`.
    pub(crate) async fn run<T, F>(&self, action: &'static str, query: F) -> Result<T, DbError>
    where
        F: for<'c> FnOnce(&'c mut MySqlConnection) -> ConnFuture<'c, T>,
    {
        // sqlx's acquire_timeout bounds this too; the outer deadline also
        // covers a pool that is waiting on the server's handshake.
        let acquire = tokio::time::timeout(
            self.options.connect_timeout + Duration::from_millis(250),
            self.pool.acquire(),
        );
        let mut conn = match acquire.await {
            Ok(Ok(conn)) => conn,
            Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
                return Err(self.unreachable(action));
            }
            Ok(Err(e)) => return Err(self.error(action, e)),
        };
        match tokio::time::timeout(self.options.query_timeout, query(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(action, e)),
            Err(_) => {
                // The connection is mid-result: drop it instead of reading on.
                let raw = conn.detach();
                tokio::spawn(async move {
                    let _ = sqlx::Connection::close_hard(raw).await;
                });
                Err(self.failure(
                    ErrorKind::Retryable,
                    action,
                    format!("no answer within {:?}", self.options.query_timeout),
                ))
            }
        }
    }

    fn unreachable(&self, action: &'static str) -> DbError {
        let detail = format!(
            "no connection within {:?} (server down, unreachable, or every pooled connection busy)",
            self.options.connect_timeout
        );
        self.failure(ErrorKind::Retryable, action, detail)
    }

    /// Classifies a driver error and scrubs the password out of its text.
    pub(crate) fn error(&self, action: &'static str, e: sqlx::Error) -> DbError {
        let kind = classify(&e);
        self.failure(kind, action, e.to_string())
    }

    pub(crate) fn failure(&self, kind: ErrorKind, action: &'static str, detail: String) -> DbError {
        let secret = self.password.expose();
        // Drivers do not echo passwords; this makes sure of it.
        let detail = if secret.len() >= 3 {
            detail.replace(secret, "<redacted>")
        } else {
            detail
        };
        DbError {
            kind,
            label: self.label,
            target: self.target.clone(),
            action,
            detail,
        }
    }
}

fn connect_options(settings: &DbSettings) -> MySqlConnectOptions {
    let mut options = MySqlConnectOptions::new()
        .username(&settings.user)
        .database(&settings.database)
        // TLS is not compiled in; VICIdial's own clients connect in the clear.
        .ssl_mode(MySqlSslMode::Disabled)
        // Keep the server's time zone: VICIdial writes local times with NOW().
        .timezone(None)
        .pipes_as_concat(false)
        .no_engine_substitution(false);
    // An empty VARDB_pass means no password, not an empty one sent.
    if !settings.password.expose().is_empty() {
        options = options.password(settings.password.expose());
    }
    // DBD::mysql, like libmysqlclient, takes `localhost` to mean the socket.
    let socket = (settings.host == "localhost")
        .then(|| SOCKETS.iter().map(Path::new).find(|p| p.exists()))
        .flatten();
    options = match socket {
        Some(path) => options.socket(path),
        None => options.host(&settings.host).port(settings.port),
    };
    options
}

/// Server-side limits for each new connection: a second past the client's
/// deadline, so they end what the client abandoned without racing it. MySQL
/// ignores the `/*M!` comment (max_statement_time is MariaDB's); both know
/// lock_wait_timeout, which bounds waits on MyISAM table locks.
fn server_limits(timeout: Duration) -> String {
    let secs = timeout.as_secs_f64().max(1.0) + 1.0;
    format!(
        "SET SESSION lock_wait_timeout = {} /*M!100108 , SESSION max_statement_time = {secs:.3} */",
        secs.ceil() as u64
    )
}

/// MySQL/MariaDB error numbers that mean "busy, restarting or slow".
const RETRYABLE_NUMBERS: [u16; 14] = [
    1040, // too many connections
    1053, // server shutdown in progress
    1152, 1153, 1158, 1159, 1160, 1161, // aborted connection, network read/write
    1203, // max_user_connections
    1205, // lock wait timeout
    1213, // deadlock
    1317, // query interrupted
    1927, // connection was killed
    1969, // max_statement_time exceeded (MariaDB)
];

fn classify(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => ErrorKind::Retryable,
        sqlx::Error::Database(db) => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|m| m.number());
            match number {
                // 3024: MySQL's max_execution_time exceeded.
                Some(n) if RETRYABLE_NUMBERS.contains(&n) || n == 3024 => ErrorKind::Retryable,
                _ => ErrorKind::Permanent,
            }
        }
        _ => ErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_limits_statement() {
        assert_eq!(
            server_limits(Duration::from_millis(2500)),
            "SET SESSION lock_wait_timeout = 4 /*M!100108 , SESSION max_statement_time = 3.500 */"
        );
        assert!(server_limits(Duration::from_millis(10)).contains("lock_wait_timeout = 2 "));
    }

    #[test]
    fn io_errors_are_retryable_decode_errors_permanent() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&io), ErrorKind::Retryable);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), ErrorKind::Retryable);
        assert_eq!(classify(&sqlx::Error::RowNotFound), ErrorKind::Permanent);
    }
}
