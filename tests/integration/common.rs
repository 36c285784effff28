//! Helpers shared by the integration tests: a real Garage (started by
//! `scripts/garage.sh`), moto's S3 server (started per test, for versioned
//! buckets and Object Lock, which Garage lacks), temp spools, WAV files,
//! and the real binary.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use recvault::config::{S3Config, S3Credentials};
use recvault::ledger::Ledger;
use recvault::recording::State;
use recvault::store::{ListedObject, S3Store, Store};
use sha2::{Digest, Sha256};

/// Where the test Garage is and how to reach it.
#[derive(Clone)]
pub struct Garage {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

/// The Garage started by `scripts/garage.sh start` (env vars, or its env file).
pub fn garage() -> Garage {
    let mut vars: BTreeMap<String, String> = std::env::vars().collect();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".work/garage/env");
    if !vars.contains_key("RECVAULT_TEST_S3_ENDPOINT")
        && let Ok(text) = fs::read_to_string(&file)
    {
        for line in text.lines() {
            if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                vars.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
            }
        }
    }
    let get = |k: &str| {
        vars.get(k).cloned().unwrap_or_else(|| {
            panic!("{k} is not set and {} is missing: start Garage with `scripts/garage.sh start` (scripts/test.sh does)", file.display())
        })
    };
    Garage {
        endpoint: get("RECVAULT_TEST_S3_ENDPOINT"),
        region: get("RECVAULT_TEST_S3_REGION"),
        bucket: get("RECVAULT_TEST_S3_BUCKET"),
        key_id: get("RECVAULT_TEST_S3_ACCESS_KEY_ID"),
        secret: get("RECVAULT_TEST_S3_SECRET_ACCESS_KEY"),
    }
}

impl Garage {
    pub fn s3_config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            path_style: true,
            credentials: Some(S3Credentials {
                access_key_id: self.key_id.clone(),
                secret_access_key: self.secret.clone(),
            }),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
        }
    }

    pub async fn store(&self, multipart_threshold: u64, part_size: u64) -> Arc<dyn Store> {
        Arc::new(
            S3Store::new(&self.s3_config(), multipart_threshold, part_size, None)
                .await
                .unwrap(),
        )
    }
}

/// The objects under `prefix` that hold recordings: everything except
/// recvault's reserved `{prefix}.recvault…` keys (ledger backups, probes).
pub async fn recording_objects(store: &dyn Store, prefix: &str) -> Vec<ListedObject> {
    let reserved = format!("{prefix}.recvault");
    store
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| !o.key.starts_with(&reserved))
        .collect()
}

/// A unique key prefix so tests sharing one bucket never see each other.
pub fn unique_prefix(test: &str) -> String {
    format!("t-{test}-{}-{}/", std::process::id(), fastrand::u32(..))
}

/// A test's working area: spool, staging, ledger, config.
pub struct Site {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub spool: PathBuf,
    /// Every configured spool directory (the first is `spool`).
    pub dirs: Vec<PathBuf>,
    pub config: PathBuf,
    pub prefix: String,
    /// Environment the binary gets (GCS: `STORAGE_EMULATOR_HOST`).
    pub env: Vec<(String, String)>,
}

/// Which store a site's config points at.
pub enum Target<'a> {
    Garage(&'a Garage),
    /// An S3 endpoint where nothing listens (an outage).
    Dead(&'a Garage, u16),
    /// Garage's bucket and key, reached through a proxy on 127.0.0.1:port
    /// (the fault-injecting one in `proxy.rs`).
    Proxy(&'a Garage, u16),
    Local,
    Azure(&'a crate::servers::Azurite),
    Gcs(&'a crate::servers::FakeGcs),
    Sftp(&'a crate::servers::Sshd),
}

impl Site {
    pub fn new(test: &str) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let spool = root.join("monitorDONE");
        fs::create_dir_all(&spool).unwrap();
        Site {
            _tmp: tmp,
            root,
            dirs: vec![spool.clone()],
            spool,
            config: PathBuf::new(),
            prefix: unique_prefix(test),
            env: Vec::new(),
        }
    }

    /// Adds a spool sub-folder (like VICIdial's ORIG/) to the configured dirs.
    pub fn add_dir(&mut self, name: &str) -> PathBuf {
        let dir = self.spool.join(name);
        fs::create_dir_all(&dir).unwrap();
        self.dirs.push(dir.clone());
        dir
    }

    /// Writes the config; `spool_extra` is appended to the `[spool]` table.
    pub fn configure(&mut self, target: Target<'_>, spool_extra: &str) {
        let store = match target {
            Target::Garage(g) | Target::Dead(g, _) | Target::Proxy(g, _) => {
                let endpoint = match target {
                    Target::Dead(_, port) | Target::Proxy(_, port) => {
                        format!("http://127.0.0.1:{port}")
                    }
                    _ => g.endpoint.clone(),
                };
                let key = self.root.join("s3-key.toml");
                fs::write(
                    &key,
                    format!(
                        "access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                        g.key_id, g.secret
                    ),
                )
                .unwrap();
                format!(
                    "kind = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"{}\"\nbucket = \"{}\"\npath_style = true\nprefix = \"{}\"\nkey_file = \"{}\"\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\n",
                    g.region,
                    g.bucket,
                    self.prefix,
                    key.display()
                )
            }
            Target::Local => format!(
                "kind = \"local\"\npath = \"{}\"\nprefix = \"{}\"\n",
                self.root.join("store").display(),
                self.prefix
            ),
            Target::Azure(a) => {
                format!("{}prefix = \"{}\"\n", a.store_toml(&self.root), self.prefix)
            }
            Target::Gcs(g) => {
                self.env = vec![("STORAGE_EMULATOR_HOST".into(), g.endpoint())];
                format!("{}prefix = \"{}\"\n", g.store_toml(), self.prefix)
            }
            Target::Sftp(s) => format!("{}prefix = \"{}\"\n", s.store_toml(), self.prefix),
        };
        // The host's own free space must not decide a test: on a nearly full
        // disk (a CI machine's, once) the default min_free archives every
        // recording early, as it should in production.
        let min_free = if spool_extra.contains("min_free") {
            ""
        } else {
            "min_free = \"none\"\n"
        };
        let text = format!(
            "[spool]\ndirs = [{dirs}]\nstaging = \"{staging}\"\n{min_free}{spool_extra}\n\n[store]\n{store}\n[ledger]\npath = \"{ledger}\"\n\n[daemon]\nhost = \"testhost\"\nshutdown_grace = \"5s\"\n",
            dirs = self
                .dirs
                .iter()
                .map(|d| format!("\"{}\"", d.display()))
                .collect::<Vec<_>>()
                .join(", "),
            staging = self.root.join("staging").display(),
            ledger = self.ledger_path().display(),
        );
        self.config = self.root.join("recvault.toml");
        fs::write(&self.config, text).unwrap();
    }

    /// Sets `key = value` (value as TOML) in the written config's `table`,
    /// replacing the key if the table already has it.
    pub fn set_option(&self, table: &str, key: &str, value: &str) {
        let text = fs::read_to_string(&self.config).unwrap();
        let mut out = String::new();
        let mut in_table = false;
        let mut done = false;
        for line in text.lines() {
            if line.starts_with('[') {
                if in_table && !done {
                    out.push_str(&format!("{key} = {value}\n"));
                    done = true;
                }
                in_table = line == format!("[{table}]");
            } else if in_table && line.split('=').next().map(str::trim) == Some(key) {
                if !done {
                    out.push_str(&format!("{key} = {value}\n"));
                    done = true;
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if !done {
            if !in_table {
                out.push_str(&format!("[{table}]\n"));
            }
            out.push_str(&format!("{key} = {value}\n"));
        }
        fs::write(&self.config, out).unwrap();
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("ledger.sqlite3")
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::open(&self.ledger_path()).unwrap()
    }

    /// Runs the real binary with this site's config.
    pub fn recvault(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(recvault_bin());
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "info");
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("STORAGE_EMULATOR_HOST")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Number of recordings per state in the ledger.
    pub fn states(&self) -> BTreeMap<State, u64> {
        self.ledger()
            .totals()
            .unwrap()
            .into_iter()
            .map(|(s, t)| (s, t.count))
            .collect()
    }
}

/// The binary under test: `RECVAULT_BIN` if set, else the one Cargo built.
/// (Worktrees sharing one `CARGO_TARGET_DIR` overwrite each other's
/// `target/debug/recvault`; `RECVAULT_BIN` pins the right one.)
pub fn recvault_bin() -> PathBuf {
    std::env::var_os("RECVAULT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_recvault")))
}

/// Panics with the command's output unless it exited with `code`.
pub fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A deterministic 8 kHz 16-bit mono WAV: tone bursts and pauses, `seconds` long.
pub fn wav(seconds: f64, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let samples = (8000.0 * seconds) as u32;
    let mut out = Vec::with_capacity(44 + samples as usize * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples * 2).to_le_bytes());
    let freq = 200.0 + rng.f64() * 400.0;
    for i in 0..samples {
        let speaking = (i / 4000) % 3 != 2;
        let t = i as f64 / 8000.0;
        let v = if speaking {
            (t * freq * std::f64::consts::TAU).sin() * 8000.0
        } else {
            0.0
        };
        let noise = rng.i32(-200..200) as f64;
        out.extend_from_slice(&((v + noise) as i16).to_le_bytes());
    }
    out
}

/// Writes a file and backdates its mtime so it is settled and due.
pub fn put_recording(dir: &Path, name: &[u8], bytes: &[u8], age: Duration) -> PathBuf {
    let path = dir.join(std::ffi::OsStr::from_bytes(name));
    fs::write(&path, bytes).unwrap();
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
    path
}

/// Polls `done` every 100 ms for at most `limit`; panics naming `what` if it
/// never holds. A bound against hangs, not a timing assertion.
pub fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port on 127.0.0.1 where nothing listens, below the kernel's ephemeral
/// range (32768 and up): a test that stops its daemon and starts it again on
/// the same port must not find it taken by some other process's outgoing
/// connection meanwhile (seen with several test runs on one machine).
pub fn dead_port() -> u16 {
    loop {
        let port = fastrand::u16(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Restores `name` with the binary and returns the bytes.
pub fn restore(site: &Site, name: &[u8]) -> Vec<u8> {
    let out_path = site.root.join(format!("restored-{}", fastrand::u64(..)));
    let mut cmd = site.command(&["restore", "-o"]);
    cmd.arg(&out_path)
        .arg("--")
        .arg(std::ffi::OsStr::from_bytes(name));
    let out = cmd.output().unwrap();
    expect_code(&out, 0);
    let bytes = fs::read(&out_path).unwrap();
    fs::remove_file(&out_path).unwrap();
    bytes
}

/// Starts the daemon, waits (at most `limit`) until `in_progress` says the
/// ledger shows the work a kill should interrupt, then SIGKILLs it. Returns
/// whether the kill landed there (`false`: the moment never came). The
/// ledger is read with a plain connection, as the daemon writes it.
pub fn kill_when(
    site: &Site,
    limit: Duration,
    in_progress: impl FnMut(&rusqlite::Connection) -> bool,
) -> bool {
    kill_command_when(site, &["run"], limit, in_progress)
}

/// Runs `cmd` to its end, its output kept in files beside `scratch` (a
/// daemon's log can outgrow a pipe), as `Command::output` would; a command
/// still running after `limit` is killed and the test fails with what it
/// printed, instead of waiting for ever (a daemon that was expected to
/// refuse to start and did not).
pub fn output_within(cmd: &mut Command, scratch: &Path, limit: Duration) -> Output {
    let (out, err) = (
        scratch.with_extension("stdout"),
        scratch.with_extension("stderr"),
    );
    let mut child = cmd
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            child.wait().unwrap();
            panic!(
                "{cmd:?} still ran after {limit:?}; it printed:\n{}{}",
                fs::read_to_string(&out).unwrap_or_default(),
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(&out).unwrap(),
        stderr: fs::read(&err).unwrap(),
    }
}

/// [`kill_when`] for any recvault command (`args`); also stops looking
/// once the command has ended by itself.
pub fn kill_command_when(
    site: &Site,
    args: &[&str],
    limit: Duration,
    mut in_progress: impl FnMut(&rusqlite::Connection) -> bool,
) -> bool {
    let mut child = site
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let mut landed = false;
    while std::time::Instant::now() < deadline {
        if let Ok(conn) = rusqlite::Connection::open_with_flags(
            site.ledger_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) && in_progress(&conn)
        {
            landed = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    child.wait().unwrap();
    landed
}

/// How many recordings the ledger at `conn` holds that match `condition`
/// (an SQL expression over the `recordings` table); 0 if it cannot tell.
pub fn count_where(conn: &rusqlite::Connection, condition: &str) -> i64 {
    conn.query_row(
        &format!("SELECT COUNT(*) FROM recordings WHERE {condition}"),
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

/// A moto S3 server on a free port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `moto_server` on a free port; `None` (the test then skips,
/// saying so) where it is not installed — except under CI, where that fails.
pub fn start_moto() -> Option<Moto> {
    let port = dead_port();
    let child = match Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        // CI installs it (scripts/install-deps.sh): there a missing server is a failure.
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("moto_server: {e}; scripts/install-deps.sh installs it")
        }
        Err(_) => return None,
    };
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(moto);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not start listening on port {port}");
}

impl Moto {
    /// A plain SDK client for this server (to set buckets up and look behind recvault).
    pub fn client(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// `bucket` on this server, as a site's store target.
    pub fn target(&self, bucket: &str) -> Garage {
        Garage {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".to_string(),
            bucket: bucket.to_string(),
            key_id: "testing".to_string(),
            secret: "testing".to_string(),
        }
    }

    /// Creates `bucket` with versioning on (and Object Lock if `locked`).
    pub async fn versioned_bucket(&self, bucket: &str, locked: bool) {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let s3 = self.client();
        let mut create = s3.create_bucket().bucket(bucket);
        if locked {
            create = create.object_lock_enabled_for_bucket(true);
        }
        create.send().await.unwrap();
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Every version and delete marker under `prefix`: (key, version id, is a marker).
    pub async fn versions(&self, bucket: &str, prefix: &str) -> Vec<(String, String, bool)> {
        let s3 = self.client();
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = s3
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .unwrap();
            let text = |s: Option<&str>| s.unwrap_or("").to_string();
            for v in page.versions() {
                out.push((text(v.key()), text(v.version_id()), false));
            }
            for m in page.delete_markers() {
                out.push((text(m.key()), text(m.version_id()), true));
            }
            if page.is_truncated() != Some(true) {
                out.sort();
                return out;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
    }
}
