//! recvault's VICIdial database client against a real MariaDB (127.0.0.1:3306,
//! root without a password; `scripts/mariadb.sh` installs and starts one).
//! Each test creates its own database from VICIdial's table definitions in
//! tests/data/vicidial/, fills rows, and drops it. Without MariaDB the tests
//! are skipped with a message, except under CI (env CI set), where they fail.

mod archived;
mod attribution;
mod daemon;
pub(crate) mod dialer;
mod failures;
mod gdpr_links;
mod listen;
mod listen_report;
mod location;
mod move_mix;
mod move_mix_crash;
mod purge;
mod queue;
mod relay;
mod repeated;
mod users;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use recvault::vicidial::db::{DbOptions, VicidialDb};
use recvault::vicidial::settings::{DbSettings, Secret};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::{Connection, Executor};

/// This box's `server_ip` in the test rows.
pub const SERVER_IP: &str = "10.0.0.5";

/// The test MariaDB: `RECVAULT_TEST_MARIADB_PORT` or 3306 on 127.0.0.1.
pub fn mariadb_port() -> u16 {
    std::env::var("RECVAULT_TEST_MARIADB_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3306)
}

fn admin_options() -> MySqlConnectOptions {
    MySqlConnectOptions::new()
        .host("127.0.0.1")
        .port(mariadb_port())
        .username("root")
        .ssl_mode(MySqlSslMode::Disabled)
}

/// Options short enough for failure tests to finish quickly.
pub fn quick_options() -> DbOptions {
    DbOptions {
        pool_size: 2,
        connect_timeout: Duration::from_secs(1),
        query_timeout: Duration::from_secs(1),
    }
}

/// A database of its own with VICIdial's tables, dropped at the end.
pub struct Fixture {
    pub name: String,
    /// Root on this database (None only while dropping).
    pub admin: Option<MySqlConnection>,
    pub db: VicidialDb,
}

/// `let Some(mut fx) = fixture!("name") else { return };`
#[macro_export]
macro_rules! vicidial_fixture {
    ($test:expr) => {
        $crate::vicidial::Fixture::new($test, $crate::vicidial::quick_options()).await
    };
}

impl Fixture {
    /// Creates the database; None (with a message) when MariaDB is not
    /// there outside CI. Under CI a missing MariaDB panics.
    pub async fn new(test: &str, options: DbOptions) -> Option<Fixture> {
        let mut admin = match MySqlConnection::connect_with(&admin_options()).await {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_some() => panic!(
                "MariaDB on 127.0.0.1:{}: {e}; scripts/mariadb.sh installs and starts it",
                mariadb_port()
            ),
            Err(e) => {
                eprintln!(
                    "SKIPPED {test}: no MariaDB on 127.0.0.1:{} ({e}); run scripts/mariadb.sh",
                    mariadb_port()
                );
                return None;
            }
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rv_{}_{}_{}",
            &test[..test.len().min(30)],
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // As VICIdial's install docs create `asterisk`.
        let create =
            format!("CREATE DATABASE `{name}` DEFAULT CHARACTER SET utf8 COLLATE utf8_unicode_ci");
        admin.execute(sqlx::AssertSqlSafe(create)).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("USE `{name}`")))
            .await
            .unwrap();
        for statement in vicidial_tables() {
            admin.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
        }
        let db = VicidialDb::new(&settings(&name, mariadb_port(), ""), options);
        Some(Fixture {
            name,
            admin: Some(admin),
            db,
        })
    }

    /// Runs SQL (inserts, locks) on the admin connection.
    pub async fn exec(&mut self, sql: &str) {
        self.admin()
            .execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One text value from the admin connection.
    pub async fn text(&mut self, sql: &str) -> Option<String> {
        let row: (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(self.admin())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.0
    }

    fn admin(&mut self) -> &mut MySqlConnection {
        self.admin.as_mut().expect("admin connection")
    }

    /// A client for this database through another port (a relay).
    pub fn client_via(&self, port: u16, options: DbOptions) -> VicidialDb {
        VicidialDb::new(&settings(&self.name, port, ""), options)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Closing the admin connection releases any LOCK TABLES a failed test
        // left behind, which DROP DATABASE would otherwise wait for.
        drop(self.admin.take());
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = MySqlConnection::connect_with(&admin_options()).await?;
                c.execute("SET SESSION lock_wait_timeout = 20").await?;
                c.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{name}`"
                )))
                .await
                .map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Connection settings for database `name` on 127.0.0.1:`port` as root.
pub fn settings(name: &str, port: u16, password: &str) -> DbSettings {
    DbSettings {
        host: "127.0.0.1".into(),
        port,
        database: name.into(),
        user: "root".into(),
        password: Secret::new(password),
        server_ip: SERVER_IP.into(),
    }
}

/// The statements of every tests/data/vicidial/*.sql file.
fn vicidial_tables() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vicidial");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut statements = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let sql: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        statements.extend(
            sql.split(";\n")
                .map(|s| s.trim().trim_end_matches(';').to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    assert!(
        statements.len() >= 9,
        "VICIdial table definitions missing in {}",
        dir.display()
    );
    statements
}
