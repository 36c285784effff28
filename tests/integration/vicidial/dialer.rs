//! A dialer for the daemon tests: a VICIdial database of its own (with a
//! MariaDB user of its own, whose password must never be logged), a spool,
//! Garage, `astguiclient.conf` as VICIdial writes it, and the real
//! `recvault run` in the background with its log kept.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use sqlx::Executor;

use super::{Fixture, SERVER_IP, mariadb_port, quick_options};
use crate::common::*;

/// Settled and due at once.
pub const DUE_NOW: &str = "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"2s\"";

/// A VICIdial box under test.
pub struct Dialer {
    pub fx: Fixture,
    pub site: Site,
    /// The MariaDB user recvault logs in as, and its password.
    pub user: String,
    pub password: String,
    pub astguiclient: PathBuf,
    pub log: PathBuf,
    pub daemon: Option<Child>,
    /// The playback server's port, once [`Dialer::serve`] configured one.
    pub port: u16,
}

impl Dialer {
    /// None (with a message) without MariaDB outside CI. The database is
    /// reached at MariaDB's own port until [`Dialer::point_at`] says otherwise.
    pub async fn new(test: &str, garage: &Garage, spool: &str) -> Option<Dialer> {
        Dialer::on(test, Target::Garage(garage), spool).await
    }

    /// Like [`Dialer::new`], archiving to `target`.
    pub async fn on(test: &str, target: Target<'_>, spool: &str) -> Option<Dialer> {
        let mut fx = Fixture::new(test, quick_options()).await?;
        let user = format!("rv_{}_{}", std::process::id(), fastrand::u32(..));
        let password = format!("Vici-S3cret-{}", fastrand::u64(..));
        fx.exec(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
        ))
        .await;
        fx.exec(&format!("GRANT SELECT ON `{}`.* TO '{user}'@'%'", fx.name))
            .await;
        for table in ["recording_log", "recording_log_archive"] {
            fx.exec(&format!(
                "GRANT UPDATE (location) ON `{}`.{table} TO '{user}'@'%'",
                fx.name
            ))
            .await;
        }
        fx.exec(&format!(
            "GRANT UPDATE (date_deleted) ON `{}`.recording_log_deletion_queue TO '{user}'@'%'",
            fx.name
        ))
        .await;
        // Login attempts, counted as VICIdial's own login counts them.
        fx.exec(&format!(
            "GRANT UPDATE (failed_login_count, failed_login_attempts_today, failed_login_count_today, \
                 failed_last_ip_today, failed_last_type_today, last_login_date, last_ip) \
             ON `{}`.vicidial_users TO '{user}'@'%'",
            fx.name
        ))
        .await;
        fx.exec(&format!(
            "GRANT INSERT ON `{}`.vicidial_recording_access_log TO '{user}'@'%'",
            fx.name
        ))
        .await;
        let mut site = Site::new(test);
        site.configure(target, spool);
        let astguiclient = site.root.join("astguiclient.conf");
        let log = site.root.join("daemon.log");
        let mut d = Dialer {
            fx,
            site,
            user,
            password,
            astguiclient,
            log,
            daemon: None,
            port: 0,
        };
        d.point_at(mariadb_port());
        let mut config = fs::read_to_string(&d.site.config).unwrap();
        config.push_str(&format!(
            "\n[vicidial]\nenabled = true\nastguiclient = \"{}\"\nconnect_timeout = \"1s\"\nquery_timeout = \"2s\"\n",
            d.astguiclient.display()
        ));
        fs::write(&d.site.config, config).unwrap();
        Some(d)
    }

    /// Adds a `[serve]` table (a free port, a link key) plus `extra`.
    pub fn serve(&mut self, extra: &str) {
        self.port = dead_port();
        let mut config = fs::read_to_string(&self.site.config).unwrap();
        config.push_str(&crate::serve::serve_table(
            &self.site.root,
            self.port,
            extra,
        ));
        fs::write(&self.site.config, config).unwrap();
    }

    /// The path and query of a link (`http://10.0.0.5:port/r/…`) to ask
    /// for on 127.0.0.1.
    pub fn link_path(&self, link: &str) -> String {
        let start = link
            .find("/r/")
            .unwrap_or_else(|| panic!("not a link: {link}"));
        link[start..].to_string()
    }

    /// Writes `astguiclient.conf` as VICIdial's installer does, naming the
    /// database at 127.0.0.1:`port`.
    pub fn point_at(&mut self, port: u16) {
        fs::write(
            &self.astguiclient,
            format!(
                "# astguiclient.conf\nPATHhome => /usr/share/astguiclient\nPATHDONEmonitor => {}\n\
                 VARserver_ip => {SERVER_IP}\nVARDB_server => 127.0.0.1\nVARDB_database => {}\n\
                 VARDB_user => {}\nVARDB_pass => {}\nVARDB_custom_user => custom\n\
                 VARDB_custom_pass => custom1234\nVARDB_port => {port}\n",
                self.site.spool.display(),
                self.fx.name,
                self.user,
                self.password
            ),
        )
        .unwrap();
    }

    /// A call of `campaign` recorded `days_ago` days back: its file in the
    /// spool (VICIdial's default `FULLDATE_CUSTPHONE-all.wav`), its
    /// recording_log row (location pointing at the file), its vicidial_log
    /// row and its lead. Returns the file name.
    pub async fn call(&mut self, id: u32, campaign: &str, agent: &str, days_ago: i64) -> String {
        let when = chrono::Local::now() - chrono::Duration::days(days_ago);
        let phone = format!("555{id:07}");
        let stem = format!("{}_{phone}", when.format("%Y%m%d-%H%M%S"));
        let file = format!("{stem}-all.wav");
        let epoch = when.timestamp();
        put_recording(
            &self.site.spool,
            file.as_bytes(),
            &wav(1.0, id as u64),
            Duration::from_secs(days_ago as u64 * 86400),
        );
        self.row(id, &stem, epoch, campaign, agent).await;
        file
    }

    /// The database rows of a call whose file is `stem`-all.wav.
    pub async fn row(&mut self, id: u32, stem: &str, epoch: i64, campaign: &str, agent: &str) {
        let phone = format!("555{id:07}");
        let location = format!("http://{SERVER_IP}/RECORDINGS/{stem}-all.wav");
        let uniqueid = format!("{epoch}.{id}");
        self.fx
            .exec(&format!(
                "INSERT INTO recording_log (recording_id, channel, server_ip, extension, start_time, \
                     start_epoch, length_in_sec, filename, location, lead_id, user, vicidial_id) VALUES \
                 ({id}, 'Local/1@default', '{SERVER_IP}', '{phone}', FROM_UNIXTIME({epoch}), {epoch}, 61, \
                     '{stem}', '{location}', {id}, 'VDAD', '{uniqueid}')"
            ))
            .await;
        self.fx
            .exec(&format!(
                "INSERT INTO vicidial_log (uniqueid, lead_id, list_id, campaign_id, call_date, start_epoch, \
                     length_in_sec, status, phone_code, phone_number, user) VALUES \
                 ('{uniqueid}', {id}, 1, '{campaign}', FROM_UNIXTIME({epoch}), {epoch}, 62, 'SALE', '1', \
                     '{phone}', '{agent}')"
            ))
            .await;
        self.fx
            .exec(&format!(
                "INSERT INTO vicidial_list (lead_id, list_id, phone_code, phone_number) VALUES \
                 ({id}, 1, '1', '{phone}')"
            ))
            .await;
    }

    /// Starts `recvault run`, its log going to `self.log`.
    pub fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .site
            .command(&["run"])
            .env("RUST_LOG", "debug,sqlx=warn,aws=warn,hyper=warn,h2=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// SIGTERM, then waits for the daemon to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "daemon exited with {status}; log:\n{}",
                self.log_text()
            );
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics if the database password shows anywhere in the daemon's log
    /// (or in `more`, other output of the binary).
    pub fn assert_password_never_logged(&self, more: &str) {
        let log = self.log_text();
        assert!(!log.is_empty(), "no log written");
        for (i, line) in log.lines().chain(more.lines()).enumerate() {
            assert!(
                !line.contains(&self.password),
                "line {i} shows the password: {line}"
            );
        }
    }

    /// One value from the ledger.
    pub fn ledger_value<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        self.try_ledger_value(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One value from the ledger, if it exists yet (opened read-only: a
    /// poll must never create it).
    pub fn try_ledger_value<T: rusqlite::types::FromSql>(&self, sql: &str) -> rusqlite::Result<T> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let conn = rusqlite::Connection::open_with_flags(self.site.ledger_path(), flags)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.query_row(sql, [], |r| r.get(0))
    }

    /// Polls `done` every 200 ms for at most `limit`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&Dialer) -> bool,
    ) {
        let deadline = std::time::Instant::now() + limit;
        while !done(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "gave up after {limit:?} waiting for {what}; daemon log:\n{}",
                tail(&self.log_text(), 60)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Dialer {
    fn drop(&mut self) {
        self.kill();
        if let Some(admin) = self.fx.admin.as_mut() {
            let drop_user = format!("DROP USER IF EXISTS '{}'@'%'", self.user);
            let _ = futures_lite(admin.execute(sqlx::AssertSqlSafe(drop_user)));
        }
    }
}

/// Runs a future to completion from a synchronous Drop inside a runtime.
fn futures_lite<F: Future>(f: F) -> Option<F::Output> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    Some(tokio::task::block_in_place(|| handle.block_on(f)))
}

/// A command's stdout and stderr, as one text.
pub fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
