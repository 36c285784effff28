//! Several real `recvault run` daemons governed as one fleet: each box its
//! own host name, spool, ledger and staging, in its own network namespace
//! (`net`), one real MariaDB (a database of its own per test, with
//! VICIdial's tables and recvault's, made by `recvault fleet init`) and the
//! real Garage bucket. A box can be cut from the database and healed.

mod console;
mod erasure;
mod holds;
mod leader;
mod mirror;
mod net;
mod outage;
mod policy;
mod queue;
mod reads;
mod rules;
mod silent;
mod trace;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use net::{Link, Netns};

use crate::common::*;
use crate::vicidial::dialer::tail;
use crate::vicidial::{Fixture, mariadb_port, quick_options};

/// How long a box may take to archive, sweep or publish in these tests.
pub const LIMIT: Duration = Duration::from_secs(90);

/// A fleet under test: the database and its boxes.
pub struct Cluster {
    pub fx: Fixture,
    pub garage: Garage,
    pub boxes: Vec<Node>,
}

/// One box: its site, where it lives on the network, its daemon.
pub struct Node {
    pub host: String,
    pub site: Site,
    pub db: Link,
    /// Garage through the box's own link (kept for as long as the box).
    pub _store: Link,
    pub log: PathBuf,
    pub daemon: Option<Child>,
    /// Last: dropped after the links and the daemon.
    pub ns: Option<Netns>,
}

impl Cluster {
    /// A database of its own and boxes named `hosts`; `None` without
    /// MariaDB outside CI.
    pub async fn new(test: &str, hosts: &[&str]) -> Option<Cluster> {
        Cluster::on(test, hosts, garage()).await
    }

    /// Like [`Cluster::new`], every box storing into `garage` (any S3 target).
    pub async fn on(test: &str, hosts: &[&str], garage: Garage) -> Option<Cluster> {
        let fx = Fixture::new(test, quick_options()).await?;
        let mut boxes = Vec::new();
        for host in hosts {
            boxes.push(Node::new(test, host, &fx.name, &garage).await);
        }
        Some(Cluster { fx, garage, boxes })
    }

    /// The box named `host`.
    pub fn node(&mut self, host: &str) -> &mut Node {
        self.boxes
            .iter_mut()
            .find(|b| b.host == host)
            .unwrap_or_else(|| panic!("no box {host}"))
    }

    /// One number from the fleet's database (root, the test's database).
    pub async fn count(&mut self, sql: &str) -> i64 {
        self.fx
            .text(&format!("SELECT CAST(({sql}) AS CHAR)"))
            .await
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    }

    /// Polls `done` (on the fleet's database) every 300 ms for at most [`LIMIT`].
    pub async fn wait_db(&mut self, what: &str, sql: &str, want: i64) {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let n = self.count(sql).await;
            if n == want {
                return;
            }
            if std::time::Instant::now() > deadline {
                let logs: Vec<String> = self
                    .boxes
                    .iter()
                    .map(|b| format!("--- {}:\n{}", b.host, tail(&b.log_text(), 30)))
                    .collect();
                panic!(
                    "gave up waiting for {what} ({sql} = {n}, want {want});\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Node {
    async fn new(test: &str, host: &str, database: &str, g: &Garage) -> Node {
        let ns = match Netns::create() {
            Ok(ns) => Some(ns),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("network namespaces are needed under CI (run as root): {e}")
            }
            Err(e) => {
                eprintln!(
                    "{test}: no network namespace ({e}); box {host} shares the test's network"
                );
                None
            }
        };
        let ip = ns
            .as_ref()
            .map_or("127.0.0.1".to_string(), |n| n.host_ip.clone());
        let db = Link::start(&ip, mariadb_port()).await;
        let garage_port: u16 = g
            .endpoint
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let store = Link::start(&ip, garage_port).await;
        let mut site = Site::new(&format!("{test}-{host}"));
        site.configure(
            Target::Garage(g),
            "settle = \"1s\"\nupload_after = \"0s\"\nrescan = \"2s\"",
        );
        site.set_option("store", "endpoint", &format!("\"http://{}\"", store.addr));
        site.set_option("daemon", "host", &format!("\"{host}\""));
        site.set_option("ledger", "backup_every", "\"0s\"");
        let dsn = site.root.join("fleet.dsn");
        fs::write(&dsn, format!("mysql://root@{}/{database}\n", db.addr)).unwrap();
        let mut text = fs::read_to_string(&site.config).unwrap();
        text.push_str(&format!(
            "\n[retention]\ndefault = \"30d\"\nsweep_every = \"1m\"\n\n[fleet]\nenabled = true\n\
             dsn_file = \"{}\"\nheartbeat = \"1s\"\nhost_timeout = \"5s\"\nconnect_timeout = \"1s\"\n\
             query_timeout = \"2s\"\n",
            dsn.display()
        ));
        fs::write(&site.config, text).unwrap();
        let log = site.root.join("daemon.log");
        Node {
            host: host.to_string(),
            site,
            db,
            _store: store,
            log,
            daemon: None,
            ns,
        }
    }

    /// The box's own address: its namespace's end of the veth (127.0.0.1
    /// without namespaces).
    pub fn addr(&self) -> String {
        self.ns
            .as_ref()
            .map_or("127.0.0.1".to_string(), |n| n.ns_ip.clone())
    }

    /// The binary with this box's config, in its namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]).arg(recvault_bin());
                c
            }
            None => Command::new(recvault_bin()),
        };
        cmd.arg("--config")
            .arg(&self.site.config)
            .args(args)
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        cmd
    }

    /// Runs a command on this box (blocking the test's thread only).
    pub fn recvault(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `recvault run` in the background, its log kept.
    pub fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command(&["run"])
            .env(
                "RUST_LOG",
                "info,recvault=debug,sqlx=warn,aws=warn,hyper=warn",
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// SIGHUP: the daemon reloads and sweeps at once.
    pub fn sweep(&self) {
        let pid = self.daemon.as_ref().expect("running").id();
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    }

    /// SIGTERM, then waits; the daemon must exit cleanly.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "{} exited with {status}; log:\n{}",
                self.host,
                tail(&self.log_text(), 40)
            );
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A recording of `phone` called `days_ago` days back, in the spool.
    pub fn call(&self, phone: &str, days_ago: u64, seed: u64) -> String {
        let when = chrono::Local::now() - chrono::Duration::days(days_ago as i64);
        let name = format!("{}_{phone}-all.wav", when.format("%Y%m%d-%H%M%S"));
        put_recording(
            &self.site.spool,
            name.as_bytes(),
            &wav(1.0, seed),
            Duration::from_secs(days_ago * 86_400),
        );
        name
    }

    /// The ledger state of recording `name` (`None` before it is known).
    pub fn state_of(&self, name: &str) -> Option<String> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let conn = rusqlite::Connection::open_with_flags(self.site.ledger_path(), flags).ok()?;
        conn.busy_timeout(Duration::from_secs(10)).ok()?;
        conn.query_row(
            "SELECT state FROM recordings WHERE name = CAST(?1 AS BLOB)",
            [name],
            |r| r.get(0),
        )
        .ok()
    }

    /// The object key of recording `name`.
    pub fn key_of(&self, name: &str) -> String {
        let conn = rusqlite::Connection::open(self.site.ledger_path()).unwrap();
        conn.query_row(
            "SELECT object_key FROM recordings WHERE name = CAST(?1 AS BLOB)",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Polls until recording `name` is in `state`, for at most [`LIMIT`].
    pub async fn wait_state(&self, name: &str, state: &str) {
        let deadline = std::time::Instant::now() + LIMIT;
        while self.state_of(name).as_deref() != Some(state) {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {name} is {:?}, waited for {state}; log:\n{}",
                self.host,
                self.state_of(name),
                tail(&self.log_text(), 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until the daemon's log has `text`, for at most [`LIMIT`].
    pub async fn wait_log(&self, text: &str) {
        let deadline = std::time::Instant::now() + LIMIT;
        while !self.log_text().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no `{text}` in the log:\n{}",
                self.host,
                tail(&self.log_text(), 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A command's stdout and stderr, as one text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
